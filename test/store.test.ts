import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { migrations } from '../src/store/migrations.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';

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
