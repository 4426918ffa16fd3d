/**
 * Ingest benchmark: throughput and peak memory of `ingest`, each against a
 * bare saxes pass over the same bytes in the same process (the floor: what
 * reading the XML costs with no work done on it; bench/ingest-bare.mjs).
 *
 *  - small reports: N daily-shaped reports (1 to 20 records; Google-style
 *    zip, Microsoft/Yahoo-style gzip, a few plain XML; a fleet of domains),
 *    written to a temp folder in day folders, then ingested from disk into a
 *    fresh store through ingestPaths (what `dmarc-rollout ingest` runs), on
 *    SQLite or (--store postgres) on a Postgres the test helper starts.
 *  - one big report of M MB (plain XML, written streaming to disk; every
 *    record from its own source, IPv6 and IPv4, so nothing sums), read by readReport
 *    (unpack + parse + normalise + hash: the parse) and ingested (parse +
 *    store), each against a bare saxes pass streaming the same file.
 *
 * Every case runs in a child process of its own, so its peak RSS
 * (process.resourceUsage().maxRSS) is its own; the child does the bare pass
 * first (its peak is printed too) and then the measured work. The parent
 * samples the child's RSS from outside (/proc, every 20 ms) for the quarters
 * and splits the highest sample into anonymous memory and mapped files; the
 * child runs with --trace-gc, whose lines give the V8 heap live after each
 * full GC and the most it held between them. With --build dist the case is
 * the real command on the compiled build (node bin/dmarc-rollout.js ingest,
 * with ingest-cli-probe.mjs preloaded for the bare pass and the figures):
 * the memory an operator sees, without tsx.
 *
 * Run: npm run bench:ingest                      (2,000 small reports, a 40 MB report)
 *      npm run bench:ingest -- --reports 10000,100000 --big-mb 100,200,400
 *      npm run build && npm run bench:ingest -- --build dist --reports 10000 --big-mb 400
 *      npm run bench:ingest -- --reports 10000 --big-mb 0 --store postgres
 *      options: --big parse,ingest (which big cases), --node-flags "--max-old-space-size=1536" (given to every case)
 *      (--reports 0 or --big-mb 0 skips that part)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { PostgresConnection } from '../src/store/location.js';
import { openPostgresStore, openSqliteStore, type Store } from '../src/store/open.js';
import { ingestInput, ingestPaths, readReport } from '../src/reports/index.js';
import { makeZip, recordXml, reportHead, REPORT_TAIL } from '../test/fixtures/reports/make.js';
import { bareFile, bareSmall } from './ingest-bare.mjs';

const MB = 1024 * 1024;
const SELF = fileURLToPath(import.meta.url);

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Peak resident set of this process so far, bytes. */
function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

// ---------------------------------------------------------------- inputs

interface Reporter {
  org: string;
  container: 'zip' | 'gzip' | 'xml';
  /** Share of the daily reports, out of 100. */
  share: number;
}
/** Who sends a fleet's daily reports, and how (the shapes of the corpus's senders). */
const REPORTERS: Reporter[] = [
  { org: 'google.com', container: 'zip', share: 45 },
  { org: 'Enterprise Outlook', container: 'gzip', share: 25 },
  { org: 'Yahoo', container: 'gzip', share: 12 },
  { org: 'Mail.Ru', container: 'gzip', share: 8 },
  { org: 'small-receiver.example', container: 'xml', share: 10 },
];

function reporterFor(i: number): Reporter {
  let k = (i * 37) % 100;
  for (const r of REPORTERS) {
    if (k < r.share) return r;
    k -= r.share;
  }
  return REPORTERS[0]!;
}

/** Small reports in day folders of 1,000; returns the XML bytes they hold. */
function writeSmallReports(dir: string, n: number): { inputBytes: number; xmlBytes: number } {
  let inputBytes = 0;
  let xmlBytes = 0;
  const domains = Math.max(1, Math.round(n / 3));
  for (let i = 0; i < n; i++) {
    const day = Math.floor(i / 1000);
    const folder = join(dir, `day-${String(day).padStart(3, '0')}`);
    if (i % 1000 === 0) mkdirSync(folder, { recursive: true });
    const r = reporterFor(i);
    const begin = 1_700_006_400 + day * 86_400;
    // Most daily reports carry a handful of sources; one in ten a few dozen.
    const records = i % 10 === 0 ? 20 + (i % 17) : 1 + (i % 5);
    let xml = reportHead({ org: r.org, reportId: `${r.org.length}${String(i).padStart(9, '0')}`, domain: `d${i % domains}.fleet.example`, begin, end: begin + 86_399 });
    for (let k = 0; k < records; k++) xml += recordXml(i * 40 + k, 1 + ((i + k) % 40), (i + k) % 4 ? 'pass' : 'fail');
    xml += REPORT_TAIL;
    const bytes = Buffer.from(xml, 'utf8');
    const name = `${r.org.replace(/[^A-Za-z0-9.]/g, '_')}!d${i % domains}!${begin}!${i}`;
    const packed = r.container === 'zip' ? makeZip([{ name: `${name}.xml`, data: bytes }]) : r.container === 'gzip' ? gzipSync(bytes) : bytes;
    const ext = r.container === 'zip' ? 'zip' : r.container === 'gzip' ? 'xml.gz' : 'xml';
    writeFileSync(join(folder, `${name}.${ext}`), packed);
    inputBytes += packed.length;
    xmlBytes += bytes.length;
  }
  return { inputBytes, xmlBytes };
}

/**
 * Source IPs as a big receiver's report has them: IPv6 and IPv4 of every
 * length, each record its own source. (Values of 13 characters or more are
 * where V8 may keep a substring as a view into the text it came from; see
 * ownString in src/reports/xml.ts.)
 */
function sourceIp(i: number): string {
  return i % 2 ? `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::25` : `203.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

/** A synthetic report of about `mb` MB, written streaming (it is never held in memory). */
async function writeBigReport(path: string, mb: number): Promise<{ bytes: number; records: number }> {
  const out = createWriteStream(path);
  let bytes = 0;
  let records = 0;
  const write = async (s: string) => {
    bytes += Buffer.byteLength(s);
    if (!out.write(s)) await once(out, 'drain');
  };
  await write(reportHead({ org: 'bench.example', reportId: `big-${mb}` }));
  while (bytes < mb * 1e6) {
    let chunk = '';
    for (let i = 0; i < 200; i++) {
      const n = records++;
      chunk += recordXml(n, 1 + (records % 50), records % 3 ? 'pass' : 'fail').replace(/<source_ip>[^<]*</, `<source_ip>${sourceIp(n)}<`);
    }
    await write(chunk);
  }
  await write(REPORT_TAIL);
  out.end();
  await once(out, 'finish');
  return { bytes, records };
}

// ---------------------------------------------------------------- child cases

/** What a child measured of itself (the parent adds what it saw from outside). */
interface ChildResult {
  /** CPU seconds (user + system) of the bare pass and of the work: the ratio holds up on a busy machine, wall time does not. */
  bare: number;
  work: number;
  bareWall: number;
  workWall: number;
  /** Peak RSS (the kernel's high-water mark) after the bare pass, and at the end. */
  barePeak: number;
  peak: number;
  /** Reports stored (small) or records read (big); -1 when the command does not say (checked otherwise). */
  count: number;
}

let lastWall = 0;
/** CPU seconds spent by `fn` (its wall seconds go to lastWall). */
async function timed(fn: () => Promise<void> | void): Promise<number> {
  const t = performance.now();
  const c = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(c);
  lastWall = (performance.now() - t) / 1000;
  return (d.user + d.system) / 1e6;
}

async function openBenchStore(dir: string, postgres: string | undefined): Promise<Store> {
  return postgres ? openPostgresStore(JSON.parse(postgres) as PostgresConnection) : openSqliteStore(join(dir, 'store.sqlite'));
}

async function childSmall(dir: string, n: number, postgres: string | undefined): Promise<ChildResult> {
  const bare = await timed(() => bareSmall(join(dir, 'reports')));
  const bareWall = lastWall;
  const barePeak = peakRss();
  const store = await openBenchStore(dir, postgres);
  let stored = 0;
  const work = await timed(async () => {
    stored = (await ingestPaths(store.db, [join(dir, 'reports')], { rejectedDir: join(dir, 'rejected') })).stored;
  });
  const workWall = lastWall;
  await store.close();
  if (stored !== n) throw new Error(`${stored} of ${n} small reports stored`);
  return { bare, work, bareWall, workWall, barePeak, peak: peakRss(), count: stored };
}

async function childBig(path: string, mode: 'parse' | 'ingest', dir: string): Promise<ChildResult> {
  const bare = await timed(() => bareFile(path));
  const bareWall = lastWall;
  const barePeak = peakRss();
  let count = 0;
  let work: number;
  if (mode === 'parse') {
    work = await timed(async () => {
      count = (await readReport({ path })).figures.records;
    });
  } else {
    const store = await openSqliteStore(join(dir, 'big.sqlite'));
    work = await timed(async () => {
      const r = await ingestInput(store.db, { path }, path, { rejectedDir: join(dir, 'rejected') });
      if (r.status !== 'stored') throw new Error(`big report not stored: ${JSON.stringify(r)}`);
      count = r.records;
    });
    await store.close();
  }
  return { bare, work, bareWall, workWall: lastWall, barePeak, peak: peakRss(), count };
}

// ---------------------------------------------------------------- parent

/** RSS of a running process as Linux reports it (/proc/<pid>/status), MiB-exact in bytes; null elsewhere. */
function procRss(pid: number): { rss: number; anon: number; file: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    const rss = kb('VmRSS');
    return Number.isNaN(rss) ? null : { rss, anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return null;
  }
}

/**
 * What V8's --trace-gc lines say about the main heap: the live heap after
 * each full (mark-compact) GC and the most heap it held (used) and reserved
 * (committed) before one. Lines of other isolates (tsx's loader thread) are
 * told apart by their isolate address; the busiest is the main one.
 */
class GcTrace {
  readonly #byIsolate = new Map<string, { liveAfterFull: number[]; maxUsed: number; maxCommitted: number; scavenges: number }>();
  #partial = '';

  feed(text: string): string[] {
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop()!;
    const rest: string[] = [];
    for (const line of lines) {
      const m = /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Mark-Compact|Scavenge)[^\d]*([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/.exec(line);
      if (!m) {
        rest.push(line);
        continue;
      }
      const isolate = this.#byIsolate.get(m[1]!) ?? { liveAfterFull: [], maxUsed: 0, maxCommitted: 0, scavenges: 0 };
      this.#byIsolate.set(m[1]!, isolate);
      isolate.maxUsed = Math.max(isolate.maxUsed, Number(m[3]) * 1e6);
      isolate.maxCommitted = Math.max(isolate.maxCommitted, Number(m[4]) * 1e6, Number(m[6]) * 1e6);
      if (m[2] === 'Mark-Compact') isolate.liveAfterFull.push(Number(m[5]) * 1e6);
      else isolate.scavenges++;
    }
    return rest;
  }

  main(): { liveAfterFull: number[]; maxUsed: number; maxCommitted: number; scavenges: number } | null {
    return [...this.#byIsolate.values()].sort((a, b) => b.scavenges + b.liveAfterFull.length - (a.scavenges + a.liveAfterFull.length))[0] ?? null;
  }
}

interface CaseResult extends ChildResult {
  /** RSS at a quarter, half and three quarters of the work's wall time, sampled from outside every 20 ms (flat or growing). */
  quarters: number[];
  /** The sample with the most RSS, split into anonymous memory (heaps) and mapped files (node, its libraries), and when it was taken (seconds before the child's end). */
  top: { rss: number; anon: number; file: number; beforeEnd: number } | null;
  gc: ReturnType<GcTrace['main']>;
  stdout: string;
}

/**
 * Runs one case in a process of its own, so that its peak RSS is its own.
 * The parent samples the child's RSS from outside: a timer inside would not
 * run while the child works through a chain of awaits that never yields to
 * the event loop (the store's synchronous SQLite calls), which is when the
 * peak can happen.
 */
async function runCase(argv: string[], env: NodeJS.ProcessEnv, resultFile: string | null): Promise<CaseResult> {
  const child = spawn(process.execPath, ['--trace-gc', ...nodeFlags, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const gc = new GcTrace();
  const out: string[] = [];
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => out.push(...gc.feed(d)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const samples: { at: number; rss: { rss: number; anon: number; file: number } }[] = [];
  const started = performance.now();
  const timer = setInterval(() => {
    const rss = child.pid ? procRss(child.pid) : null;
    if (rss) samples.push({ at: performance.now() - started, rss });
  }, 20);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(timer);
  out.push(...gc.feed('\n'));
  if (code !== 0) throw new Error(`bench case ${argv.join(' ')} failed (exit ${code}):\n${stderr}\n${out.slice(-20).join('\n')}`);
  const stdout = out.join('\n');
  const result = resultFile ? (JSON.parse(readFileSync(resultFile, 'utf8')) as ChildResult) : (JSON.parse(/^RESULT (.*)$/m.exec(stdout)![1]!) as ChildResult);
  // The work is the last part of the child's life: its quarters are counted back from the end.
  const end = samples.at(-1)?.at ?? 0;
  const quarters = [0.75, 0.5, 0.25].map((f) => {
    const at = end - f * result.workWall * 1000;
    return samples.find((s) => s.at >= at)?.rss.rss ?? 0;
  });
  const highest = samples.reduce<(typeof samples)[number] | null>((a, b) => (!a || b.rss.rss > a.rss.rss ? b : a), null);
  const top = highest ? { ...highest.rss, beforeEnd: (end - highest.at) / 1000 } : null;
  return { ...result, quarters, top, gc: gc.main(), stdout };
}

/** node flags given to every case (--node-flags), e.g. V8 heap settings to compare. */
const nodeFlags = (flag('node-flags') ?? '').split(' ').filter(Boolean);
const build = (flag('build') ?? 'src') as 'src' | 'dist';
const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const BIN = join(ROOT, 'bin', 'dmarc-rollout.js');
const PROBE = join(ROOT, 'bench', 'ingest-cli-probe.mjs');

/** A case: under tsx with this file as the child (src), or the real command on the compiled build with the probe preloaded (dist). */
async function measure(kind: 'small' | 'parse' | 'ingest', input: string, dir: string, extra: { n?: number; postgres?: string }): Promise<CaseResult> {
  if (build === 'src') {
    const args = kind === 'small' ? ['small', dir, String(extra.n), extra.postgres ?? ''] : ['big', input, kind, dir];
    return runCase([...process.execArgv, SELF, '--child', ...args], {}, null);
  }
  const resultFile = join(dir, 'probe.json');
  const command = kind === 'parse' ? ['report', 'parse', input, '--json'] : ['ingest', input, '--rejected-dir', join(dir, 'rejected'), ...(kind === 'ingest' ? ['--verbose'] : [])];
  const env = { DMARC_ROLLOUT_DB: join(dir, 'store.sqlite'), DMARC_BENCH_BARE: input, DMARC_BENCH_OUT: resultFile };
  const r = await runCase(['--import', PROBE, BIN, ...command], env, resultFile);
  // The command says what it read: records for a report, reports stored for a folder.
  const said = kind === 'parse' ? /"records":(\d+)/.exec(r.stdout) : kind === 'ingest' ? /, (\d+) records,/.exec(r.stdout) : /^\d+ inputs?: (\d+) stored/m.exec(r.stdout);
  return { ...r, count: said ? Number(said[1]) : -1 };
}

const mib = (n: number) => `${fmt(n / MB, 0)} MiB`;

function memoryLines(r: CaseResult, indent: string): string[] {
  const lines = [`${indent}RSS at 1/4, 1/2, 3/4 of the work: ${r.quarters.map(mib).join(' / ')}; peak ${mib(r.peak)} (after the bare pass: ${mib(r.barePeak)})`];
  if (r.top) {
    lines.push(
      `${indent}  highest sample: ${mib(r.top.rss)} = ${mib(r.top.anon)} anonymous (V8 heap, SQLite, malloc) + ${mib(r.top.file)} mapped files (node, libraries), ${fmt(r.top.beforeEnd)} s before the end (the work took ${fmt(r.workWall)} s)`,
    );
  }
  if (r.gc && r.gc.liveAfterFull.length) {
    const live = r.gc.liveAfterFull;
    lines.push(
      `${indent}  V8 heap: ${fmt(Math.min(...live) / MB, 0)}-${fmt(Math.max(...live) / MB, 0)} MiB live after each of ${live.length} full GCs; up to ${mib(r.gc.maxUsed)} in use and ${mib(r.gc.maxCommitted)} reserved between them`,
    );
  }
  return lines;
}

interface Row {
  what: string;
  ratio: number;
  perCpuSecond: string;
  peak: number;
  barePeak: number;
}

async function main(): Promise<void> {
  const reports = (flag('reports') ?? '2000').split(',').map(Number).filter((n) => n > 0);
  const bigMbs = (flag('big-mb') ?? '40').split(',').map(Number).filter((n) => n > 0);
  const bigModes = (flag('big') ?? 'parse,ingest').split(',') as Array<'parse' | 'ingest'>;
  const storeKind = (flag('store') ?? 'sqlite') as 'sqlite' | 'postgres';
  if (build === 'dist' && !existsSync(join(ROOT, 'dist', 'cli', 'run.js'))) throw new Error('--build dist measures the compiled build: run `npm run build` first');
  if (build === 'dist' && storeKind === 'postgres') throw new Error('--store postgres runs under tsx only (--build src)');
  const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-'));
  const rows: Row[] = [];
  let postgres: import('../test/helpers/postgres.js').PostgresServer | undefined;
  try {
    console.log(`dmarc-rollout ingest benchmark, node ${process.version}, ${new Date().toISOString()}`);
    console.log(
      build === 'src'
        ? 'build: the TypeScript sources under tsx (each case a child process: node --import tsx)'
        : 'build: the compiled one (dist/), measured in the real command: node bin/dmarc-rollout.js, start-up included, no tsx',
    );
    if (nodeFlags.length) console.log(`node flags for every case: ${nodeFlags.join(' ')}`);
    console.log('"x bare" is CPU time against a bare saxes pass (xmlns on, no handlers) over the same bytes, run first in the same process');
    for (const n of reports) {
      const dir = join(work, `small-${n}`);
      const { inputBytes, xmlBytes } = writeSmallReports(join(dir, 'reports'), n);
      let connection: string | undefined;
      if (storeKind === 'postgres') {
        const { startPostgres } = await import('../test/helpers/postgres.js');
        postgres ??= await startPostgres();
        connection = JSON.stringify(postgres.connection(await postgres.createDatabase('ingest')));
      }
      const r = await measure('small', join(dir, 'reports'), dir, { n, ...(connection ? { postgres: connection } : {}) });
      if (r.count !== n) throw new Error(`${r.count} of ${n} small reports stored`);
      console.log(`\n${n.toLocaleString('en-US')} small reports (${fmt(inputBytes / MB)} MiB on disk, ${fmt(xmlBytes / MB)} MiB of XML; zip, gzip and plain XML from five reporters), a folder ingested into a fresh ${storeKind === 'postgres' ? 'Postgres' : 'SQLite'} store`);
      console.log(`  bare saxes pass (read, inflate, saxes):  ${fmt(r.bare, 2)} s CPU (${fmt(r.bareWall, 2)} s wall)  ${fmt(n / r.bare, 0)} reports per CPU second`);
      console.log(`  ingest:                                   ${fmt(r.work, 2)} s CPU (${fmt(r.workWall, 2)} s wall)  ${fmt(n / r.work, 0)} reports per CPU second (${fmt(n / r.workWall, 0)}/s wall)  = ${fmt(r.work / r.bare, 2)} x bare`);
      for (const line of memoryLines(r, '  ')) console.log(line);
      rows.push({ what: `${n.toLocaleString('en-US')} small reports, ${storeKind}`, ratio: r.work / r.bare, perCpuSecond: `${fmt(n / r.work, 0)} reports`, peak: r.peak, barePeak: r.barePeak });
      rmSync(dir, { recursive: true, force: true });
    }
    for (const bigMb of bigMbs) {
      const path = join(work, `big-${bigMb}.xml`);
      const { bytes, records } = await writeBigReport(path, bigMb);
      console.log(`\none report of ${fmt(bytes / MB)} MiB (${records.toLocaleString('en-US')} records, each from its own source), plain XML from disk`);
      for (const mode of bigModes) {
        const dir = join(work, `big-${mode}`);
        mkdirSync(dir);
        const r = await measure(mode, path, dir, {});
        if (r.count !== records) throw new Error(`${mode}: ${r.count} of ${records} records`);
        const label = mode === 'parse' ? 'parse (unpack, parse, normalise, hash; nothing stored)' : 'ingest (parse + store in SQLite)';
        console.log(`  ${label}`);
        console.log(`    bare saxes pass: ${fmt(r.bare, 2)} s CPU (${fmt(r.bareWall, 2)} s wall)  ${fmt(bytes / MB / r.bare)} MiB per CPU second`);
        console.log(
          `    ${mode}: ${fmt(r.work, 2)} s CPU (${fmt(r.workWall, 2)} s wall)  ${fmt(bytes / MB / r.work)} MiB per CPU second  ${fmt(records / r.work, 0)} records per CPU second  = ${fmt(r.work / r.bare, 2)} x bare (${fmt(r.bare / r.work, 2)} of its speed)`,
        );
        for (const line of memoryLines(r, '    ')) console.log(line);
        rows.push({ what: `${fmt(bytes / MB, 0)} MiB report, ${mode}`, ratio: r.work / r.bare, perCpuSecond: `${fmt(bytes / MB / r.work)} MiB`, peak: r.peak, barePeak: r.barePeak });
        rmSync(dir, { recursive: true, force: true });
      }
      rmSync(path);
    }
    if (rows.length > 1) {
      console.log('\nsummary (flat memory: the peak should not follow the number or size of reports)');
      for (const r of rows) console.log(`  ${r.what.padEnd(34)} ${fmt(r.ratio, 2).padStart(6)} x bare  ${r.perCpuSecond.padStart(12)} per CPU s  peak RSS ${mib(r.peak).padStart(8)} (bare pass ${mib(r.barePeak)})`);
    }
  } finally {
    await postgres?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child')) {
  const [kind, a, b, c] = process.argv.slice(process.argv.indexOf('--child') + 1);
  const result = kind === 'small' ? await childSmall(a!, Number(b), c || undefined) : await childBig(a!, b as 'parse' | 'ingest', c!);
  console.log(`RESULT ${JSON.stringify(result)}`);
} else {
  await main();
}
