/**
 * How long the daemon's page, API and sign-in wait while a big report is
 * ingested on SQLite (one connection for the whole daemon): the real API
 * server and the real ingest in one process, as in the daemon.
 *
 * A store with the test fleet (test/helpers/fleet-fixture.ts) and the API
 * server on loopback; a plain-XML report of M MB written to disk (every record from
 * its own source, so past 20,000 records its rollup entries are staged in
 * the store and merged when it counts), for a domain nobody enrolled. First the idle baseline: the
 * probes below with nothing else running. Then the report is ingested, and
 * while it is, the probes run one after another: GET /api/v1/domains (the
 * fleet), GET /api/v1/domains/<d> (a domain), and a sign-in through the
 * form (GET /login, POST /ui/login: a session row and the sign-in limit
 * written). Printed: the ingest's time, and per probe its median and
 * longest answer during the ingest against its idle median measured in the
 * same run, plus the event loop's longest stall.
 *
 * The same file runs on an older tree to measure "before" (see the README).
 *
 * Run: node --import tsx bench/ingest-availability.ts            (a 40 MB report)
 *      node --import tsx bench/ingest-availability.ts --big-mb 400
 *      option: --report-domain enrolled (the report under a fleet domain, whose page is then measured again)
 */
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { startApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { recordXml, reportHead, REPORT_TAIL } from '../test/fixtures/reports/make.js';
import { buildFleetFixture } from '../test/helpers/fleet-fixture.js';
import { formSignIn } from '../test/helpers/web.js';
import { stall, timed } from './loop-hold.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const NOW = new Date('2026-06-15T12:00:00Z');

async function writeBigReport(path: string, mb: number, domain: string): Promise<number> {
  const out = createWriteStream(path);
  let bytes = 0;
  let records = 0;
  const write = async (s: string) => {
    bytes += Buffer.byteLength(s);
    if (!out.write(s)) await once(out, 'drain');
  };
  const begin = Math.floor(NOW.getTime() / 1000) - 86_400;
  await write(reportHead({ org: 'bench.example', reportId: `big-${mb}`, domain, begin, end: begin + 86_399 }));
  while (bytes < mb * 1e6) {
    let chunk = '';
    for (let i = 0; i < 200; i++) chunk += recordXml(records++, 1 + (records % 50), records % 3 ? 'pass' : 'fail');
    await write(chunk);
  }
  await write(REPORT_TAIL);
  out.end();
  await once(out, 'finish');
  return records;
}

type Probe = { name: string; run: () => Promise<void> };

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

const ms = (n: number) => (Number.isNaN(n) ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(1));

async function main(): Promise<void> {
  const mb = Number(flag('big-mb') ?? 40);
  const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-availability-'));
  try {
    const store = await openSqliteStore(join(work, 'store.sqlite'));
    const fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
    const viewer = generateToken();
    const operator = generateToken();
    const server = await startApiServer({
      config: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 64 * 1024, trust_proxy: false },
      tokens: new TokenSet([
        { name: 'vera', role: 'viewer', sha256: viewer.sha256 },
        { name: 'otto', role: 'operator', sha256: operator.sha256 },
      ]),
      logger: pino({ level: 'silent' }),
      context: { store, now: () => NOW, loadPlan: fleet.loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) },
    });
    const get = async (path: string) => {
      const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${viewer.token}` } });
      if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
      await res.arrayBuffer();
    };
    const probes: Probe[] = [
      { name: 'GET /api/v1/domains', run: () => get('/api/v1/domains') },
      { name: `GET /api/v1/domains/${fleet.gated}`, run: () => get(`/api/v1/domains/${fleet.gated}`) },
      {
        name: 'sign-in (form)',
        run: async () => {
          const { res } = await formSignIn(server.url, operator.token);
          if (res.status !== 303) throw new Error(`sign-in: ${res.status}`);
        },
      },
    ];
    const timings = (): Map<string, number[]> => new Map(probes.map((p) => [p.name, []]));
    const probeOnce = async (into: Map<string, number[]>) => {
      for (const p of probes) {
        const t0 = performance.now();
        await p.run();
        into.get(p.name)!.push(performance.now() - t0);
      }
    };

    const idle = timings();
    for (let i = 0; i < 5; i++) await probeOnce(timings()); // warm-up
    for (let i = 0; i < 20; i++) await probeOnce(idle);

    const path = join(work, `big-${mb}.xml`);
    // By default under a domain nobody enrolled: the first page after it lands measures its domain again (src/fleet), which
    // costs in proportion to the domain's rollup entries; --report-domain enrolled puts it under one of the fleet's to see that too.
    const records = await writeBigReport(path, mb, flag('report-domain') === 'enrolled' ? fleet.steady : 'unenrolled.example');
    const during = timings();
    let rounds = 0;
    // The longest stretch of this process's CPU between two runs of a 10 ms timer: our own work holding the loop, told
    // apart from waiting for a core on a busy machine (an upper bound: the process's other threads count too).
    let mostCpu = { cpuMs: 0, gapMs: 0 };
    let lastAt = performance.now();
    let lastCpu = process.cpuUsage();
    const cpuProbe = setInterval(() => {
      const at = performance.now();
      const cpu = process.cpuUsage(lastCpu);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      if (cpuMs > mostCpu.cpuMs) mostCpu = { cpuMs, gapMs: at - lastAt };
      lastAt = at;
      lastCpu = process.cpuUsage();
    }, 10);
    const run = await timed(async () => {
      let done = false;
      const ingest = ingestInput(store.db, { path }, path, { rejectedDir: join(work, 'rejected'), now: () => NOW }).finally(() => {
        done = true;
      });
      while (!done) {
        const round = timings();
        await probeOnce(round);
        // Every round that began during the ingest counts (one that waited for the whole report ends after it).
        for (const [k, v] of round) during.get(k)!.push(...v);
        rounds++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return ingest;
    });
    clearInterval(cpuProbe);
    const result = run.value;
    if (result.status !== 'stored') throw new Error(`big report not stored: ${JSON.stringify(result)}`);

    console.log(`SQLite, ${(statSync(path).size / 1e6).toFixed(0)} MB report, ${records} records: ingest ${(run.ms / 1000).toFixed(1)} s (${(run.cpuMs / 1000).toFixed(1)} s CPU, the probes' included); ${rounds} probe rounds during it`);
    console.log(`during the ingest: ${stall(run)}; the most CPU between two runs of a 10 ms timer ${ms(mostCpu.cpuMs)} ms (over ${ms(mostCpu.gapMs)} ms)`);
    console.log('probe                                   idle p50   during p50   during max   max / idle p50');
    for (const p of probes) {
      const base = quantile(idle.get(p.name)!, 0.5);
      const d = during.get(p.name)!;
      const max = d.length ? Math.max(...d) : NaN;
      console.log(
        `${p.name.padEnd(40)}${`${ms(base)} ms`.padStart(9)}${`${ms(quantile(d, 0.5))} ms`.padStart(13)}${`${ms(max)} ms`.padStart(14)}${`${(max / base).toFixed(0)}x`.padStart(17)}`,
      );
    }
    await server.close();
    await store.close();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
