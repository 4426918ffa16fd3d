/**
 * Scale benchmark: a tick over a large fleet, and the fleet API page, on
 * SQLite and on Postgres, each printed against a bare read of the same
 * rollups and raw rows in the same run.
 *
 * Per store, history and fleet size: BENCH_SIZES domains (default
 * 1000,10000), each established at none:100 with BENCH_DAYS (default 30,90)
 * days of daily reports from three reporters (two of the domain's servers and
 * one spoofer a report), holding on dwell so a tick decides and writes
 * nothing but its stored assessments. The reports of domain 0 are stored by
 * the real ingest; the rest are written by SQL in the same shape and rolled
 * up by the store's own function (rollUpStoredReports, as simulate's copies
 * are), checked: domain 1's rows and rollups read back equal to domain 0's.
 * Postgres is a temp cluster from test/helpers/postgres.ts.
 *
 * Printed:
 * - bare reads: loadRollupRows (what the engine reads now) and
 *   loadObservedRows (the raw rows it read before) for every domain over the
 *   look-back, no judging;
 * - first tick: every domain measured from its rollups and judged;
 * - tick with nothing new (the second): the stored decisions stand, nothing
 *   is measured; CPU per 1,000 domains;
 * - a late report for one domain in ten, then a tick: only those are
 *   measured again, so its cost follows what arrived;
 * - retention: pruning the raw rows past the look-back, in ticks' budgets;
 * - page: GET /api/v1/domains' work (fleetPage) after the tick.
 *
 * Run: node --import tsx bench/scale.ts  (env: BENCH_SIZES=1000,10000 BENCH_DAYS=30,90 BENCH_STORES=sqlite,postgres BENCH_PAGE=0 skips the page)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { LOOKBACK_DAYS } from '../src/engine/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { fleetPage } from '../src/fleet/fleet-page.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { loadObservedRows } from '../src/store/observations.js';
import { loadRollupRows, pruneRawRows, rollUpStoredReports } from '../src/store/rollups.js';
import { openStore, type Store } from '../src/store/open.js';
import type { StoreLocation } from '../src/store/location.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { aggregateReportXml, cleanRow, dayRange, spoofRow, type GeneratedRow } from '../test/helpers/reports.js';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const HISTORY = (process.env.BENCH_DAYS ?? '30,90').split(',').map(Number);
const PAGE = process.env.BENCH_PAGE !== '0';
const REPORTERS = ['google.com', 'outlook.com', 'yahoo.com'];
const DAY_MS = 86_400_000;
const now = new Date('2026-06-30T12:00:00Z');
const RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example';

const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-scale-'));
let postgres: PostgresServer | undefined;

/** Wall and CPU time, and the longest the event loop was held meanwhile (what a /healthz request would have waited at most). */
async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; cpuMs: number; loopMaxMs: number; value: T }> {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const value = await fn();
  const used = process.cpuUsage(cpu);
  loop.disable();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, cpuMs: (used.user + used.system) / 1000, loopMaxMs: loop.max / 1e6, value };
}

const dayOf = (d: number) => new Date(now.getTime() - d * DAY_MS).toISOString().slice(0, 10);
const rowsFor = (domain: string, n: number, d: number): GeneratedRow[] => [
  cleanRow(domain, `192.0.${n % 250}.1`, 120),
  cleanRow(domain, `192.0.${n % 250}.2`, 40),
  spoofRow(domain, `203.0.113.${(n + d) % 250}`, 3),
];

/** The columns ingest writes for a generated row (src/reports/store.ts rowValues), by SQL. */
function rowColumns(report: number, r: GeneratedRow) {
  return {
    report,
    source_ip: r.ip,
    count: r.count,
    disposition: 'none',
    dkim: r.dkim,
    spf: r.spf,
    header_from: r.headerFrom,
    envelope_from: null,
    envelope_to: null,
    reasons: '[]',
    auth_dkim: JSON.stringify(r.dkimDomain ? [{ domain: r.dkimDomain, selector: 's1', result: r.dkimResult ?? r.dkim, human_result: null }] : []),
    auth_spf: JSON.stringify([{ domain: r.spfDomain ?? r.headerFrom, scope: null, result: r.spfResult ?? r.spf, human_result: null }]),
  };
}

async function buildFleet(store: Store, size: number, HISTORY_DAYS: number): Promise<string[]> {
  const names = Array.from({ length: size }, (_, i) => `d${i}.bench.example`);
  const dns = new MemoryDns();
  const enrolled = new Date(now.getTime() - (HISTORY_DAYS + 5) * DAY_MS).toISOString();
  for (let i = 0; i < names.length; i += 500) {
    await store.db
      .insertInto('domains')
      .values(
        names.slice(i, i + 500).map((domain) => ({
          domain,
          plan: 'default',
          provider: 'memory',
          stage_index: 0,
          state: 'active' as const,
          state_reason: null,
          // In force for 3 days: it holds on dwell (14 days at none:100), and a tick still reads the
          // look-back's 28 days of reports to class the senders.
          stage_since: new Date(now.getTime() - 3 * DAY_MS).toISOString(),
          last_record: RECORD,
          window_start: new Date(now.getTime() - 3 * DAY_MS).toISOString(),
          approved_stage_index: null,
          found_record: null,
          floor_index: null,
          report_uri: null,
          enrolled_at: enrolled,
          updated_at: enrolled,
        })),
      )
      .execute();
  }
  for (const domain of names) dns.set(`_dmarc.${domain}`, { txt: [RECORD], ttl: 3600 });
  // Domain 0 through the real ingest.
  for (let d = HISTORY_DAYS; d >= 1; d--) {
    for (const reporter of REPORTERS) {
      const xml = aggregateReportXml({ reporter, domain: names[0]!, day: dayOf(d), rows: rowsFor(names[0]!, 0, d) });
      const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:${reporter}/${d}`, { rejectedDir: join(work, 'rejected'), now: () => new Date(now.getTime() - (d - 1) * DAY_MS) });
      if (result.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(result)}`);
    }
  }
  // The rest by SQL, a day at a time.
  for (let d = HISTORY_DAYS; d >= 1; d--) {
    const { begin, end } = dayRange(dayOf(d));
    const receivedAt = new Date(now.getTime() - (d - 1) * DAY_MS).toISOString();
    for (let i = 1; i < names.length; i += 400) {
      const chunk = names.slice(i, i + 400);
      await store.db.transaction().execute(async (trx) => {
        const reports = chunk.flatMap((domain) =>
          REPORTERS.map((reporter) => ({
            org: reporter,
            report_id: `${reporter}-${domain}-${dayOf(d)}`,
            domain,
            begin,
            end,
            content_hash: `bench-${domain}-${reporter}-${d}`,
            counted: 1,
            flag: null,
            rows_digest: `bench-${domain}-${reporter}-${d}`,
            adkim: 'r',
            aspf: 'r',
            duplicates: 0,
            source: `bench:${reporter}`,
            container: null,
            repaired: null,
            metadata: '{}',
            received_at: receivedAt,
          })),
        );
        const ids = await trx.insertInto('reports').values(reports).returning(['id', 'domain']).execute();
        const rows = ids.flatMap(({ id, domain }) => rowsFor(domain, Number(domain.slice(1, domain.indexOf('.'))), d).map((r) => rowColumns(Number(id), r)));
        for (let k = 0; k < rows.length; k += 800) await trx.insertInto('report_rows').values(rows.slice(k, k + 800)).execute();
        // Rolled up in the same transaction, by the store's function.
        await rollUpStoredReports(trx, ids.map((r) => Number(r.id)));
      });
    }
  }
  // The SQL-written rows must read back as the ingested ones do.
  const window = { fromEpoch: Math.floor(now.getTime() / 1000) - (HISTORY_DAYS + 1) * 86_400, toEpoch: Math.floor(now.getTime() / 1000) };
  const shape = (rows: Awaited<ReturnType<typeof loadRollupRows>>, domain: string) =>
    JSON.stringify(
      rows
        .map((r) => ({ ...r, disposition: null, policyDomain: r.policyDomain === domain ? 'D' : r.policyDomain, headerFrom: r.headerFrom === domain ? 'D' : r.headerFrom, authDkim: r.authDkim.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), authSpf: r.authSpf.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), sourceIp: r.sourceIp.replace(/^192\.0\.\d+\./, '192.0.x.').replace(/^203\.0\.113\.\d+$/, 'spoofer') }))
        .sort((a, b) => a.begin - b.begin || a.reporter.localeCompare(b.reporter) || a.sourceIp.localeCompare(b.sourceIp)),
    );
  for (const load of [loadObservedRows, loadRollupRows]) {
    const ingested = shape(await load(store.db, names[0]!, window), names[0]!);
    const written = shape(await load(store.db, names[1]!, window), names[1]!);
    if (ingested !== written) throw new Error(`SQL-written ${load.name} differ from ingested ones:\n${ingested.slice(0, 600)}\n${written.slice(0, 600)}`);
  }
  // Fresh statistics, as autovacuum would have them on a store that grew over months.
  if (store.dialect === 'postgres') await sql`analyze`.execute(store.db);
  benchDns = dns;
  return names;
}

let benchDns: MemoryDns;

async function location(kind: 'sqlite' | 'postgres', size: number, days: number): Promise<StoreLocation> {
  if (kind === 'sqlite') return { kind, path: join(work, `fleet-${size}-${days}.sqlite`) };
  postgres ??= await startPostgres();
  return { kind, connection: postgres.connection(await postgres.createDatabase(`fleet_${size}_${days}`)) };
}

const perThousand = (cpuMs: number, domains: number) => `${((cpuMs / Math.max(1, domains)) * 1000).toFixed(0)} ms per 1,000 domains`;
const s2 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

try {
  for (const size of SIZES) {
   for (const HISTORY_DAYS of HISTORY) {
    for (const kind of STORES) {
      const store = await openStore(await location(kind, size, HISTORY_DAYS));
      try {
        const built = await timed(() => buildFleet(store, size, HISTORY_DAYS));
        const names = built.value;
        const rows = size * HISTORY_DAYS * REPORTERS.length * 3;
        const rollups = Number((await store.db.selectFrom('daily_rollups').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
        console.log(`\n${kind}, ${size} domains, ${HISTORY_DAYS} days x ${REPORTERS.length} reporters: ${size * HISTORY_DAYS * REPORTERS.length} reports, ${rows} rows, ${rollups} rollups (built in ${(built.ms / 1000).toFixed(1)} s)`);
        const tick = (at: Date = now) => timed(() => runTick({ store, now: at, providerFor: () => benchDns }));

        // The window a tick reads for these domains: the engine's look-back.
        const fromEpoch = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
        const bareRead = (load: typeof loadRollupRows) =>
          timed(async () => {
            let n = 0;
            for (const domain of names) n += (await load(store.db, domain, { fromEpoch, toEpoch: Math.floor(now.getTime() / 1000) })).length;
            return n;
          });
        const bareRollups = await bareRead(loadRollupRows);
        const bareRows = await bareRead(loadObservedRows);
        console.log(`  bare read of the look-back's rollups (loadRollupRows per domain): ${bareRollups.value} rollups, ${s2(bareRollups.ms)} wall, ${s2(bareRollups.cpuMs)} CPU (${perThousand(bareRollups.cpuMs, size)})`);
        console.log(`  bare read of the same raw rows (loadObservedRows, what the tick read before): ${bareRows.value} rows, ${s2(bareRows.ms)} wall, ${s2(bareRows.cpuMs)} CPU (${perThousand(bareRows.cpuMs, size)})`);

        const first = await tick();
        const decisions = new Map<string, number>();
        for (const r of first.value) decisions.set(r.decision?.action ?? r.error ?? 'none', (decisions.get(r.decision?.action ?? r.error ?? 'none') ?? 0) + 1);
        console.log(
          `  first tick (measures every domain from its rollups, judges, stores assessments): ${s2(first.ms)} wall, ${s2(first.cpuMs)} CPU (${perThousand(first.cpuMs, size)}; ${(first.cpuMs / bareRollups.cpuMs).toFixed(2)}x the bare read of the rollups, ${(first.cpuMs / bareRows.cpuMs).toFixed(2)}x the raw rows'); decisions ${JSON.stringify(Object.fromEntries(decisions))}`,
        );

        const second = await tick(new Date(now.getTime() + 60_000));
        const reused = second.value.filter((r) => r.unchanged).length;
        console.log(
          `  tick with nothing new: ${s2(second.ms)} wall, ${s2(second.cpuMs)} CPU in this process (${perThousand(second.cpuMs, size)}; ${(second.cpuMs / bareRollups.cpuMs).toFixed(2)}x the bare read of the rollups); ${reused} of ${size} stored decisions stood; the event loop held at most ${second.loopMaxMs.toFixed(0)} ms at a time`,
        );

        // A late report (a fourth reporter, yesterday) for one domain in ten, through the real ingest.
        const late = names.filter((_, i) => i % 10 === 3);
        const arrived = new Date(now.getTime() + 120_000);
        const ingestLate = await timed(async () => {
          for (const domain of late) {
            const xml = aggregateReportXml({ reporter: 'late.example', domain, day: dayOf(1), rows: rowsFor(domain, 3, 1) });
            const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:late/${domain}`, { rejectedDir: join(work, 'rejected'), now: () => arrived });
            if (result.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(result)}`);
          }
        });
        const third = await tick(new Date(now.getTime() + 180_000));
        const measured = third.value.filter((r) => !r.unchanged).length;
        const perMeasured = (third.cpuMs - second.cpuMs * (reused > 0 ? (size - measured) / reused : 0)) / Math.max(1, measured);
        console.log(
          `  ${late.length} late reports (${late.length * 3} rows) ingested in ${s2(ingestLate.ms)}; the next tick: ${s2(third.ms)} wall, ${s2(third.cpuMs)} CPU, ${measured} domains measured again (about ${perMeasured.toFixed(1)} ms CPU each, against ${(first.cpuMs / size).toFixed(1)} ms in the first tick)`,
        );

        // Retention: the raw rows past the look-back, pruned as ticks would (200,000 rows a call).
        const before = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
        const pruned = await timed(async () => {
          let calls = 0;
          let total = 0;
          for (;;) {
            const r = await pruneRawRows(store.db, { before, maxRows: 200_000, now });
            calls++;
            total += r.rows;
            if (!r.more) return { calls, total };
          }
        });
        // Every domain measured again (a dry run never reuses) from what is left: the same decisions.
        const after = await timed(() => runTick({ store, now: new Date(now.getTime() + 240_000), providerFor: () => benchDns, dryRun: true }));
        const same = JSON.stringify(after.value.map((r) => r.decision?.summary)) === JSON.stringify(third.value.map((r) => r.decision?.summary));
        console.log(
          `  retention: ${pruned.value.total} raw rows older than the look-back pruned in ${pruned.value.calls} calls of at most 200,000 rows, ${s2(pruned.ms)} wall (${s2(pruned.cpuMs)} CPU); decisions after: ${same ? 'the same' : 'CHANGED'}`,
        );
        console.log(
          `  measuring every domain again from its rollups (a dry run, as every tick did before; no writes): ${s2(after.ms)} wall, ${s2(after.cpuMs)} CPU (${perThousand(after.cpuMs, size)}; ${(after.cpuMs / bareRollups.cpuMs).toFixed(2)}x the bare read of the rollups)`,
        );
        if (!same) throw new Error('pruning raw rows changed a decision');

        if (!PAGE) continue;
        const ctx = { loadPlan };
        const page = await timed(() => fleetPage(store, now, ctx, { sort: 'authorised_fail_rate', order: 'desc', limit: 100 }));
        const pageQ = await timed(() => fleetPage(store, now, ctx, { q: 'd12', state: 'active', sort: 'spoofing_messages', order: 'desc', limit: 100, offset: 0 }));
        const remeasured = page.value.domains.filter((d) => d.assessed_at !== now.toISOString()).length;
        // Every domain changed since the tick: the 100 on the page are measured again for the request.
        const later = new Date(now.getTime() + 60 * 60_000);
        await store.db.updateTable('domains').set({ updated_at: later.toISOString() }).execute();
        const stalePage = await timed(() => fleetPage(store, later, ctx, { limit: 100 }));
        console.log(`  fleet API page (100 of ${page.value.total}, sorted by fail rate): ${page.ms.toFixed(1)} ms (${remeasured} measured again); filtered by name and state, sorted by spoofing: ${pageQ.ms.toFixed(1)} ms`);
        // The approvals queue looks for stale active domains across the whole fleet in one query (and measures one here).
        const approvals = await timed(() => fleetPage(store, later, ctx, { approvals: true, limit: 100, remeasure: 1 }));
        console.log(`  approvals queue over ${size} stale domains (one measured again): ${approvals.ms.toFixed(0)} ms; the event loop held at most ${approvals.loopMaxMs.toFixed(0)} ms at a time`);
        console.log(`  a page of 100 stale domains, measured again for the request: ${stalePage.ms.toFixed(0)} ms; the event loop held at most ${stalePage.loopMaxMs.toFixed(0)} ms at a time`);
      } finally {
        await store.close();
        if (kind === 'sqlite') rmSync(join(work, `fleet-${size}-${HISTORY_DAYS}.sqlite`), { force: true });
      }
    }
   }
  }
} finally {
  await postgres?.stop();
  rmSync(work, { recursive: true, force: true });
}
