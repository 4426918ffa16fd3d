/**
 * Daily rollups (src/store/rollups.ts), on SQLite and Postgres: ingest keeps
 * them equal to the rows of counted reports (a re-sent or changed copy is not
 * rolled up), the engine measures the same figures from them as from the raw
 * rows, checked against figures worked out by hand for a fixture; the
 * migration's backfill rebuilds them from stored rows; retention prunes raw
 * rows in bounded batches without changing a figure or losing dedup; and a
 * tick with nothing new returns its stored decision without measuring again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { measureStage, type MeasureInput } from '../src/engine/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { SourceRules } from '../src/engine/sources.js';
import { runTick } from '../src/engine/tick.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { addSourceRule } from '../src/store/source-rules.js';
import { loadObservedRows } from '../src/store/observations.js';
import { backfillRollups, loadRollupRows, pruneRawRows, rollupChanges } from '../src/store/rollups.js';
import type { Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';

const D = 'rolled.example';
const DAY = 86_400;
/** Day X of the fixture: 2026-05-04. */
const X = Date.parse('2026-05-04T00:00:00Z') / 1000;
const RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example';

interface Row {
  ip: string;
  count: number;
  dkim: 'pass' | 'fail';
  spf: 'pass' | 'fail';
  /** Only to make two rows of one identity differ in what the engine never reads. */
  envelopeTo?: string;
}
const own = (ip: string, count: number, envelopeTo?: string): Row => ({ ip, count, dkim: 'pass', spf: 'pass', ...(envelopeTo ? { envelopeTo } : {}) });
/** The domain's own server with its signature broken (d= and selector as before, failing) and SPF failing. */
const broken = (ip: string, count: number): Row => ({ ip, count, dkim: 'fail', spf: 'fail' });
/** Spoofing: no signature, SPF fails for the domain. */
const spoof = (ip: string, count: number): Row => ({ ip, count, dkim: 'fail', spf: 'fail' });

function xml(org: string, reportId: string, day: number, rows: Row[], isSpoof: (r: Row) => boolean = (r) => r.ip.startsWith('203.')): string {
  const begin = X + day * DAY;
  const records = rows
    .map(
      (r) => `<record><row><source_ip>${r.ip}</source_ip><count>${r.count}</count><policy_evaluated><disposition>none</disposition><dkim>${r.dkim}</dkim><spf>${r.spf}</spf></policy_evaluated></row>
<identifiers>${r.envelopeTo ? `<envelope_to>${r.envelopeTo}</envelope_to>` : ''}<header_from>${D}</header_from></identifiers>
<auth_results>${isSpoof(r) ? '' : `<dkim><domain>${D}</domain><selector>s1</selector><result>${r.dkim}</result></dkim>`}<spf><domain>${D}</domain><result>${r.spf}</result></spf></auth_results></record>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<feedback><report_metadata><org_name>${org}</org_name><email>noreply@${org}</email><report_id>${reportId}</report_id><date_range><begin>${begin}</begin><end>${begin + DAY - 1}</end></date_range></report_metadata>
<policy_published><domain>${D}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
${records}
</feedback>
`;
}

/** The fixture: two reporters over days X..X+2, a split day, a re-sent copy and a changed copy. */
const REPORTS: Array<{ name: string; xml: string; arrives: number; counted: boolean }> = [
  // Two rows of one identity (they differ in envelope_to only): one rollup of 150.
  { name: 'google-0', xml: xml('google.com', 'g0', 0, [own('192.0.2.10', 100, 'a.example'), own('192.0.2.10', 50, 'b.example'), spoof('203.0.113.5', 7)]), arrives: 1, counted: true },
  { name: 'outlook-0', xml: xml('outlook.com', 'o0', 0, [own('192.0.2.10', 80)]), arrives: 1, counted: true },
  { name: 'google-1', xml: xml('google.com', 'g1', 1, [own('192.0.2.10', 120), broken('192.0.2.11', 4)]), arrives: 2, counted: true },
  { name: 'outlook-1', xml: xml('outlook.com', 'o1', 1, [own('192.0.2.10', 90)]), arrives: 2, counted: true },
  // Google splits day 2 into two reports with other rows: both count.
  { name: 'google-2a', xml: xml('google.com', 'g2a', 2, [own('192.0.2.10', 60)]), arrives: 3, counted: true },
  { name: 'google-2b', xml: xml('google.com', 'g2b', 2, [own('192.0.2.10', 40), spoof('203.0.113.5', 3)]), arrives: 3, counted: true },
  { name: 'outlook-2', xml: xml('outlook.com', 'o2', 2, [own('192.0.2.10', 70)]), arrives: 3, counted: true },
  // Outlook re-sends day 2 under a new report_id: flagged, not counted.
  { name: 'outlook-2-resent', xml: xml('outlook.com', 'o2-retry', 2, [own('192.0.2.10', 70)]), arrives: 3, counted: false },
  // A changed copy of google-0 (same identity, other content): flagged, not counted.
  { name: 'google-0-changed', xml: xml('google.com', 'g0', 0, [own('192.0.2.10', 999)]), arrives: 3, counted: false },
];

const at = (seconds: number) => new Date(seconds * 1000);
/** Noon of day X+3: days X..X+2 are whole days before today. */
const NOW = at(X + 3 * DAY + 12 * 3600);

async function ingest(store: Store, dir: string, r: { name: string; xml: string; arrives: number }): Promise<IngestResult> {
  return ingestInput(store.db, { bytes: Buffer.from(r.xml) }, `${r.name}.xml`, { rejectedDir: join(dir, 'rejected'), now: () => at(X + r.arrives * DAY + 6 * 3600) });
}

function measure(rows: MeasureInput['rows']) {
  return measureStage({
    domain: D,
    rows,
    windowStart: at(X),
    now: NOW,
    enrolledDomains: new Set([D]),
    subdomainsJudged: true,
    rules: new SourceRules([]),
    unalignedSourceMinMessages: 50,
    quietReporterDays: 3,
  });
}

const range = { fromEpoch: X - 30 * DAY, toEpoch: NOW.getTime() / 1000 };

const rollupTotals = async (store: Store) => {
  const rows = await store.db.selectFrom('daily_rollups').select(['messages', 'records']).execute();
  return { entries: rows.length, messages: rows.reduce((n, r) => n + Number(r.messages), 0), records: rows.reduce((n, r) => n + Number(r.records), 0) };
};

for (const dialect of storeDialects()) {
  describe(`daily rollups (${dialect.name})`, () => {
    const opened: Store[] = [];
    after(async () => {
      for (const s of opened) await s.close();
    });
    const fresh = async () => {
      const store = await dialect.open();
      opened.push(store);
      return { store, dir: tempStore('dmarc-rollout-rollups-').dir };
    };
    const ingestAll = async (store: Store, dir: string) => {
      for (const r of REPORTS) {
        const result = await ingest(store, dir, r);
        assert.equal(result.status, 'stored', `${r.name}: ${JSON.stringify(result)}`);
        assert.equal(result.status === 'stored' && result.counted, r.counted, r.name);
      }
    };

    it('ingest rolls up counted reports only, and the engine measures from them the figures worked out by hand', async () => {
      const { store, dir } = await fresh();
      await ingestAll(store, dir);
      // 11 counted rows; the two rows of one identity in google-0 are one entry. Neither flagged copy is in.
      assert.deepEqual(await rollupTotals(store), { entries: 9, messages: 624, records: 11 });

      const m = measure(await loadRollupRows(store.db, D, range));
      // Authorised: 150 + 80 + (120 + 4) + 90 + (60 + 40) + 70 = 614, of which the broken signature's 4 fail.
      assert.deepEqual(m.authorised, { messages: 614, passed: 610, failed: 4, failRate: 4 / 614 });
      assert.deepEqual(m.spoofing, { messages: 10, passed: 0, failed: 10 });
      assert.deepEqual(m.all, { messages: 624, passed: 610, failed: 14 });
      assert.equal(m.daysObserved, 3);
      assert.deepEqual(m.complete?.days, ['2026-05-04', '2026-05-05', '2026-05-06']);
      assert.deepEqual(m.recent, { messages: 170, passed: 170, failed: 0, failRate: 0, days: ['2026-05-06'] });
      const sources = Object.fromEntries(m.sources.map((s) => [s.key, [s.class, s.messages, s.daysSeen]]));
      assert.deepEqual(sources, {
        [`192.0.2.10 dkim:${D} spf:${D}`]: ['authorised', 610, 3],
        '192.0.2.11': ['authorised', 4, 1],
        '203.0.113.5': ['unauthenticated', 10, 2],
      });
      // The raw rows say exactly the same.
      assert.deepEqual(measure(await loadObservedRows(store.db, D, range)), m);
    });

    it('the backfill rebuilds from stored rows exactly what ingest built', async () => {
      const { store, dir } = await fresh();
      await ingestAll(store, dir);
      const built = await store.db.selectFrom('daily_rollups').selectAll().orderBy('key').execute();
      assert.equal(await rollupChanges(store.db, D), 7, 'one change per counted report');
      await store.db.deleteFrom('daily_rollups').execute();
      assert.equal(await backfillRollups(store.db), 11);
      assert.deepEqual(await store.db.selectFrom('daily_rollups').selectAll().orderBy('key').execute(), built);
    });

    it('retention prunes raw rows in bounded batches; figures, rollups and dedup stay', async () => {
      const { store, dir } = await fresh();
      await ingestAll(store, dir);
      const before = measure(await loadRollupRows(store.db, D, range));
      const rollups = await rollupTotals(store);
      // Reports that ended before day X+2: google-0 (3 rows), outlook-0 (1), google-0-changed (1), google-1 (2), outlook-1 (1).
      const cutoff = X + 2 * DAY;
      const first = await pruneRawRows(store.db, { before: cutoff, maxRows: 2, now: NOW });
      // google-0 alone is over the budget: it goes on its own, and the call stops there.
      assert.deepEqual(first, { reports: 1, rows: 3, more: true });
      const calls = [first];
      while (calls.at(-1)!.more) calls.push(await pruneRawRows(store.db, { before: cutoff, maxRows: 2, now: NOW }));
      assert.ok(calls.every((c) => c.rows <= 3));
      assert.equal(calls.reduce((n, c) => n + c.rows, 0), 8);
      const kept = await store.db.selectFrom('reports').select(['report_id', 'rows_pruned_at', 'content_hash']).orderBy('id').execute();
      assert.equal(kept.length, REPORTS.length, 'every report is kept');
      assert.deepEqual(kept.filter((r) => r.rows_pruned_at !== null).map((r) => r.report_id).sort(), ['g0', 'g0', 'g1', 'o0', 'o1']);
      const rawLeft = await store.db.selectFrom('report_rows').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(rawLeft.n), 5);
      assert.deepEqual(await rollupTotals(store), rollups);
      assert.deepEqual(measure(await loadRollupRows(store.db, D, range)), before);
      // The same file again is still a duplicate, rows or not.
      const again = await ingest(store, dir, REPORTS[0]!);
      assert.equal(again.status, 'duplicate');
      assert.deepEqual(await pruneRawRows(store.db, { before: cutoff, maxRows: 2, now: NOW }), { reports: 0, rows: 0, more: false });
    });

    it('a report with more raw rows than a statement deletes loses them a slice at a time, other queries answered between', async () => {
      const { store, dir } = await fresh();
      await ingestAll(store, dir);
      // A big receiver's report: 2,500 rows (each source its own), pruned 1,000 rows a statement.
      const rows = Array.from({ length: 2_500 }, (_, i) => own(`198.51.${Math.floor(i / 250)}.${i % 250}`, 1));
      const big = await ingest(store, dir, { name: 'big', xml: xml('bigreceiver.example', 'big0', 0, rows), arrives: 1 });
      assert.equal(big.status, 'stored');
      const bigId = Number((await store.db.selectFrom('reports').select('id').where('report_id', '=', 'big0').executeTakeFirstOrThrow()).id);
      const rollups = await rollupTotals(store);
      const rowsOf = async () => Number((await store.db.selectFrom('report_rows').select((eb) => eb.fn.countAll<number>().as('n')).where('report', '=', bigId).executeTakeFirstOrThrow()).n);
      const markOf = async () => (await store.db.selectFrom('reports').select('rows_pruned_at').where('id', '=', bigId).executeTakeFirstOrThrow()).rows_pruned_at;
      assert.equal(await rowsOf(), 2_500);

      // Another request's reads, as the prune goes: what they saw of the big report's rows and its mark, in one
      // statement (two would let the prune's last transaction commit between them, on Postgres).
      const rowsAndMark = async () => {
        const r = await store.db
          .selectFrom('reports as r')
          .select((eb) => ['r.rows_pruned_at', eb.selectFrom('report_rows as rr').select((e) => e.fn.countAll<number>().as('n')).whereRef('rr.report', '=', 'r.id').as('n')])
          .where('r.id', '=', bigId)
          .executeTakeFirstOrThrow();
        return { rows: Number(r.n), marked: r.rows_pruned_at !== null };
      };
      const seen: Array<{ rows: number; marked: boolean }> = [];
      let done = false;
      const watching = (async () => {
        while (!done) {
          seen.push(await rowsAndMark());
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const result = await pruneRawRows(store.db, { before: X + 2 * DAY, maxRows: 1_000_000, now: NOW, rowsPerStatement: 1_000 });
      done = true;
      await watching;
      assert.deepEqual(result, { reports: 6, rows: 2_508, more: false });
      const during = [...new Set(seen.map((s) => s.rows))];
      assert.ok(during.some((n) => n > 0 && n < 2_500), `a read between two slices saw part of the rows gone: ${during.join(', ')}`);
      // On SQLite every statement runs on the one connection, so the reads fall between two statements, never
      // inside one; on Postgres they run beside the prune on their own connection and may skip a slice or two.
      if (dialect.name === 'sqlite') {
        for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]!.rows - seen[i]!.rows <= 1_000, `at most 1,000 rows a statement: ${seen[i - 1]!.rows} then ${seen[i]!.rows}`);
      }
      assert.ok(seen.every((s) => !s.marked || s.rows === 0), 'marked pruned only once every row is gone');
      assert.equal(await rowsOf(), 0);
      assert.notEqual(await markOf(), null);
      assert.deepEqual(await rollupTotals(store), rollups, 'its rollups stay');
    });

    it('a tick with nothing new returns the stored decision without measuring; a new report, a new day or a new rule measures again', async () => {
      const { store, dir } = await fresh();
      await ingestAll(store, dir);
      const since = at(X).toISOString();
      await store.db
        .insertInto('domains')
        .values({ domain: D, plan: 'default', provider: 'memory', stage_index: 0, state: 'active', state_reason: null, stage_since: since, last_record: RECORD, window_start: since, approved_stage_index: null, found_record: null, floor_index: null, report_uri: null, enrolled_at: since, updated_at: since })
        .execute();
      const dns = new MemoryDns();
      dns.set(`_dmarc.${D}`, { txt: [RECORD], ttl: 3600 });
      const tick = async (now: Date) => (await runTick({ store, now, providerFor: () => dns, loadPlan }))[0]!;
      const measured = async (now: Date) => (await runTick({ store, now, providerFor: () => dns, loadPlan, dryRun: true }))[0]!.decision!;

      const first = await tick(NOW);
      assert.equal(first.unchanged, undefined);
      assert.equal(first.decision?.action, 'hold');
      const later = at(NOW.getTime() / 1000 + 3600);
      const second = await tick(later);
      assert.equal(second.unchanged, true);
      // What measuring again would have said, to the check.
      assert.deepEqual(second.decision, await measured(later));
      const audits = await store.db.selectFrom('audit_events').select('id').where('domain', '=', D).execute();

      // A new report: measured again.
      await ingest(store, dir, { name: 'outlook-3', xml: xml('outlook.com', 'o3', 3, [own('192.0.2.10', 50)]), arrives: 3 });
      assert.equal((await tick(at(NOW.getTime() / 1000 + 7200))).unchanged, undefined);
      assert.equal((await tick(at(NOW.getTime() / 1000 + 7300))).unchanged, true);
      // The next UTC day: measured again (days complete, the dwell moves on).
      const tomorrow = at(X + 4 * DAY + 60);
      const nextDay = await tick(tomorrow);
      assert.equal(nextDay.unchanged, undefined);
      assert.deepEqual(nextDay.decision, await measured(tomorrow));
      // An allowlist entry: measured again.
      await addSourceRule(store.db, { domain: D, kind: 'ip', value: '203.0.113.5', verdict: 'authorised', added_by: 'test', added_at: tomorrow.toISOString(), note: null });
      assert.equal((await tick(at(X + 4 * DAY + 120))).unchanged, undefined);
      assert.equal((await tick(at(X + 4 * DAY + 180))).unchanged, true);
      // Reuse writes no audit: the decision it returns was audited when it was made.
      const hold = await store.db.selectFrom('audit_events').select('id').where('domain', '=', D).where('id', '>', Math.max(...audits.map((a) => Number(a.id)))).execute();
      assert.ok(hold.length <= 3, `${hold.length} audit events`);
    });
  });
}

describe('until when measured figures stand (StageMetrics.stableUntil)', () => {
  // Two regular reporters over 12 days, one usually 6 hours late, the other a day late; the second one's last report is missing.
  const start = X - 12 * DAY;
  const rows: MeasureInput['rows'] = [];
  const arrivals: NonNullable<MeasureInput['arrivals']> = [];
  for (let d = 0; d < 12; d++) {
    const begin = start + d * DAY;
    for (const [reporter, delay] of [['google.com', 6 * 3600], ['yahoo.com', DAY]] as const) {
      if (reporter === 'yahoo.com' && d === 11) continue;
      rows.push({ reporter, begin, end: begin + DAY - 1, policyDomain: D, sourceIp: '192.0.2.10', count: 100, headerFrom: D, dkim: 'pass', spf: 'pass', disposition: null, authDkim: [{ domain: D, selector: 's1', result: 'pass' }], authSpf: [{ domain: D, result: 'pass' }] });
      arrivals.push({ reporter, begin, end: begin + DAY - 1, arrivedAt: begin + DAY + delay });
    }
  }
  const at = (now: number) =>
    measureStage({ domain: D, rows, windowStart: new Date((start + 2 * DAY) * 1000), now: new Date(now * 1000), enrolledDomains: new Set([D]), subdomainsJudged: true, rules: new SourceRules([]), unalignedSourceMinMessages: 50, quietReporterDays: 3, arrivals, lateSlackHours: 12 });
  // 01:00 the day after X: yahoo.com's report for X-1 is due a day after it ended (X + 1 day + 1 s) and turns late past 12 hours more.
  const now0 = X + DAY + 3600;
  const { stableUntil: _, ...rest } = at(now0);

  it('is the next threshold ahead: here, when yahoo.com falls late', () => {
    assert.equal(Date.parse(at(now0).stableUntil!) / 1000, X + DAY + 1 + 12 * 3600 + 1);
    assert.equal(at(now0).reporters.find((r) => r.reporter === 'yahoo.com')?.late, false);
  });

  it('the figures are the same at every instant before it, and change at it', () => {
    const stable = Date.parse(at(now0).stableUntil!) / 1000;
    for (let t = now0; t < stable; t += 1777) {
      const { stableUntil: __, ...then } = at(t);
      assert.deepEqual(then, rest, `at ${new Date(t * 1000).toISOString()}`);
    }
    assert.deepEqual(at(stable - 1).reporters, rest.reporters);
    assert.equal(at(stable).reporters.find((r) => r.reporter === 'yahoo.com')?.late, true);
  });
});
