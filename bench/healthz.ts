/**
 * /healthz at fleet scale: how long a health probe waits while the daemon
 * does its work on a large store. The daemon's API server (the real one,
 * with its metrics) runs on a store built and kept by bench/scale.ts
 * (BENCH_KEEP), and a worker thread probes /healthz every 10 ms: its own
 * event loop, as a load balancer's probe is its own process, so what it
 * measures is how long the daemon's loop kept the answer back. The main
 * thread meanwhile does, one at a time, what the daemon and its users do: a
 * tick, a day's reports for one domain in a hundred and the tick that
 * measures them, a Prometheus scrape, the fleet API sorted and filtered,
 * deep pages, a domain, the summary, the web page, an upload, pruning. Printed per
 * phase: its wall time and the longest and 99th-percentile probe wait,
 * against the same probe while the daemon idles (the baseline, this run),
 * with the process's CPU time during the longest wait (both threads): a
 * wait much longer than that was spent waiting for a core or the disk.
 *
 * The issue's bar: /healthz never waits more than 100 ms.
 *
 * Run: BENCH_STORE=/path/fleet-100000-30.sqlite node --import tsx bench/healthz.ts
 *   (make one with BENCH_SIZES=100000 BENCH_DAYS=30 BENCH_STORES=sqlite BENCH_BUILD=clone BENCH_KEEP=/path node --import tsx bench/scale.ts)
 * The store is changed (ticks store assessments, the upload adds a report): use one you can lose.
 * BENCH_NOW: the clock (default an hour past the scale bench's last step: its stores' domains were all changed then).
 */
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { createDaemonMetrics } from '../src/daemon/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { domainsInTurns } from '../src/store/assessments.js';
import { openSqliteStore } from '../src/store/open.js';
import { pruneRawRows } from '../src/store/rollups.js';
import { aggregateReportXml, cleanRow } from '../test/helpers/reports.js';

const STORE = process.env.BENCH_STORE;
if (!STORE) {
  process.stderr.write('BENCH_STORE=<a SQLite store kept by bench/scale.ts (BENCH_KEEP)> is required\n');
  process.exit(2);
}
const now = new Date(process.env.BENCH_NOW ?? '2026-06-30T13:05:00Z');
const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-healthz-'));

/** The probe: CommonJS in a worker of its own; a probe's wait is attributed to the phase it started in. */
const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
let phase = 'idle';
const waits = {};
const rss = {};
let running = true;
parentPort.on('message', (m) => {
  if (m.phase) phase = m.phase;
  if (m.report) parentPort.postMessage({ waits, rss });
  if (m.stop) running = false;
});
(async () => {
  while (running) {
    const at = phase;
    const start = performance.now();
    const cpu = process.cpuUsage();
    try {
      const res = await fetch(workerData.url);
      await res.arrayBuffer();
    } catch {}
    const used = process.cpuUsage(cpu);
    // With the wait, the whole process's CPU meanwhile: on a shared machine a wait with little CPU in it was spent
    // waiting for a core (or the disk), not on the daemon's work.
    (waits[at] ??= []).push([performance.now() - start, (used.user + used.system) / 1000]);
    // The whole process's resident memory (both threads, SQLite's page cache included), the most seen per phase.
    rss[at] = Math.max(rss[at] ?? 0, process.memoryUsage.rss());
    await new Promise((r) => setTimeout(r, 10));
  }
})();
`;

const store = await openSqliteStore(STORE);
const dns = new MemoryDns();
// Only what the phases need is kept of the domains' rows: the memory printed is the daemon's, not the bench's.
const { domainCount, some } = await (async () => {
  const rows = await domainsInTurns(store.db);
  for (const r of rows) if (r.last_record) dns.set(`_dmarc.${r.domain}`, { txt: [r.last_record], ttl: 3600 });
  return { domainCount: rows.length, some: rows.filter((_, i) => i % 100 === 7).map((r) => r.domain) };
})();
const viewer = generateToken();
const operator = generateToken();
const metrics = createDaemonMetrics({ store, loadPlan });
const server = await startApiServer({
  config: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 1 << 20, trust_proxy: false },
  tokens: new TokenSet([
    { name: 'vera', role: 'viewer', sha256: viewer.sha256 },
    { name: 'otto', role: 'operator', sha256: operator.sha256 },
  ]),
  logger: pino({ level: 'silent' }),
  context: {
    store,
    now: () => now,
    loadPlan,
    sourceRules: [],
    metrics,
    ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: join(work, 'rejected'), now: () => now }),
  },
});
const probe = new Worker(PROBE, { eval: true, workerData: { url: `${server.url}/healthz` } });

const get = async (path: string, token = viewer.token) => {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const body = await res.arrayBuffer();
  return `${res.status}, ${(body.byteLength / 1024).toFixed(0)} KiB`;
};

const results: Array<{ phase: string; ms: number; note: string }> = [];
async function phase(name: string, fn: () => Promise<string>): Promise<void> {
  probe.postMessage({ phase: name });
  // Let a probe start inside the phase before its work does.
  await new Promise((r) => setTimeout(r, 30));
  const start = performance.now();
  const note = await fn();
  const ms = performance.now() - start;
  await new Promise((r) => setTimeout(r, 30));
  results.push({ phase: name, ms, note });
  probe.postMessage({ phase: 'idle' });
  await new Promise((r) => setTimeout(r, 200));
}

try {
  await phase('idle (baseline)', () => new Promise((r) => setTimeout(() => r('nothing'), 3000)));
  // As the daemon ticks: under leases, each result taken as it comes (onResult), none held.
  const tick = async () => {
    let domains = 0;
    let measured = 0;
    await runTick({
      store,
      now,
      providerFor: () => dns,
      lease: { holder: 'bench', ttlMs: 600_000, now: () => new Date() },
      onResult: (r) => {
        domains++;
        if (!r.unchanged) measured++;
      },
    });
    return `${domains} domains, ${measured} measured again`;
  };
  await phase('tick', tick);
  await phase('tick, nothing new', tick);
  // A day's reports for one domain in a hundred, as the folder source ingests them, then the tick that measures them.
  const reporter = `late-${Date.now()}.example`;
  await phase(`ingest ${some.length} reports (one a domain, the folder source's path)`, async () => {
    for (const domain of some) {
      const xml = aggregateReportXml({ reporter, domain, day: '2026-06-29', rows: [cleanRow(domain, '192.0.2.99', 20)] });
      const r = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:${domain}`, { rejectedDir: join(work, 'rejected'), now: () => now });
      if (r.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(r)}`);
    }
    return `${some.length} stored`;
  });
  await phase('tick after them', tick);
  await phase('GET /metrics (Prometheus scrape)', () => get('/metrics'));
  await phase('GET /api/v1/domains (first page)', () => get('/api/v1/domains?limit=100'));
  for (const sort of ['authorised_fail_rate', 'spoofing_messages', 'stage', 'state', 'domain']) {
    await phase(`GET /api/v1/domains sorted by ${sort}, desc`, () => get(`/api/v1/domains?sort=${sort}&order=desc&limit=100`));
  }
  await phase('GET /api/v1/domains, offset 90,000', () => get('/api/v1/domains?limit=100&offset=90000'));
  await phase('GET /api/v1/domains?q=d123&state=active', () => get('/api/v1/domains?q=d123&state=active&limit=100'));
  await phase('GET /api/v1/domains/d4242.bench.example', () => get('/api/v1/domains/d4242.bench.example'));
  await phase('GET /api/v1/approvals', () => get('/api/v1/approvals'));
  await phase('GET /api/v1/summary', () => get('/api/v1/summary'));
  await phase('GET /api/v1/audit', () => get('/api/v1/audit'));
  await phase('GET / (the web page)', () => get('/'));
  await phase('POST /api/v1/reports (one report)', async () => {
    const xml = aggregateReportXml({ reporter: 'upload.example', domain: 'd7.bench.example', day: '2026-06-29', rows: [cleanRow('d7.bench.example', '192.0.2.77', 10)] });
    const res = await fetch(`${server.url}/api/v1/reports`, { method: 'POST', headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/xml' }, body: xml });
    return `${res.status}`;
  });
  await phase('pruneRawRows (a tick’s batch)', async () => {
    const r = await pruneRawRows(store.db, { before: Math.floor(now.getTime() / 1000) - 28 * 86_400, maxRows: 200_000, now });
    return `${r.rows} rows`;
  });

  probe.postMessage({ report: true });
  const { waits, rss } = await new Promise<{ waits: Record<string, Array<[number, number]>>; rss: Record<string, number> }>((resolve) => probe.once('message', resolve));
  const mib = (bytes = NaN) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  const stat = (xs: Array<[number, number]> = []) => {
    const s = [...xs].sort((a, b) => a[0] - b[0]);
    const longest = s.at(-1) ?? [NaN, NaN];
    return { n: s.length, max: longest[0], cpu: longest[1], p99: s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]?.[0] ?? NaN };
  };
  const base = stat(waits['idle (baseline)']);
  console.log(`/healthz probed every 10 ms from a worker thread, ${domainCount} domains in ${STORE}`);
  console.log(`baseline (idle, ${base.n} probes): longest wait ${base.max.toFixed(1)} ms, p99 ${base.p99.toFixed(1)} ms; resident ${mib(rss['idle (baseline)'])}`);
  console.log(`V8 heap limit ${mib(getHeapStatistics().heap_size_limit)} (--max-old-space-size); the bench's own MemoryDns holds every domain's record`);
  for (const r of results.slice(1)) {
    const s = stat(waits[r.phase]);
    console.log(
      `${r.phase}: ${r.ms.toFixed(0)} ms (${r.note}); /healthz over ${s.n} probes: longest wait ${s.max.toFixed(1)} ms (${(s.max / base.max).toFixed(1)}x the idle longest; ${s.cpu.toFixed(0)} ms of the process's CPU in it), p99 ${s.p99.toFixed(1)} ms; resident up to ${mib(rss[r.phase])}${s.max > 100 ? '  <-- over 100 ms' : ''}`,
    );
  }
} finally {
  probe.postMessage({ stop: true });
  await probe.terminate();
  await server.close();
  await store.close();
  rmSync(work, { recursive: true, force: true });
}
