/**
 * Scale benchmark: a tick over a large fleet, and the fleet API page, on
 * SQLite and on Postgres, each printed against a bare read of the same rows
 * in the same run.
 *
 * Per store and fleet size: BENCH_SIZES domains (default 1000,10000), each
 * established at none:100 with 30 days of daily reports from three
 * reporters (two of the domain's servers and one spoofer a report), holding
 * on dwell so a tick decides and writes nothing but its stored assessments.
 * The reports of domain 0 are stored by the real ingest; the rest are
 * written by SQL in the same shape (checked: domain 1's rows read back equal
 * to domain 0's). Postgres is a temp cluster from test/helpers/postgres.ts.
 *
 * Printed:
 * - bare read: loadObservedRows for every domain over the tick's window (the
 *   rows a tick must read, no judging);
 * - tick: runTick over the fleet with nothing new (the second tick), wall and
 *   this process's CPU, against the bare read;
 * - page: GET /api/v1/domains' work (fleetPage, 100 domains sorted by fail
 *   rate) after the tick, against judging every domain, which is what the
 *   page did before assessments were stored.
 *
 * Run: node --import tsx bench/scale.ts  (env: BENCH_SIZES=1000,10000 BENCH_STORES=sqlite,postgres)
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
import { openStore, type Store } from '../src/store/open.js';
import type { StoreLocation } from '../src/store/location.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { aggregateReportXml, cleanRow, dayRange, spoofRow, type GeneratedRow } from '../test/helpers/reports.js';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const HISTORY_DAYS = 30;
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

async function buildFleet(store: Store, size: number): Promise<string[]> {
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
        const rows = ids.flatMap(({ id, domain }) => rowsFor(domain, names.indexOf(domain), d).map((r) => rowColumns(Number(id), r)));
        for (let k = 0; k < rows.length; k += 800) await trx.insertInto('report_rows').values(rows.slice(k, k + 800)).execute();
      });
    }
  }
  // The SQL-written rows must read back as the ingested ones do.
  const window = { fromEpoch: Math.floor(now.getTime() / 1000) - (HISTORY_DAYS + 1) * 86_400, toEpoch: Math.floor(now.getTime() / 1000) };
  const shape = (rows: Awaited<ReturnType<typeof loadObservedRows>>, domain: string) =>
    JSON.stringify(
      rows
        .map((r) => ({ ...r, policyDomain: r.policyDomain === domain ? 'D' : r.policyDomain, headerFrom: r.headerFrom === domain ? 'D' : r.headerFrom, authDkim: r.authDkim.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), authSpf: r.authSpf.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), sourceIp: r.sourceIp.replace(/^192\.0\.\d+\./, '192.0.x.').replace(/^203\.0\.113\.\d+$/, 'spoofer') }))
        .sort((a, b) => a.begin - b.begin || a.reporter.localeCompare(b.reporter) || a.sourceIp.localeCompare(b.sourceIp)),
    );
  const ingested = shape(await loadObservedRows(store.db, names[0]!, window), names[0]!);
  const written = shape(await loadObservedRows(store.db, names[1]!, window), names[1]!);
  if (ingested !== written) throw new Error(`SQL-written rows differ from ingested ones:\n${ingested.slice(0, 600)}\n${written.slice(0, 600)}`);
  // Fresh statistics, as autovacuum would have them on a store that grew over months.
  if (store.dialect === 'postgres') await sql`analyze`.execute(store.db);
  benchDns = dns;
  return names;
}

let benchDns: MemoryDns;

async function location(kind: 'sqlite' | 'postgres', size: number): Promise<StoreLocation> {
  if (kind === 'sqlite') return { kind, path: join(work, `fleet-${size}.sqlite`) };
  postgres ??= await startPostgres();
  return { kind, connection: postgres.connection(await postgres.createDatabase(`fleet_${size}`)) };
}

try {
  for (const size of SIZES) {
    for (const kind of STORES) {
      const store = await openStore(await location(kind, size));
      try {
        const built = await timed(() => buildFleet(store, size));
        const names = built.value;
        const rows = size * HISTORY_DAYS * REPORTERS.length * 3;
        console.log(`\n${kind}, ${size} domains, ${HISTORY_DAYS} days x ${REPORTERS.length} reporters: ${size * HISTORY_DAYS * REPORTERS.length} reports, ${rows} rows (built in ${(built.ms / 1000).toFixed(1)} s)`);
        const tick = () => timed(() => runTick({ store, now, providerFor: () => benchDns }));
        const first = await tick();
        const decisions = new Map<string, number>();
        for (const r of first.value) decisions.set(r.decision?.action ?? r.error ?? 'none', (decisions.get(r.decision?.action ?? r.error ?? 'none') ?? 0) + 1);
        console.log(`  first tick (judges, audits each decision once, stores assessments): ${(first.ms / 1000).toFixed(2)} s; decisions ${JSON.stringify(Object.fromEntries(decisions))}`);

        // The window a tick reads for these domains: the engine's look-back.
        const fromEpoch = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
        const bare = await timed(async () => {
          let n = 0;
          for (const domain of names) n += (await loadObservedRows(store.db, domain, { fromEpoch, toEpoch: Math.floor(now.getTime() / 1000) })).length;
          return n;
        });
        console.log(`  bare read of the same rows (loadObservedRows per domain): ${bare.value} rows, ${(bare.ms / 1000).toFixed(2)} s wall, ${(bare.cpuMs / 1000).toFixed(2)} s CPU`);
        const second = await tick();
        console.log(
          `  tick with nothing new: ${(second.ms / 1000).toFixed(2)} s wall (${(second.ms / bare.ms).toFixed(2)}x the bare read), ${(second.cpuMs / 1000).toFixed(2)} s CPU in this process (${((second.cpuMs / size) * 1000).toFixed(0)} ms per 1,000 domains; ${(second.cpuMs / bare.cpuMs).toFixed(2)}x the bare read's CPU); the event loop held at most ${second.loopMaxMs.toFixed(0)} ms at a time`,
        );

        const ctx = { loadPlan };
        const page = await timed(() => fleetPage(store, now, ctx, { sort: 'authorised_fail_rate', order: 'desc', limit: 100 }));
        const pageQ = await timed(() => fleetPage(store, now, ctx, { q: 'd12', state: 'active', sort: 'spoofing_messages', order: 'desc', limit: 100, offset: 0 }));
        const remeasured = page.value.domains.filter((d) => d.assessed_at !== now.toISOString()).length;
        // Every domain changed since the tick: the 100 on the page are measured again for the request.
        const later = new Date(now.getTime() + 60_000);
        await store.db.updateTable('domains').set({ updated_at: later.toISOString() }).execute();
        const stalePage = await timed(() => fleetPage(store, later, ctx, { limit: 100 }));
        console.log(
          `  fleet API page (100 of ${page.value.total}, sorted by fail rate): ${page.ms.toFixed(1)} ms (${remeasured} measured again); filtered by name and state, sorted by spoofing: ${pageQ.ms.toFixed(1)} ms; judging every domain, as the page did before: ${(second.ms / 1000).toFixed(2)} s (${(second.ms / page.ms).toFixed(0)}x)`,
        );
        // The approvals queue looks for stale active domains across the whole fleet in one query (and measures one here).
        const approvals = await timed(() => fleetPage(store, later, ctx, { approvals: true, limit: 100, remeasure: 1 }));
        console.log(`  approvals queue over ${size} stale domains (one measured again): ${approvals.ms.toFixed(0)} ms; the event loop held at most ${approvals.loopMaxMs.toFixed(0)} ms at a time`);
        console.log(`  a page of 100 stale domains, measured again for the request: ${stalePage.ms.toFixed(0)} ms; the event loop held at most ${stalePage.loopMaxMs.toFixed(0)} ms at a time`);
      } finally {
        await store.close();
      }
    }
  }
} finally {
  await postgres?.stop();
  rmSync(work, { recursive: true, force: true });
}
