/**
 * Store once: duplicates, changed copies, colliding report ids, rejected
 * inputs kept with their reason, big reports streamed in batches inside one
 * transaction, and a folder ingest killed half way and run again (nothing
 * lost, nothing twice). On SQLite and on Postgres (one suite looped over the
 * dialects, a fresh store per test): the stores write a report differently
 * (SQLite stages a big one in short transactions, Postgres holds one
 * transaction), and both must count the same. The interrupted run is the
 * real CLI killed with SIGKILL.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import SqliteDatabase from 'better-sqlite3';
import { ingestInput, ingestPaths, storeReport, ReportError, type IngestResult } from '../src/reports/index.js';
import { postgresConnectionFromUrl } from '../src/store/location.js';
import { BIN, REPO_ROOT, runMain } from './helpers/cli.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { makeMail, makeZip, reportXml, reportHead, recordXml, REPORT_TAIL } from './fixtures/reports/make.js';
import { killedAtExit } from './helpers/children.js';

async function freshStore(dialect: StoreDialect) {
  const dir = tempDir('dmarc-rollout-ingest-');
  const store = await dialect.open();
  return { dir, store, rejectedDir: join(dir, 'rejected') };
}

/**
 * One row of `query` on the store the CLI is given by `env`, read from
 * outside the CLI's process with its numbers as numbers: a read-only handle
 * on the SQLite file (opened and closed per read, as the file may not exist
 * yet), or a query on the Postgres database.
 */
function outsideReader(dialect: StoreDialect, env: Record<string, string>): (query: string) => Promise<Record<string, number>> {
  const numbers = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)]));
  if (dialect.name === 'sqlite') {
    const file = env.DMARC_ROLLOUT_DB!;
    return async (query) => {
      const probe = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
      try {
        return numbers(probe.prepare(query).get() as Record<string, unknown>);
      } finally {
        probe.close();
      }
    };
  }
  const { database } = postgresConnectionFromUrl(env.DMARC_ROLLOUT_DATABASE_URL!);
  return async (query) => numbers((await (await dialect.server!()).query(database, query))[0]!);
}

function status(r: IngestResult): string {
  return r.status;
}

for (const dialect of storeDialects()) describe(`store once, on ${dialect.name}`, () => {

  it('the same report plain, gzipped and mailed is stored once; the copies count as duplicates', async () => {
    const { store, rejectedDir } = await freshStore(dialect);
    const xml = Buffer.from(reportXml({ records: 4, count: 5 }));
    const a = await ingestInput(store.db, { bytes: xml }, 'a.xml', { rejectedDir });
    const b = await ingestInput(store.db, { bytes: gzipSync(xml) }, 'a.xml.gz', { rejectedDir });
    const c = await ingestInput(store.db, { bytes: makeMail(makeZip([{ name: 'a.xml', data: xml }]), 'a.zip', 'application/zip', 'attachment-last') }, 'imap:INBOX/7', { rejectedDir });
    assert.deepEqual([a, b, c].map(status), ['stored', 'duplicate', 'duplicate']);
    const reports = await store.db.selectFrom('reports').selectAll().execute();
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.duplicates, 2);
    assert.equal(reports[0]!.counted, 1);
    assert.equal(reports[0]!.source, 'a.xml');
    const rows = await store.db.selectFrom('report_rows').selectAll().execute();
    assert.equal(rows.length, 4);
    assert.equal(rows.reduce((s, r) => s + Number(r.count), 0), 20);
    const row = rows[0]!;
    assert.equal(row.dkim, 'pass');
    assert.equal(row.header_from, 'example.com');
    assert.deepEqual(JSON.parse(row.auth_dkim ?? 'null'), [{ domain: 'example.com', selector: 's1', result: 'pass', human_result: null }]);
    assert.deepEqual(JSON.parse(row.auth_spf ?? 'null'), [{ domain: 'bounce.example.com', scope: 'mfrom', result: 'fail', human_result: null }]);
    const meta = JSON.parse(reports[0]!.metadata);
    assert.equal(meta.policy_published.p, 'none');
    assert.equal(meta.policy_published.pct, 100);
    await store.close();
  });

  it('a changed copy of a stored report is kept, flagged and not counted; the first copy keeps counting', async () => {
    const { store, rejectedDir } = await freshStore(dialect);
    const first = await ingestInput(store.db, { bytes: Buffer.from(reportXml({ records: 2 })) }, 'first.xml', { rejectedDir });
    const changed = await ingestInput(store.db, { bytes: Buffer.from(reportXml({ records: 3 })) }, 'second.xml', { rejectedDir });
    const again = await ingestInput(store.db, { bytes: Buffer.from(reportXml({ records: 3 })) }, 'third.xml', { rejectedDir });
    assert.equal(first.status, 'stored');
    assert.equal(changed.status, 'stored');
    assert.equal(again.status, 'duplicate');
    assert.ok(first.status === 'stored' && changed.status === 'stored');
    assert.equal(first.counted, true);
    assert.equal(changed.counted, false);
    assert.match(changed.flag ?? '', new RegExp(`changed copy: same report as #${first.id} .*#${first.id} is the one counted`));
    const counted = await store.db.selectFrom('reports').select(['id']).where('counted', '=', 1).execute();
    assert.deepEqual(counted.map((r) => r.id), [first.id]);
    // Both copies' rows are kept; the metrics join on counted = 1 sees the first copy's only.
    const rows = await store.db
      .selectFrom('report_rows')
      .innerJoin('reports', 'reports.id', 'report_rows.report')
      .where('reports.counted', '=', 1)
      .select((eb) => eb.fn.sum<number>('report_rows.count').as('n'))
      .executeTakeFirstOrThrow();
    assert.equal(Number(rows.n), 6);
    assert.equal((await store.db.selectFrom('report_rows').selectAll().execute()).length, 5);
    await store.close();
  });

  it('report ids that collide across reporters or are reused across date ranges are different reports', async () => {
    const { store, rejectedDir } = await freshStore(dialect);
    const results = [
      await ingestInput(store.db, { bytes: Buffer.from(reportXml({ org: 'a.example' })) }, '1', { rejectedDir }),
      await ingestInput(store.db, { bytes: Buffer.from(reportXml({ org: 'b.example' })) }, '2', { rejectedDir }),
      await ingestInput(store.db, { bytes: Buffer.from(reportXml({ org: 'a.example', begin: 1700086400, end: 1700172799 })) }, '3', { rejectedDir }),
      await ingestInput(store.db, { bytes: Buffer.from(reportXml({ org: 'a.example', domain: 'example.org' })) }, '4', { rejectedDir }),
    ];
    for (const r of results) {
      assert.equal(r.status, 'stored');
      assert.ok(r.status === 'stored' && r.counted);
    }
    await store.close();
  });

  it('rejected inputs are kept once, with file, field and reason, and the rest goes on', async () => {
    const { store, rejectedDir, dir } = await freshStore(dialect);
    const inbox = join(dir, 'inbox');
    mkdirSync(join(inbox, 'sub'), { recursive: true });
    writeFileSync(join(inbox, 'good.xml'), reportXml());
    writeFileSync(join(inbox, 'sub', 'bad-count.xml'), reportXml().replace('<count>3</count>', '<count>-1</count>'));
    writeFileSync(join(inbox, 'sub', 'bad-count-again.xml'), reportXml().replace('<count>3</count>', '<count>-1</count>'));
    writeFileSync(join(inbox, 'sub', 'empty.xml'), '');
    const summary = await ingestPaths(store.db, [inbox, join(dir, 'missing')], { rejectedDir });
    assert.equal(summary.stored, 1);
    assert.equal(summary.rejected, 3);
    assert.equal(summary.errors, 1, 'a path that does not exist is an error');
    assert.deepEqual(summary.rejected_reasons, [
      { reason: 'record[1]/row/count: "-1" is not a message count', count: 2 },
      { reason: 'empty file (0 bytes)', count: 1 },
    ]);
    const rejected = await store.db.selectFrom('rejected_inputs').selectAll().orderBy('id').execute();
    assert.equal(rejected.length, 2, 'the same bad bytes are kept once');
    const bad = rejected.find((r) => r.field === 'record[1]/row/count')!;
    assert.equal(bad.source, join(inbox, 'sub', 'bad-count-again.xml'));
    assert.ok(bad.kept_at && existsSync(bad.kept_at));
    assert.equal(readFileSync(bad.kept_at!, 'utf8'), reportXml().replace('<count>3</count>', '<count>-1</count>'));
    const reason = JSON.parse(readFileSync(`${bad.kept_at}.reason.json`, 'utf8'));
    assert.equal(reason.field, 'record[1]/row/count');
    assert.equal(reason.source, bad.source);
    await store.close();
  });

  it('a big report is stored in batches inside one transaction; a report that fails late leaves nothing behind', async () => {
    const { store } = await freshStore(dialect);
    const xml = Buffer.from(reportXml({ records: 3000, count: 1 }));
    const outcome = await storeReport(store.db, { bytes: xml }, { source: 'big.xml', batchSize: 250 });
    assert.equal(outcome.status, 'stored');
    assert.equal((await store.db.selectFrom('report_rows').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n, 3000);
    // Fails at record 2,501: the 2,500 rows already written in batches are rolled back with the report.
    const late = reportHead({ reportId: 'late' }) + Array.from({ length: 2500 }, (_, i) => recordXml(i, 1)).join('') + recordXml(2500, 1).replace('<count>1</count>', '<count>x</count>') + REPORT_TAIL;
    await assert.rejects(
      storeReport(store.db, { bytes: Buffer.from(late) }, { source: 'late.xml', batchSize: 250 }),
      (e: unknown) => e instanceof ReportError && e.field === 'record[2501]/row/count',
    );
    assert.equal((await store.db.selectFrom('reports').selectAll().execute()).length, 1);
    assert.equal((await store.db.selectFrom('report_rows').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n, 3000);
    await store.close();
  });

  it('a folder ingest killed half way and run again: nothing lost, nothing twice', async () => {
    const dir = tempDir('dmarc-rollout-interrupt-');
    // The store is made here and then left to the commands: the test holds no connection of its own.
    const made = await dialect.open();
    const storeEnv = dialect.cliEnv(made);
    await made.close();
    const read = outsideReader(dialect, storeEnv);
    const inbox = join(dir, 'inbox');
    const ingestArgs = ['ingest', inbox, '--json', '--rejected-dir', join(dir, 'rejected')];
    mkdirSync(inbox);
    const N = 240;
    let expectedRows = 0;
    let expectedMessages = 0;
    for (let i = 0; i < N; i++) {
      const records = 150 + (i % 7);
      expectedRows += records;
      expectedMessages += records * 2;
      // Rows differ per report: equal rows under another report_id would be a re-sent copy, not counted.
      const xml = Buffer.from(reportXml({ reportId: `run-${i}`, records, count: 2, envelopeTo: `rcpt-${i}.example` }));
      writeFileSync(join(inbox, `r${String(i).padStart(3, '0')}.xml${i % 2 ? '.gz' : ''}`), i % 2 ? gzipSync(xml) : xml);
    }
    writeFileSync(join(inbox, 'zz-broken.xml'), '<feedback>');
    const child = killedAtExit(spawn(process.execPath, [BIN, ...ingestArgs], { env: { ...process.env, ...storeEnv }, cwd: REPO_ROOT, stdio: 'ignore' }));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Kill it once part of the folder is stored, whatever it is doing at that moment.
    let stored = 0;
    for (let i = 0; i < 2400 && stored < N / 4; i++) {
      await new Promise((r) => setTimeout(r, 25));
      try {
        // Stored reports only: the one being read when the process dies is staged (SQLite), never counted, and deleted by the next run;
        // on Postgres it is in a transaction nobody else sees, rolled back when the connection drops.
        stored = (await read("select count(*) as n from reports where content_hash not like 'pending:%'")).n!;
      } catch {
        stored = 0;
      }
    }
    child.kill('SIGKILL');
    await exited;
    assert.ok(stored > 0 && stored < N, `killed half way (${stored} of ${N} stored)`);

    const run = await runMain(ingestArgs, storeEnv);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.files, N + 1);
    assert.equal(summary.stored + summary.duplicates, N);
    assert.ok(summary.duplicates >= stored, 'what the killed run stored is recognised');
    assert.equal(summary.rejected, 1);

    assert.deepEqual(await read('select count(*) as reports, count(distinct report_id) as ids, sum(counted) as counted from reports'), { reports: N, ids: N, counted: N });
    assert.deepEqual(await read('select count(*) as n, sum(count) as messages from report_rows'), { n: expectedRows, messages: expectedMessages });
    assert.deepEqual(await read("select count(*) as n from reports where content_hash like 'pending:%'"), { n: 0 });

    const third = JSON.parse((await runMain(ingestArgs, storeEnv)).stdout);
    assert.equal(third.stored, 0);
    assert.equal(third.duplicates, N);
  });

  it('reports ingested one after another from memory let the event loop turn between them (a timer, a request, /healthz)', async () => {
    const { dir, store } = await freshStore(dialect);
    try {
      const turns: number[] = [];
      for (let i = 0; i < 3; i++) {
        // Scheduled before each ingest: it runs before that ingest ends only if the ingest gives the loop a turn.
        let turned = false;
        setImmediate(() => (turned = true));
        const xml = reportXml({ reportId: `turn-${i}`, records: 1 });
        assert.equal((await ingestInput(store.db, { bytes: Buffer.from(xml) }, `turn-${i}`, { rejectedDir: join(dir, 'rejected') })).status, 'stored');
        turns.push(turned ? 1 : 0);
      }
      assert.deepEqual(turns, [1, 1, 1]);
    } finally {
      await store.close();
    }
  });
});
