/**
 * One domain with very many rollup entries, as a 400 MB report leaves it
 * (BENCH_ENTRIES, default 100,000, with 28 days of ordinary reports; written
 * by test/helpers/large-domain.ts through the store's rollup functions), on
 * SQLite and on a temp Postgres (BENCH_STORES). Printed, in the same
 * process, alternating BENCH_ROUNDS times (default 3), each with its CPU,
 * wall time and the longest the event loop was held (bench/loop-hold.ts):
 *
 * - before: measuring it as the engine did until now, one statement for
 *   each of the two reads and the engine in one piece (measureStage);
 * - now: assessDomain, which reads the rollups rollupPageSize() entries a
 *   statement and runs the engine in steps, with turns of the event loop
 *   between (their figures are checked equal to before's);
 * - BENCH_ORDINARY (default 200) ordinary domains (28 days of three
 *   reporters' reports, some 260 entries each) measured both ways: what a
 *   tick pays for the paging and the steps, per domain;
 * - its domain page (measured afresh, and its daily series), now only; and
 *   as the API serves it, a first request and one a minute later that reads
 *   the measurement the first kept (src/fleet/measured-cache.ts);
 *   then the doors' work on that view, each in one piece: the API's schema
 *   check and JSON, and the HTML page, with every source against the
 *   SOURCES_LISTED a class the view lists;
 * - a stale fleet page with the domain on it, measured for the request
 *   (no budget of work, before) and over the page's budget of work (now:
 *   shown as the tick stored it, the tick measures it);
 * - on Postgres, the plan of the cursor's statement (EXPLAIN), as the
 *   planner picks it for this one-domain table and without sequential scans.
 *
 * The ratios are now / before: CPU, and the longest hold.
 *
 * Run: node --import tsx bench/measure-large-domain.ts  (env: BENCH_ENTRIES=100000 BENCH_STORES=sqlite,postgres BENCH_ROUNDS=3 BENCH_ORDINARY=200)
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { domainViewSchema } from '../src/api/schemas.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { measureStage } from '../src/engine/metrics.js';
import { REPORTER_HISTORY_DAYS } from '../src/engine/reporters.js';
import { SourceRules } from '../src/engine/sources.js';
import { assessDomain, measureInputOf, rollupRange, runTick } from '../src/engine/tick.js';
import type { StageMetrics } from '../src/engine/types.js';
import { fleetPage, REMEASURE_ENTRIES_PER_REQUEST } from '../src/fleet/fleet-page.js';
import { MeasuredDomains } from '../src/fleet/measured-cache.js';
import { domainView } from '../src/fleet/views.js';
import { loadPlan, type Plan } from '../src/plans/index.js';
import { enrolledBetween, getDomain } from '../src/store/domains.js';
import { openStore, type Store } from '../src/store/open.js';
import type { StoreLocation } from '../src/store/location.js';
import { listReporterAcknowledgements, loadReportArrivals } from '../src/store/report-arrivals.js';
import { loadRollupRows, rollupPageSize } from '../src/store/rollups.js';
import type { DomainRow } from '../src/store/schema.js';
import { sourceRulesFor } from '../src/store/source-rules.js';
import { renderDomainPage } from '../src/web/domain-page.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { LARGE_DOMAIN_RECORD, writeLargeDomain } from '../test/helpers/large-domain.js';
import { stall, timed, type Timed } from './loop-hold.js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 100_000);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ORDINARY = Number(process.env.BENCH_ORDINARY ?? 200);
const NOW = new Date('2026-06-15T12:00:00Z');
const DOMAIN = 'big.bench.example';
const DAY = 86_400;

const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-large-domain-'));
let postgres: PostgresServer | undefined;

/** The engine's measuring as it was: each read in one statement, measureStage in one piece (assessDomain's inputs otherwise). */
async function measureInOnePiece(store: Store, row: DomainRow, plan: Plan, now: Date): Promise<StageMetrics> {
  const range = rollupRange(row, now);
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const rows = await loadRollupRows(store.db, row.domain, range, { pageSize: 1_000_000_000 });
  const arrivals = await loadReportArrivals(store.db, row.domain, { fromEpoch: Math.min(range.fromEpoch, nowSeconds - REPORTER_HISTORY_DAYS * DAY), toEpoch: nowSeconds });
  const acknowledgements = await listReporterAcknowledgements(store.db, row.domain);
  const rules = new SourceRules(await sourceRulesFor(store.db, row.domain));
  const enrolled = await enrolledBetween(store.db, rows.map((r) => r.headerFrom), row.domain);
  return measureStage(measureInputOf(row, plan, now, { rows, enrolled, rules, arrivals, acknowledgements }));
}

async function location(kind: 'sqlite' | 'postgres'): Promise<StoreLocation> {
  if (kind === 'sqlite') return { kind, path: join(work, 'large-domain.sqlite') };
  postgres ??= await startPostgres();
  return { kind, connection: postgres.connection(await postgres.createDatabase('large_domain')) };
}

const ms = (t: Timed<unknown>) => `${t.cpuMs.toFixed(0)} ms CPU, ${t.ms.toFixed(0)} ms wall`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** A digest of the figures (assessDomain moves stableUntil by when arrivals leave the reporter history; the figures are the rest). */
const figures = (m: StageMetrics) => createHash('sha256').update(JSON.stringify({ ...m, stableUntil: undefined })).digest('hex');

try {
  for (const kind of STORES) {
    const store = await openStore(await location(kind));
    const built = await timed(() => writeLargeDomain(store, { domain: DOMAIN, now: NOW, entries: ENTRIES }));
    if (store.dialect === 'postgres') await sql`analyze`.execute(store.db);
    console.log(`\n${kind}: one domain with ${built.value.entries.toLocaleString('en')} rollup entries (written in ${(built.ms / 1000).toFixed(1)} s); pages of ${rollupPageSize(store.db)}`);
    const row = (await getDomain(store.db, DOMAIN))!;
    const plan = loadPlan('default');
    // Each keeps a digest of its figures, not the figures: six sets of 100,000 sources kept alive would make
    // the garbage collector's work (and its pauses) the benchmark's.
    const before: Array<Timed<string>> = [];
    const now: Array<Timed<string>> = [];
    for (let round = 0; round < ROUNDS; round++) {
      // The digest out of the timing: JSON of 100,000 sources is itself a quarter second in one piece.
      const once = await timed(() => measureInOnePiece(store, row, plan, NOW));
      before.push({ ...once, value: figures(once.value) });
      const stepped = await timed(async () => (await assessDomain(store, row, plan, NOW)).metrics);
      now.push({ ...stepped, value: figures(stepped.value) });
      console.log(`  round ${round + 1}: before ${ms(before.at(-1)!)}, ${stall(before.at(-1)!)}`);
      console.log(`           now    ${ms(now.at(-1)!)}, ${stall(now.at(-1)!)}`);
    }
    const same = [...before, ...now].every((t) => t.value === before[0]!.value);
    const cpu = median(now.map((t) => t.cpuMs)) / median(before.map((t) => t.cpuMs));
    const hold = Math.max(...now.map((t) => t.loopMaxMs)) / Math.max(...before.map((t) => t.loopMaxMs));
    console.log(`  measuring it: ${same ? 'the same figures' : 'DIFFERENT FIGURES'}; CPU now/before ${cpu.toFixed(2)} (medians ${median(now.map((t) => t.cpuMs)).toFixed(0)} / ${median(before.map((t) => t.cpuMs)).toFixed(0)} ms); longest hold now/before ${hold.toFixed(2)} (${Math.max(...now.map((t) => t.loopMaxMs)).toFixed(0)} / ${Math.max(...before.map((t) => t.loopMaxMs)).toFixed(0)} ms)`);

    if (kind === 'postgres') {
      const range = rollupRange(row, NOW);
      const firstDay = Math.floor(range.fromEpoch / DAY) - 31;
      // This store holds one domain, so the planner rightly scans the table; in a fleet the domain is a sliver of it,
      // which the plan without sequential scans stands for.
      for (const seqscan of ['on', 'off']) {
        const plans = await store.db.transaction().execute(async (trx) => {
          await sql`set local enable_seqscan = ${sql.raw(seqscan)}`.execute(trx);
          return sql<{ 'QUERY PLAN': string }>`explain select reporter from daily_rollups where day >= ${firstDay} and day <= ${Math.floor(range.toEpoch / DAY)} and "end" >= ${range.fromEpoch} and "begin" <= ${range.toEpoch} and domain = ${DOMAIN}`.execute(trx);
        });
        console.log(`  Postgres plan of the cursor's first read (enable_seqscan ${seqscan}):\n    ${plans.rows.map((r) => r['QUERY PLAN']).join('\n    ')}`);
      }
    }

    // Ordinary domains (what a tick measures nearly always): the same two ways, all of them a round, alternating.
    const ordinary = Array.from({ length: ORDINARY }, (_, i) => `d${i}.ordinary.example`);
    for (const name of ordinary) await writeLargeDomain(store, { domain: name, now: NOW, entries: 5 });
    const rowsOf = await Promise.all(ordinary.map(async (n) => (await getDomain(store.db, n))!));
    const beforeEach: number[] = [];
    const nowEach: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const once = await timed(async () => {
        for (const r of rowsOf) await measureInOnePiece(store, r, plan, NOW);
      });
      const stepped = await timed(async () => {
        for (const r of rowsOf) await assessDomain(store, r, plan, NOW);
      });
      beforeEach.push(once.cpuMs / ORDINARY);
      nowEach.push(stepped.cpuMs / ORDINARY);
    }
    console.log(`  ${ORDINARY} ordinary domains (${(await loadRollupRows(store.db, ordinary[0]!, rollupRange(rowsOf[0]!, NOW))).length} entries each), CPU a domain: before ${beforeEach.map((x) => x.toFixed(2)).join(', ')} ms; now ${nowEach.map((x) => x.toFixed(2)).join(', ')} ms; now/before ${(median(nowEach) / median(beforeEach)).toFixed(2)}`);

    // The domain's page: measured afresh, and its 90-day daily series classed the same way.
    const view = await timed(() => domainView(store, DOMAIN, NOW, { loadPlan }));
    console.log(`  its domain page (domainView: measured afresh, the daily series): ${ms(view)}; ${stall(view)}`);
    // The page again a minute later, as the API serves it (a MeasuredDomains kept for the server's life): the first
    // request measures, the next ones within the figures' stable span read what it kept (its marks and the audit mark).
    const kept = new MeasuredDomains();
    const keptFirst = await timed(() => domainView(store, DOMAIN, NOW, { loadPlan, measured: kept }));
    const keptAgain = await timed(() => domainView(store, DOMAIN, new Date(NOW.getTime() + 60_000), { loadPlan, measured: kept }));
    console.log(
      `  its domain page as the API serves it: first ${ms(keptFirst)}; a minute later ${ms(keptAgain)}, ${stall(keptAgain)} (${kept.counts.kept} values kept); again/first CPU ${(keptAgain.cpuMs / keptFirst.cpuMs).toFixed(3)}`,
    );
    // What the doors then do with the view, in one piece each: the API's schema check and JSON, the HTML page.
    // The view lists SOURCES_LISTED sources a class; every source (the view before it did) is the baseline.
    const listed = view.value!;
    const everySource = { ...listed, sources: (await assessDomain(store, (await getDomain(store.db, DOMAIN))!, plan, NOW)).metrics.sources };
    for (const [label, v] of [['every source', everySource], [`${listed.sources.length} listed`, listed]] as const) {
      const json = await timed(async () => JSON.stringify(domainViewSchema.parse(v)).length);
      const page = await timed(async () => renderDomainPage({ user: { name: 'bench', role: 'viewer' }, csrfToken: 'x' }, v).length);
      console.log(`  its view with ${v.sources.length} sources (${label}): schema check and JSON ${ms(json)}, ${(json.value! / 2 ** 20).toFixed(1)} MiB; HTML page ${ms(page)}, ${(page.value! / 2 ** 20).toFixed(1)} MiB`);
    }

    // The fleet page while the domain is stale (a person acted on it after the tick).
    const dns = new MemoryDns();
    dns.set(`_dmarc.${DOMAIN}`, { txt: [LARGE_DOMAIN_RECORD], ttl: 3600 });
    const ticked = new Date(NOW.getTime() - 2 * 3_600_000);
    const tick = await timed(() => runTick({ store, now: ticked, providerFor: () => dns }));
    console.log(`  the tick that measures it: ${ms(tick)}; ${stall(tick)}`);
    const pages: Array<[string, Timed<unknown>]> = [];
    // Only the large domain is stale, each time a minute later (the page's clock with it), and the page lists it alone:
    // what it costs the page.
    const staleAgain = async (k: number) => {
      const at = new Date(NOW.getTime() + k * 60_000);
      await store.db.updateTable('domains').set({ updated_at: new Date(at.getTime() - 30_000).toISOString() }).where('domain', '=', DOMAIN).execute();
      return at;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const measuredAt = await staleAgain(2 * round + 1);
      pages.push(['before', await timed(() => fleetPage(store, measuredAt, { loadPlan }, { q: DOMAIN, remeasureEntries: Number.MAX_SAFE_INTEGER }))]);
      const shownAt = await staleAgain(2 * round + 2);
      pages.push(['now', await timed(() => fleetPage(store, shownAt, { loadPlan }, { q: DOMAIN }))]);
    }
    for (const [label, t] of pages) console.log(`  stale page, ${label === 'before' ? 'measured for the request (before)' : `over the budget of ${REMEASURE_ENTRIES_PER_REQUEST} entries (now)`}: ${ms(t)}; ${stall(t)}`);
    const wall = (l: string) => median(pages.filter(([x]) => x === l).map(([, t]) => t.ms));
    console.log(`  stale page wall now/before ${(wall('now') / wall('before')).toFixed(3)} (medians ${wall('now').toFixed(0)} / ${wall('before').toFixed(0)} ms)`);
    await store.close();
  }
} finally {
  await postgres?.stop();
  rmSync(work, { recursive: true, force: true });
}
