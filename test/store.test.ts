import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { migrations } from '../src/store/migrations.js';
import { openSqliteStore, openStore } from '../src/store/open.js';
import { describeStore } from '../src/store/location.js';
import { appendAudit } from '../src/store/audit.js';
import { readSession, writeSession } from '../src/store/sessions.js';
import { ingestInput } from '../src/reports/index.js';
import { tempStore } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';
import { reportXml } from './fixtures/reports/make.js';

describe('the SQLite store', () => {
  it('creates every table on first open and runs each migration once across reopenings', async () => {
    const { db } = tempStore();
    for (let i = 0; i < 2; i++) {
      const store = await openSqliteStore(db);
      await store.close();
    }
    const sqlite = new SqliteDatabase(db, { readonly: true });
    const tables = sqlite
      .prepare(`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`)
      .all()
      .map((r) => (r as { name: string }).name);
    const ran = sqlite.prepare('select name from kysely_migration order by name').all().map((r) => (r as { name: string }).name);
    const journal = sqlite.pragma('journal_mode', { simple: true });
    sqlite.close();
    for (const table of ['domains', 'stage_history', 'audit_events', 'reports', 'report_rows', 'rejected_inputs']) {
      assert.ok(tables.includes(table), `table ${table} missing from ${tables.join(', ')}`);
    }
    assert.deepEqual(ran, Object.keys(migrations('sqlite')).sort());
    assert.equal(journal, 'wal');
  });

  it('writes the Postgres flavour of the same schema (serial ids, no SQLite-only types)', async () => {
    const { Kysely, PostgresAdapter, DummyDriver, PostgresIntrospector, PostgresQueryCompiler } = await import('kysely');
    const compiled: string[] = [];
    const db = new Kysely<any>({
      dialect: {
        createAdapter: () => new PostgresAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (k) => new PostgresIntrospector(k),
        createQueryCompiler: () => new PostgresQueryCompiler(),
      },
      log: (event) => {
        compiled.push(event.query.sql);
      },
    });
    for (const migration of Object.values(migrations('postgres'))) await migration.up(db);
    const ddl = compiled.join('\n');
    assert.match(ddl, /create table "stage_history" \("id" serial primary key/);
    assert.doesNotMatch(ddl, /autoincrement/i);
  });
});

for (const dialect of storeDialects()) {
  describe(`the store on ${dialect.name}`, () => {
    it('creates every table on first open and runs each migration once across reopenings', async () => {
      const location = await dialect.location();
      for (let i = 0; i < 2; i++) await (await openStore(location)).close();
      const store = await openStore(location);
      try {
        assert.equal(store.dialect, dialect.name);
        const tables = (await store.db.introspection.getTables()).map((t) => t.name);
        for (const table of ['domains', 'stage_history', 'audit_events', 'reports', 'report_rows', 'rejected_inputs', 'intents', 'notification_events']) {
          assert.ok(tables.includes(table), `table ${table} missing from ${tables.join(', ')}`);
        }
        const ran = (await store.db.selectFrom('kysely_migration' as any).select('name').orderBy('name').execute()) as Array<{ name: string }>;
        assert.deepEqual(ran.map((r) => r.name), Object.keys(migrations(dialect.name)).sort());
      } finally {
        await store.close();
      }
    });

    it('stores a report once, counts its copies as duplicates and returns counts and sums as numbers', async () => {
      const store = await dialect.open();
      const { dir } = tempStore();
      try {
        const xml = Buffer.from(reportXml({ records: 3, count: 300_000_000 }));
        const results = await Promise.all([1, 2, 3].map((n) => ingestInput(store.db, { bytes: xml }, `copy-${n}.xml`, { rejectedDir: dir })));
        assert.deepEqual(results.map((r) => r.status).sort(), ['duplicate', 'duplicate', 'stored'], 'three copies arriving at once: one stored');
        const reports = await store.db.selectFrom('reports').select(['duplicates', 'counted', 'begin']).execute();
        assert.equal(reports.length, 1);
        assert.deepEqual([reports[0]!.duplicates, reports[0]!.counted], [2, 1]);
        assert.equal(typeof reports[0]!.begin, 'number', 'a bigint column reads as a number');
        const total = await store.db
          .selectFrom('report_rows')
          .select((eb) => [eb.fn.sum<number>('count').as('messages'), eb.fn.countAll<number>().as('rows')])
          .executeTakeFirstOrThrow();
        assert.deepEqual(total, { messages: 900_000_000, rows: 3 });
      } finally {
        await store.close();
      }
    });

    it('keeps a rejected input once, however often it comes back', async () => {
      const store = await dialect.open();
      const { dir } = tempStore();
      try {
        const bad = Buffer.from('<feedback><report_metadata>');
        const first = await ingestInput(store.db, { bytes: bad }, 'bad.xml', { rejectedDir: dir });
        const again = await ingestInput(store.db, { bytes: bad }, 'bad-again.xml', { rejectedDir: dir });
        assert.equal(first.status, 'rejected');
        assert.equal(again.status, 'rejected');
        const kept = await store.db.selectFrom('rejected_inputs').select(['source', 'reason']).execute();
        assert.equal(kept.length, 1);
        assert.equal(kept[0]!.source, 'bad.xml');
      } finally {
        await store.close();
      }
    });

    it('links the notification events an audit entry announces to that entry', async () => {
      const store = await dialect.open();
      try {
        const at = new Date('2026-03-01T10:00:00Z');
        await appendAudit(store.db, { at, actor: 'engine', domain: null, action: 'noted', reason: 'an engine action that announces nothing' });
        await appendAudit(store.db, { at, actor: 'engine', domain: 'example.com', action: 'halt', reason: 'failures', details: { rate: 0.2 } });
        const audits = await store.db.selectFrom('audit_events').select(['id', 'action']).orderBy('id').execute();
        assert.deepEqual(audits.map((a) => a.action), ['noted', 'halt']);
        const events = await store.db.selectFrom('notification_events').select(['audit_id', 'domain']).execute();
        assert.ok(events.length >= 1, 'a halt is announced');
        for (const e of events) assert.equal(e.audit_id, audits[1]!.id, 'the event points at the halt, not the entry before it');
      } finally {
        await store.close();
      }
    });

    it('replaces a page session in place and never returns an expired one', async () => {
      const store = await dialect.open();
      try {
        const now = new Date('2026-03-01T10:00:00Z');
        await writeSession(store.db, 'h1', 'one', new Date(now.getTime() + 60_000), now);
        await writeSession(store.db, 'h1', 'two', new Date(now.getTime() + 60_000), now);
        assert.equal(await readSession(store.db, 'h1', now), 'two');
        assert.equal(await readSession(store.db, 'h1', new Date(now.getTime() + 120_000)), undefined);
      } finally {
        await store.close();
      }
    });
  });
}

describe('where the store is', () => {
  it('names a Postgres store without its password and refuses one it cannot reach, saying which', async () => {
    const { postgresConnectionFromUrl } = await import('../src/store/location.js');
    const connection = postgresConnectionFromUrl('postgres://rollout:s3cret@127.0.0.1:1/fleet');
    assert.equal(describeStore({ kind: 'postgres', connection }), 'postgres://rollout@127.0.0.1:1/fleet');
    await assert.rejects(openStore({ kind: 'postgres', connection }), (error: Error) => {
      assert.match(error.message, /^postgres:\/\/rollout@127\.0\.0\.1:1\/fleet \(DMARC_ROLLOUT_DATABASE_URL\): /);
      assert.doesNotMatch(error.message, /s3cret/);
      return true;
    });
    assert.throws(() => postgresConnectionFromUrl('mysql://a@b/c'), /DMARC_ROLLOUT_DATABASE_URL: the scheme must be postgres:\/\//);
    assert.throws(() => postgresConnectionFromUrl('postgres://a:pw@b/c?sslmode=sometimes'), (e: Error) => /sslmode=sometimes/.test(e.message) && !/pw/.test(e.message));
  });
});
