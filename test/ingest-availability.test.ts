/**
 * On SQLite the daemon has one connection to its store. A report used to be
 * stored in one transaction on it, so while a big one was read (minutes for
 * 400 MB) every page, API read and sign-in waited for it. Here, once part of
 * a big report is stored and before the report ends, the API answers and a
 * person signs in, and a process killed at that point leaves nothing
 * counted; with the real API server, the real ingest and a real SQLite file,
 * each seen from a connection of the test's own. Assertions are on order
 * (what happened before the ingest ended), never on time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import pino from 'pino';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { STALE_STAGED_MS, storeReport } from '../src/reports/store.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { LOOPBACK_API_CONFIG } from './helpers/api-server.js';
import { tempStore } from './helpers/cli.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { formSignIn } from './helpers/web.js';
import { recordXml, reportHead, REPORT_TAIL } from './fixtures/reports/make.js';
import { killedAtExit } from './helpers/children.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const config = LOOPBACK_API_CONFIG;
/** Records of the big report: about 14 MB, every one from its own source (past the 20,000 rollup entries held in memory). */
const RECORDS = 20_000;
const BEGIN = Math.floor(NOW.getTime() / 1000) - 86_400;

function records(from: number, to: number): string {
  let xml = '';
  for (let i = from; i < to; i++) xml += recordXml(i, 2);
  return xml;
}

function bigReport(dir: string, name: string, domain: string): string {
  const path = join(dir, name);
  writeFileSync(path, reportHead({ org: 'bigreceiver.example', reportId: 'big-1', domain, begin: BEGIN, end: BEGIN + 86_399 }) + records(0, RECORDS + 1) + REPORT_TAIL);
  return path;
}

/** Reads the store through a connection of its own (WAL: it sees what is committed, and waits for nobody). */
function observer(path: string) {
  const sqlite = new SqliteDatabase(path, { readonly: true });
  const n = (query: string, ...params: unknown[]) => (sqlite.prepare(query).get(...params) as { n: number }).n;
  return {
    stagedRows: () => n('SELECT count(*) AS n FROM report_rows WHERE report IN (SELECT id FROM reports WHERE staged_at IS NOT NULL)'),
    stagedReports: () => n('SELECT count(*) AS n FROM reports WHERE staged_at IS NOT NULL'),
    counted: (domain: string) => n('SELECT count(*) AS n FROM reports WHERE counted = 1 AND domain = ?', domain),
    rollupMessages: (domain: string) => n('SELECT coalesce(sum(messages), 0) AS n FROM daily_rollups WHERE domain = ?', domain),
    rows: () => n('SELECT count(*) AS n FROM report_rows'),
    stagedSums: () => n('SELECT count(*) AS n FROM staged_rollups'),
    close: () => sqlite.close(),
  };
}

/** Whether a write transaction is open on the store (its one writer's lock is held), asked without waiting. */
function writeLockProbe(path: string) {
  const sqlite = new SqliteDatabase(path);
  sqlite.pragma('busy_timeout = 0');
  const locked = () => {
    try {
      sqlite.exec('BEGIN IMMEDIATE');
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_BUSY') return true;
      throw error;
    }
    sqlite.exec('ROLLBACK');
    return false;
  };
  return Object.assign(locked, { close: () => sqlite.close() });
}

/** Polls until `ready()` or `ms` pass; says which. */
async function until(ready: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (ready()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return ready();
}

describe('on SQLite the daemon answers while a long report is being stored', () => {
  let store: Store;
  let server: RunningApiServer;
  let fleet: FleetFixture;
  let temp: { dir: string; db: string };
  const viewer = generateToken();
  const operator = generateToken();

  before(async () => {
    temp = tempStore('dmarc-rollout-availability-');
    store = await openSqliteStore(temp.db);
    fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
    const tokens = new TokenSet([
      { name: 'vera', role: 'viewer', sha256: viewer.sha256 },
      { name: 'otto', role: 'operator', sha256: operator.sha256 },
    ]);
    const context = { store, now: () => NOW, loadPlan: fleet.loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) };
    server = await startApiServer({ config, tokens, logger: pino({ level: 'silent' }), context });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });

  it('the fleet API answers and a person signs in while a big report is being stored; the report counts only once it is whole', async () => {
    const look = observer(temp.db);
    const domain = fleet.steady;
    const countedBefore = look.counted(domain);
    const messagesBefore = look.rollupMessages(domain);
    const rowsBefore = look.rows();
    const path = bigReport(temp.dir, 'big.xml', domain);
    let ended = false;
    const ingest = ingestInput(store.db, { path }, 'big.xml', { rejectedDir: join(temp.dir, 'rejected'), now: () => NOW }).finally(() => {
      ended = true;
    });
    try {
      // Part of it stored (committed: another connection sees it), the rest still to be read.
      assert.ok(await until(() => look.stagedRows() > 0 || ended, 60_000));
      assert.equal(ended, false, 'rows of the report are stored while it is read');
      const answered: string[] = [];
      const note = (what: string) => answered.push(ended ? `${what} after the ingest` : what);
      const fleetPage = fetch(`${server.url}/api/v1/domains`, { headers: { authorization: `Bearer ${viewer.token}` } }).then(async (res) => {
        note('domains');
        return { status: res.status, body: JSON.stringify(await res.json()) };
      });
      const signIn = formSignIn(server.url, operator.token).then((r) => {
        note('sign-in');
        return r;
      });
      const domainPage = fetch(`${server.url}/api/v1/domains/${domain}`, { headers: { authorization: `Bearer ${viewer.token}` } }).then(async (res) => {
        note('domain');
        return { status: res.status, body: JSON.stringify(await res.json()) };
      });
      const [listed, signedIn, detail] = await Promise.all([fleetPage, signIn, domainPage]);
      // Half stored, nothing of it counted: not under its domain, not in the rollups the engine and the pages read.
      const stagedMeanwhile = look.stagedReports();
      const countedMeanwhile = look.counted(domain);
      const messagesMeanwhile = look.rollupMessages(domain);
      const endedMeanwhile = ended;
      assert.deepEqual(answered.sort(), ['domain', 'domains', 'sign-in'], 'every request answered before the report was stored');
      assert.equal(listed.status, 200);
      assert.ok(listed.body.includes(domain));
      assert.equal(signedIn.res.status, 303);
      assert.ok(signedIn.session, 'a session cookie');
      assert.equal(detail.status, 200);
      assert.equal(endedMeanwhile, false);
      assert.equal(stagedMeanwhile, 1);
      assert.equal(countedMeanwhile, countedBefore);
      assert.equal(messagesMeanwhile, messagesBefore);

      const result = await ingest;
      assert.equal(result.status, 'stored', JSON.stringify(result));
      assert.equal(result.status === 'stored' && result.counted, true);
      assert.equal(result.status === 'stored' && result.records, RECORDS + 1);
      assert.equal(look.stagedReports(), 0);
      assert.equal(look.counted(domain), countedBefore + 1);
      assert.equal(look.rollupMessages(domain), messagesBefore + 2 * (RECORDS + 1), 'the rollups equal the rows');
      assert.equal(look.rows(), rowsBefore + RECORDS + 1);
      assert.equal(look.stagedSums(), 0, 'the staged sums are gone once merged');
    } finally {
      await ingest.catch(() => undefined);
      look.close();
    }
  });

  it('the fleet API answers from what was committed while the transaction that counts a big report is open, and shows the report once it commits', async () => {
    // The decision merges the report's staged rollup entries into the daily rollups, in one transaction (seconds for
    // 547,000 entries); the API reads through a connection of its own (Store.reader) and does not wait for it.
    const look = observer(temp.db);
    const writeLocked = writeLockProbe(temp.db);
    const domain = fleet.spoofed;
    const n = 3000;
    const figures = async () => {
      const res = await fetch(`${server.url}/api/v1/domains`, { headers: { authorization: `Bearer ${viewer.token}` } });
      assert.equal(res.status, 200);
      const { domains } = (await res.json()) as { domains: Array<{ domain: string; authorised_messages: number }> };
      return domains.find((d) => d.domain === domain)!.authorised_messages;
    };
    // Nothing stale left to measure (and store) on the page: the one read during the decision only reads.
    const before = await figures();
    const path = join(temp.dir, 'decided.xml');
    // Every record from its own source, passing DMARC for the domain: authorised mail, two messages each.
    const rows = Array.from({ length: n }, (_, i) => cleanRow(domain, `10.9.${i >> 8}.${i & 255}`, 2));
    writeFileSync(path, aggregateReportXml({ reporter: 'google.com', domain, day: new Date(BEGIN * 1000).toISOString().slice(0, 10), reportId: 'decided-1', rows }));
    let ended = false;
    // Past 500 entries they are staged, and merged 5 a statement: the decision stays open for hundreds of turns of the event loop.
    const ingest = storeReport(store.db, { path }, { source: 'decided.xml', now: () => NOW, rollupEntriesHeld: 500, mergeSlice: 5 }).finally(() => {
      ended = true;
    });
    try {
      // Every entry staged and committed, and the store's write lock held: the deciding transaction is open.
      assert.ok(await until(() => ended || (look.stagedSums() === n && writeLocked()), 60_000));
      assert.equal(ended, false, 'the decision was seen open');
      const during = await figures();
      const stagedWhenAnswered = look.stagedReports();
      assert.equal(stagedWhenAnswered, 1, 'the fleet API answered before the report was counted');
      assert.equal(during, before, 'and from what was committed before it');
      const outcome = await ingest;
      assert.equal(outcome.status === 'stored' && outcome.counted, true);
      assert.equal(look.stagedReports(), 0);
      assert.equal(look.stagedSums(), 0);
      assert.equal(await figures(), before + 2 * n, 'the report counts once committed');
    } finally {
      await ingest.catch(() => undefined);
      writeLocked.close();
      look.close();
    }
  });

  it('a process killed mid-ingest leaves nothing counted; the same report then ingests cleanly and what the dead process staged is deleted', async () => {
    const look = observer(temp.db);
    const domain = fleet.gated;
    const countedBefore = look.counted(domain);
    const messagesBefore = look.rollupMessages(domain);
    const rowsBefore = look.rows();
    const path = bigReport(temp.dir, 'killed.xml', domain);
    const script = join(temp.dir, 'ingest-child.mts');
    writeFileSync(
      script,
      `import { ingestInput } from ${JSON.stringify(new URL('../src/reports/index.js', import.meta.url).pathname)};
import { openSqliteStore } from ${JSON.stringify(new URL('../src/store/open.js', import.meta.url).pathname)};
const store = await openSqliteStore(process.argv[2]);
const result = await ingestInput(store.db, { path: process.argv[3] }, 'killed.xml', { rejectedDir: process.argv[4] });
console.log(JSON.stringify(result));
`,
    );
    const child = killedAtExit(spawn(process.execPath, ['--import', 'tsx', script, temp.db, path, join(temp.dir, 'rejected')], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const exited = once(child, 'exit');
    try {
      assert.ok(await until(() => look.stagedRows() > 0 || child.exitCode !== null, 120_000), 'the child stored part of the report');
      child.kill('SIGKILL');
      const [code, signal] = await exited;
      assert.equal(signal, 'SIGKILL', `killed mid-ingest (it exited ${code} first)`);

      // Staged, never counted: no report under the domain, no rollup, no rows the engine reads.
      assert.equal(look.stagedReports(), 1);
      assert.ok(look.stagedRows() > 0);
      assert.equal(look.counted(domain), countedBefore);
      assert.equal(look.rollupMessages(domain), messagesBefore);

      // The same report again, in this process: stored and counted once, whole; the dead process's staged report is deleted first.
      const again: IngestResult = await ingestInput(store.db, { path }, path, { rejectedDir: join(temp.dir, 'rejected'), now: () => new Date() });
      assert.equal(again.status, 'stored', JSON.stringify(again));
      assert.equal(again.status === 'stored' && again.counted, true);
      assert.equal(look.counted(domain), countedBefore + 1);
      assert.equal(look.rollupMessages(domain), messagesBefore + 2 * (RECORDS + 1));
      assert.equal(look.stagedReports(), 0);
      assert.equal(look.rows(), rowsBefore + RECORDS + 1, 'only the stored report keeps rows');
      assert.equal(look.stagedSums(), 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      look.close();
    }
  });

  it('a report given as bytes (an upload, a mail) lets timers and requests run while it is stored', async () => {
    // From memory nothing waits on I/O: without turns of the event loop, not one timer ran until the report was stored.
    const bytes = Buffer.from(reportHead({ reportId: 'in-memory', domain: 'memory.example' }) + records(0, 8000) + REPORT_TAIL);
    let ended = false;
    const ingest = ingestInput(store.db, { bytes }, 'upload:otto/in-memory.xml', { rejectedDir: join(temp.dir, 'rejected'), now: () => NOW }).finally(() => {
      ended = true;
    });
    const ticks: boolean[] = [];
    const timer = setInterval(() => ticks.push(ended), 1);
    const answered = fetch(`${server.url}/api/v1/domains`, { headers: { authorization: `Bearer ${viewer.token}` } }).then((res) => ({ status: res.status, ended }));
    const result = await ingest;
    clearInterval(timer);
    assert.equal(result.status, 'stored', JSON.stringify(result));
    assert.ok(ticks.filter((atEnd) => !atEnd).length > 0, `a timer ran while the report was stored (${ticks.length} ticks, all after)`);
    const page = await answered;
    assert.equal(page.status, 200);
    assert.equal(page.ended, false, 'the fleet API answered before the report was stored');
  });

  it("a staged report of another host's process is deleted only once it made no progress for a while", async () => {
    const look = observer(temp.db);
    const writer = new SqliteDatabase(temp.db);
    try {
      const at = Date.now();
      const { lastInsertRowid } = writer
        .prepare(
          `INSERT INTO reports (org, report_id, domain, "begin", "end", content_hash, counted, duplicates, source, metadata, received_at, staged_at)
           VALUES ('far.example', 'elsewhere', '', 1, 2, 'pending:another-host:4242:x', 0, 0, 'another host', '{}', ?, ?)`,
        )
        .run(new Date(at).toISOString(), at);
      writer.prepare("INSERT INTO report_rows (report, source_ip, count) VALUES (?, '192.0.2.1', 1)").run(lastInsertRowid);
      const small = (id: string) => Buffer.from(reportHead({ reportId: id, domain: fleet.paused }) + records(0, 3) + REPORT_TAIL);
      const ingestAt = (id: string, ms: number) => ingestInput(store.db, { bytes: small(id) }, `${id}.xml`, { rejectedDir: join(temp.dir, 'rejected'), now: () => new Date(ms) });
      // Still making progress, as far as anyone here can tell: left alone.
      assert.equal((await ingestAt('soon', at + 2 * 60_000)).status, 'stored');
      assert.equal(look.stagedReports(), 1);
      // No progress for longer than STALE_STAGED_MS: deleted, with its rows.
      assert.equal((await ingestAt('later', at + STALE_STAGED_MS + 4 * 60_000)).status, 'stored');
      assert.equal(look.stagedReports(), 0);
      assert.equal(look.stagedRows(), 0);
    } finally {
      writer.close();
      look.close();
    }
  });
});
