/**
 * Fleet page benchmark: what `GET /` and `GET /api/v1/domains` cost, i.e.
 * fleetOverview() judging every domain with the engine (assess + decide), against
 * the floor of reading the same report rows out of the store in the same
 * process (loadObservedRows for every domain over the 28-day look-back).
 *
 * A fleet of BENCH_DOMAINS domains (default 500), each with 28 days of daily
 * reports from 3 reporters with 6 sources each, in a fresh SQLite store.
 *
 * Run: node --import tsx bench/fleet-view.ts  (env: BENCH_DOMAINS=500)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOKBACK_DAYS } from '../src/engine/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { enrollDomains } from '../src/fleet/index.js';
import { domainView, fleetOverview } from '../src/fleet/views.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { listDomains } from '../src/store/domains.js';
import { loadObservedRows } from '../src/store/observations.js';
import { openSqliteStore } from '../src/store/open.js';
import { aggregateReportXml, cleanRow, spoofRow } from '../test/helpers/reports.js';

const DOMAINS = Number(process.env.BENCH_DOMAINS ?? 500);
const DAY_MS = 86_400_000;
const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-fleet-'));
const now = new Date('2026-06-30T12:00:00Z');

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

try {
  const store = await openSqliteStore(join(work, 'store.sqlite'));
  const plan = loadPlan('default');
  const names = Array.from({ length: DOMAINS }, (_, i) => `d${i}.bench.example`);
  const dns = new MemoryDns();
  await enrollDomains(store, { inputs: names.map((text) => ({ text, origin: 'argv' as const })), plan, provider: 'memory', providers: { names: ['memory'], get: () => dns }, reportAddress: 'dmarc@reports.example', actor: 'bench', now: new Date(now.getTime() - 40 * DAY_MS) });
  await runTick({ store, now: new Date(now.getTime() - 35 * DAY_MS), providerFor: () => dns });
  const setup = await timed(async () => {
    for (const [n, domain] of names.entries()) {
      for (let d = LOOKBACK_DAYS; d >= 1; d--) {
        const day = new Date(now.getTime() - d * DAY_MS).toISOString().slice(0, 10);
        for (const reporter of ['google.com', 'outlook.com', 'yahoo.com']) {
          const rows = [1, 2, 3, 4, 5].map((k) => cleanRow(domain, `192.0.${n % 250}.${k}`, 20 * k));
          rows.push(spoofRow(domain, `203.0.113.${(n + d) % 250}`, 3));
          await ingestInput(store.db, { bytes: Buffer.from(aggregateReportXml({ reporter, domain, day, rows })) }, `bench:${domain}/${day}/${reporter}`, { rejectedDir: join(work, 'rejected') });
        }
      }
    }
  });
  console.log(`fleet: ${DOMAINS} domains, ${DOMAINS * LOOKBACK_DAYS * 3} reports (${(setup.ms / 1000).toFixed(1)} s to ingest)`);

  const from = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
  const to = Math.floor(now.getTime() / 1000);
  // Warm both paths once so the comparison is not about first-touch page cache.
  for (const d of (await listDomains(store.db)).slice(0, 5)) await loadObservedRows(store.db, d.domain, { fromEpoch: from, toEpoch: to });
  await fleetOverview(store, now);

  const floor = await timed(async () => {
    let rows = 0;
    for (const d of await listDomains(store.db)) rows += (await loadObservedRows(store.db, d.domain, { fromEpoch: from, toEpoch: to })).length;
    return rows;
  });
  const overview = await timed(() => fleetOverview(store, now));
  const one = await timed(() => domainView(store, names[0]!, now));
  console.log(`baseline: read ${floor.value} rows for every domain: ${floor.ms.toFixed(0)} ms`);
  console.log(`fleetOverview (the fleet page and GET /api/v1/domains): ${overview.ms.toFixed(0)} ms, ${(overview.ms / floor.ms).toFixed(2)}x baseline, ${(overview.ms / DOMAINS).toFixed(2)} ms per domain`);
  console.log(`domainView (one domain page, 90-day series): ${one.ms.toFixed(1)} ms, ${((one.ms * DOMAINS) / floor.ms).toFixed(2)}x the baseline's per-domain share`);
  await store.close();
} finally {
  rmSync(work, { recursive: true, force: true });
}
