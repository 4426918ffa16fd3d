/**
 * Ingest streams: a report's rows reach the store in batches while the file
 * is still being read (inside the report's one transaction), what ingest
 * hands back is a small summary with no report text or rows, a report
 * refused part way through leaves none of its rows but is kept with its
 * reason, and a folder ingest keeps only the results worth listing. On
 * SQLite and on Postgres (one suite looped over the dialects, a fresh store
 * per test): the stores write a report differently (SQLite in short staged
 * transactions on its one connection, Postgres in one transaction on one of
 * the pool's), and both must stream. The report being written is looked
 * into at the moments the reporter budget is consulted (once per batch,
 * before the batch is written; the check is synchronous, so the look is
 * too): on SQLite through a second handle on the connection kysely writes
 * through, on Postgres with pgstattuple, whose count takes in the rows of a
 * transaction still open (a dirty read, which no query offers), run by psql
 * while the test's process waits. Last, the parser's declared handler slots
 * are checked against the ones saxes uses.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { postgresConnectionFromUrl } from '../src/store/location.js';
import type { Database } from '../src/store/schema.js';
import { ReporterBudget } from '../src/reports/budget.js';
import { ingestInput, ingestPaths } from '../src/reports/index.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { postgresBinDir } from './helpers/postgres.js';
import { tempDir } from './helpers/temp-dirs.js';
import { recordXml, reportHead, reportXml, REPORT_TAIL } from './fixtures/reports/make.js';

/**
 * What the store holds at this moment, a report being written included:
 * rowsWritten, the rows in report_rows (committed, and written so far by the
 * report being stored); pendingReports, the reports written but not yet
 * stored (SQLite's staged `pending:` rows; on Postgres, the rows of reports
 * in a transaction still open).
 */
type Look = () => { rowsWritten: number; pendingReports: number };

/** A fresh, migrated store of the dialect; how to look into it mid-report (`look`) and count what it has stored (`count`). */
async function storeToWatch(dialect: StoreDialect) {
  const dir = tempDir('dmarc-rollout-ingest-streaming-');
  const rejectedDir = join(dir, 'rejected');
  const store = await dialect.open();
  if (dialect.name === 'sqlite') {
    // Reopened on a raw connection the test holds too: its handle sees what kysely's transaction has written so far.
    const file = dialect.cliEnv(store).DMARC_ROLLOUT_DB!;
    await store.close();
    const sqlite = new SqliteDatabase(file);
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    const n = (query: string) => (sqlite.prepare(query).get() as { n: number }).n;
    const look: Look = () => ({
      rowsWritten: n('SELECT count(*) AS n FROM report_rows'),
      pendingReports: n("SELECT count(*) AS n FROM reports WHERE content_hash LIKE 'pending:%'"),
    });
    return { dir, rejectedDir, db, look, count: async (query: string) => n(query), close: () => db.destroy() };
  }
  const server = await dialect.server!();
  const { database } = postgresConnectionFromUrl(dialect.cliEnv(store).DMARC_ROLLOUT_DATABASE_URL!);
  await server.query(database, 'CREATE EXTENSION IF NOT EXISTS pgstattuple');
  const psql = join(postgresBinDir(), 'psql');
  const look: Look = () => {
    const query = "SELECT (SELECT tuple_count FROM pgstattuple('report_rows')), (SELECT tuple_count FROM pgstattuple('reports')) - (SELECT count(*) FROM reports)";
    const run = spawnSync(psql, ['-X', '-q', '-t', '-A', '-h', '127.0.0.1', '-p', String(server.port), '-U', server.user, '-d', database, '-c', query], {
      encoding: 'utf8',
      env: { PGPASSWORD: server.password, PGCONNECT_TIMEOUT: '10' },
      timeout: 30_000,
    });
    assert.equal(run.status, 0, `psql: ${run.stderr}`);
    const [rowsWritten, pendingReports] = run.stdout.trim().split('|').map(Number);
    return { rowsWritten: rowsWritten!, pendingReports: pendingReports! };
  };
  const count = async (query: string) => Number((await sql.raw<{ n: number }>(query).execute(store.db)).rows[0]!.n);
  return { dir, rejectedDir, db: store.db, look, count, close: () => store.close() };
}

/** Looks into the store each time the parser consults the budget: rows written so far, before the batch in hand. */
class WatchingBudget extends ReporterBudget {
  readonly seen: { records: number; rowsWritten: number; pendingReports: number }[] = [];
  constructor(
    recordsPerHour: number,
    private readonly look: Look,
  ) {
    super(recordsPerHour);
  }
  override check(reporter: string, records: number): void {
    this.seen.push({ records, ...this.look() });
    super.check(reporter, records);
  }
}

function bigReport(records: number, reportId: string, broken?: number): string {
  let xml = reportHead({ reportId });
  for (let i = 0; i < records; i++) {
    const r = recordXml(i, 1 + (i % 7));
    xml += i === broken ? r.replace(/<count>\d+<\/count>/, '<count>many</count>') : r;
  }
  return xml + REPORT_TAIL;
}

const SUMMARY_KEYS = ['begin', 'container', 'counted', 'domain', 'end', 'flag', 'id', 'messages', 'org', 'records', 'repaired', 'report_id', 'source', 'status'];

for (const dialect of storeDialects()) describe(`ingest streams, on ${dialect.name}`, () => {
  it("a report's rows are written in batches while the file is read, and ingest returns a summary without its text or rows", async () => {
    const { db, look, count, dir, rejectedDir, close } = await storeToWatch(dialect);
    const path = join(dir, 'big.xml');
    writeFileSync(path, bigReport(2600, 'streamed'));
    const budget = new WatchingBudget(1_000_000, look);
    const result = await ingestInput(db, { path, budget }, path, { rejectedDir });

    assert.equal(result.status, 'stored');
    // The parser hands over records in batches (whole 64 KiB pieces of the file): when a batch is handed
    // over, every record before it is already written in the report's open transaction.
    const batches = budget.seen.filter((s) => s.records > 0);
    assert.ok(batches.length >= 5, `${batches.length} batches`);
    assert.deepEqual(batches[0], { records: batches[0]!.records, rowsWritten: 0, pendingReports: 1 });
    for (let i = 1; i < batches.length; i++) {
      assert.deepEqual(batches[i], { records: batches[i]!.records, rowsWritten: batches[i - 1]!.records, pendingReports: 1 });
    }
    assert.equal(batches.at(-1)!.records, 2600);
    // Every batch but the last holds exactly the parser's batch size (100), whatever the 64 KiB pieces held: one INSERT shape for the store.
    const sizes = batches.map((b, i) => b.records - (i > 0 ? batches[i - 1]!.records : 0));
    assert.deepEqual([...new Set(sizes.slice(0, -1))], [100]);
    assert.ok(sizes.at(-1)! > 0 && sizes.at(-1)! <= 100);
    assert.equal(await count('SELECT count(*) AS n FROM report_rows'), 2600);
    assert.equal(await count("SELECT count(*) AS n FROM reports WHERE content_hash LIKE 'pending:%'"), 0, 'the report is complete once committed');

    // What comes back is the report's figures, not the report.
    assert.deepEqual(Object.keys(result).sort(), SUMMARY_KEYS);
    assert.equal(result.status === 'stored' && result.records, 2600);
    assert.ok(JSON.stringify(result).length < 400, `result is a small summary: ${JSON.stringify(result)}`);
    await close();
  });

  it('a report refused part way through leaves none of its rows; the file is kept with its reason', async () => {
    const { db, look, count, dir, rejectedDir, close } = await storeToWatch(dialect);
    await ingestInput(db, { bytes: Buffer.from(reportXml({ reportId: 'earlier', records: 3 })) }, 'earlier.xml', { rejectedDir });

    // A flood: the reporter's hourly budget runs out at the third batch, after two were written.
    const flood = join(dir, 'flood.xml');
    writeFileSync(flood, bigReport(3000, 'flood'));
    const budget = new WatchingBudget(1200, look);
    const refused = await ingestInput(db, { path: flood, budget }, flood, { rejectedDir });
    assert.equal(refused.status, 'rejected');
    assert.ok(refused.status === 'rejected' && refused.kind === 'budget', JSON.stringify(refused));
    const [before, last] = budget.seen.slice(-2);
    assert.ok(last!.records > 1200 && before!.records <= 1200, JSON.stringify(budget.seen));
    assert.deepEqual(last, { records: last!.records, rowsWritten: 3 + before!.records, pendingReports: 1 }, 'refused mid-stream, with rows already written');
    assert.ok(before!.records >= 1000);

    // A broken record late in the report: found after four batches were written.
    const broken = join(dir, 'broken.xml');
    writeFileSync(broken, bigReport(2400, 'broken', 2300));
    const rejected = await ingestInput(db, { path: broken }, broken, { rejectedDir });
    assert.equal(rejected.status, 'rejected');
    assert.ok(rejected.status === 'rejected' && rejected.field === 'record[2301]/row/count', JSON.stringify(rejected));

    // Nothing of either report counts or stays: only the earlier report and its 3 rows.
    assert.equal(await count('SELECT count(*) AS n FROM reports'), 1);
    assert.equal(await count('SELECT count(*) AS n FROM report_rows'), 3);
    for (const [r, file] of [
      [refused, flood],
      [rejected, broken],
    ] as const) {
      assert.ok(r.status === 'rejected');
      assert.deepEqual(readFileSync(r.kept_at), readFileSync(file), 'the rejected file is kept as it came');
      const why = JSON.parse(readFileSync(`${r.kept_at}.reason.json`, 'utf8'));
      assert.equal(why.reason, r.reason);
      assert.equal(why.source, file);
    }
    assert.equal(await count('SELECT count(*) AS n FROM rejected_inputs'), 2);
    await close();
  });

  it('a folder ingest keeps the results of rejected inputs only, unless every result is asked for', async () => {
    const { db, dir, rejectedDir, close } = await storeToWatch(dialect);
    const inbox = join(dir, 'inbox');
    for (let day = 0; day < 3; day++) {
      mkdirSync(join(inbox, `day-${day}`), { recursive: true });
      for (let i = 0; i < 8; i++) writeFileSync(join(inbox, `day-${day}`, `r${i}.xml`), reportXml({ reportId: `d${day}-r${i}`, records: 2 }));
    }
    writeFileSync(join(inbox, 'day-1', 'zz-broken.xml'), reportXml({ reportId: 'broken' }).replace('<count>3</count>', '<count>-3</count>'));
    const seen: number[] = [];
    const summary = await ingestPaths(db, [inbox], { rejectedDir, onResult: (_r, done, total) => seen.push(done, total) });
    assert.deepEqual([summary.files, summary.stored, summary.rejected, summary.errors], [25, 24, 1, 0]);
    assert.deepEqual(
      summary.results.map((r) => [r.status, r.source]),
      [['rejected', join(inbox, 'day-1', 'zz-broken.xml')]],
    );
    assert.equal(summary.results_omitted, 0);
    assert.deepEqual(seen.slice(-2), [25, 25], 'the total is known from the start');

    const again = await ingestPaths(db, [inbox], { rejectedDir, keepResults: true });
    assert.equal(again.results.length, 25);
    assert.deepEqual([again.duplicates, again.rejected], [24, 1]);
    await close();
  });
});

it("the parser declares saxes's own handler slots (else saxes's on() would turn it into V8's slow dictionary-mode object, the parse several times slower)", async () => {
  // src/reports/xml.ts (ReportSaxesParser) declares these fields by name before any on() call.
  const { SaxesParser } = await import('saxes');
  const declared = {
    text: 'textHandler',
    cdata: 'cdataHandler',
    opentag: 'openTagHandler',
    closetag: 'closeTagHandler',
    comment: 'commentHandler',
    processinginstruction: 'piHandler',
    doctype: 'doctypeHandler',
    error: 'errorHandler',
  } as const;
  const source = readFileSync(new URL('../src/reports/xml.ts', import.meta.url), 'utf8');
  for (const [event, slot] of Object.entries(declared)) {
    const parser = new SaxesParser({ xmlns: true });
    const handler = () => undefined;
    parser.on(event as 'text', handler);
    assert.equal((parser as unknown as Record<string, unknown>)[slot], handler, `saxes keeps the ${event} handler in ${slot}`);
    assert.ok(source.includes(`slots.${slot} = undefined;`), `ReportSaxesParser declares ${slot}`);
  }
});
