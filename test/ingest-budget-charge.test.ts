/**
 * A reporter's hourly records budget is charged once per report, and only
 * when the report is stored: its records are spent in the transaction that
 * stores it. On Postgres a report whose transaction is aborted for a
 * conflict (here a deadlock, made on purpose with a second connection) is
 * stored again from its input; it used to be charged once per attempt, on
 * the budget's own pool, so a retry counted it twice and a report that then
 * failed stayed counted. The real ingest, the real Postgres (test helper).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ReporterBudget } from '../src/reports/budget.js';
import { ingestInput } from '../src/reports/index.js';
import { usedOfLimit } from '../src/store/counters.js';
import { openStore, type Store } from '../src/store/open.js';
import type { PostgresConnection } from '../src/store/location.js';
import { storeDialects } from './helpers/dialects.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

const DOMAIN = 'charge.example';
const REPORTER = 'receiver.example';
const T = new Date('2026-05-07T10:00:00Z');
const LIMIT = { name: 'reporter-records', limit: 10_000, windowMs: 3_600_000 };
const RECORDS = 250;
const report = (reportId: string) =>
  Buffer.from(
    aggregateReportXml({
      reporter: REPORTER,
      domain: DOMAIN,
      day: '2026-05-06',
      reportId,
      rows: Array.from({ length: RECORDS }, (_, i) => cleanRow(DOMAIN, `198.51.100.${i}`, 1 + (i % 3))),
    }),
  );

async function until(ready: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ready()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return ready();
}

const postgres = storeDialects().find((d) => d.name === 'postgres')!;

describe('the reporter budget on Postgres: a report stored again after a conflict is charged once', () => {
  let store: Store;
  let connection: PostgresConnection;
  let other: pg.Client;
  let watcher: pg.Client;
  before(async () => {
    const location = await postgres.location();
    assert.equal(location.kind, 'postgres');
    connection = (location as { connection: PostgresConnection }).connection;
    store = await openStore(location);
    const settings = { host: connection.host, port: connection.port, database: connection.database, user: connection.user, password: connection.password };
    other = new pg.Client(settings);
    watcher = new pg.Client(settings);
    await other.connect();
    await watcher.connect();
  });
  after(async () => {
    await other?.end();
    await watcher?.end();
    await store?.close();
  });

  it('a deadlock victim is stored on its second attempt and its records are counted once', async () => {
    const budget = new ReporterBudget(LIMIT.limit, () => T.getTime(), store.db);
    // The domain's rollup mark exists (an earlier report): the report's transaction updates its row, and holds it.
    await store.db.insertInto('rollup_marks').values({ name: DOMAIN, changes: 1 }).execute();
    const { rows: before } = await watcher.query<{ id: string }>("select coalesce(max(id), 0) as id from reports");

    // Another connection holds the reporter's counter for this slice of the hour (an insert not yet committed)
    // and, with a long deadlock_timeout, lets the report's transaction be the one Postgres aborts.
    await other.query('begin');
    await other.query("set local deadlock_timeout = '60s'");
    const slice = Math.floor(T.getTime() / (LIMIT.windowMs / 10)) * (LIMIT.windowMs / 10);
    await other.query('insert into limit_counters (name, subject, window_start, count, expires_at) values ($1, $2, $3, 0, $4)', [LIMIT.name, REPORTER, slice, slice + 2 * LIMIT.windowMs]);

    const ingest = ingestInput(store.db, { bytes: report('charged-once'), budget }, 'charged-once.xml', { rejectedDir: '/nonexistent', now: () => T });
    // The report, stored and rolled up, waits to spend its records: its last statement before the commit.
    const waiting = async () =>
      (
        await watcher.query("select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%limit_counters%'")
      ).rows.length > 0;
    assert.ok(await until(waiting, 30_000), 'the report waits on the counter');
    // Now the other connection wants the domain's rollup mark, which the report holds: a deadlock, and the report is the victim.
    await other.query('update rollup_marks set changes = changes where name = $1', [DOMAIN]);
    await other.query('rollback');

    const result = await ingest;
    assert.equal(result.status, 'stored', JSON.stringify(result));
    assert.equal(result.status === 'stored' && result.counted, true);
    // The first attempt's row took an id and was rolled back: the stored copy is the second attempt's.
    assert.equal(result.status === 'stored' && result.id, Number(before[0]!.id) + 2, 'stored on the second attempt');
    assert.equal(await usedOfLimit(store.db, LIMIT, REPORTER, T), RECORDS, 'charged once');
    const reports = await store.db.selectFrom('reports').select(['counted']).execute();
    assert.deepEqual(reports, [{ counted: 1 }]);

    // The same report again: a duplicate, charged like any report read in full (it counts against a flood).
    const again = await ingestInput(store.db, { bytes: report('charged-once'), budget }, 'again.xml', { rejectedDir: '/nonexistent', now: () => T });
    assert.equal(again.status, 'duplicate');
    assert.equal(await usedOfLimit(store.db, LIMIT, REPORTER, T), 2 * RECORDS);
  });
});

describe('the reporter budget gives back what a report that did not commit spent', () => {
  it('in this process (SQLite) and in the store, the next report sees the budget as before', async () => {
    const inProcess = new ReporterBudget(300, () => T.getTime());
    const spent = await inProcess.spend(REPORTER, 200);
    assert.equal(inProcess.used(REPORTER), 200);
    spent.giveBack();
    assert.equal(inProcess.used(REPORTER), 0);
    assert.doesNotThrow(() => inProcess.check(REPORTER, 300));

    const store = await postgres.open();
    const shared = new ReporterBudget(300, () => T.getTime(), store.db);
    await shared.refresh(REPORTER);
    // Spent in a transaction that then rolls back (the report failed): the store counts nothing, and neither does this process.
    await store.db
      .transaction()
      .execute(async (t) => {
        const s = await shared.spend(REPORTER, 200, t);
        assert.equal(shared.used(REPORTER), 200);
        s.giveBack();
        throw new Error('the report failed');
      })
      .catch((e: Error) => assert.equal(e.message, 'the report failed'));
    assert.equal(await usedOfLimit(store.db, LIMIT, REPORTER, T), 0);
    await shared.refresh(REPORTER);
    assert.equal(shared.used(REPORTER), 0);
    assert.doesNotThrow(() => shared.check(REPORTER, 300));
  });
});
