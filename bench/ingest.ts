/**
 * Ingest benchmark: throughput and peak memory of `ingest`, each against a
 * bare saxes pass over the same bytes in the same process (the floor: what
 * reading the XML costs with no work done on it).
 *
 *  - small reports: N daily-shaped reports (1 to 20 records; Google-style
 *    zip, Microsoft/Yahoo-style gzip, a few plain XML; a fleet of domains),
 *    written to a temp folder in day folders, then ingested from disk into a
 *    fresh SQLite store through ingestPaths (what `dmarc-rollout ingest`
 *    runs). The bare pass reads each file, inflates it, and runs saxes over it.
 *  - one big report of M MB (plain XML, written streaming to disk), read by
 *    readReport (unpack + parse + normalise + hash: the parse) and ingested
 *    (parse + store), each against a bare saxes pass streaming the same file.
 *
 * Every case runs in a child process of its own, so its peak RSS
 * (process.resourceUsage().maxRSS) is its own; the child does the bare pass
 * first (its peak is printed too) and then the measured work.
 *
 * Run: npm run bench:ingest                      (2,000 small reports, a 40 MB report)
 *      npm run bench:ingest -- --reports 10000,100000 --big-mb 400
 *      (--reports 0 or --big-mb 0 skips that part)
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { SaxesParser } from 'saxes';
import { openSqliteStore } from '../src/store/open.js';
import { ingestInput, ingestPaths, readReport } from '../src/reports/index.js';
import { makeZip, recordXml, reportHead, REPORT_TAIL } from '../test/fixtures/reports/make.js';

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
    for (let i = 0; i < 200; i++) chunk += recordXml(records++, 1 + (records % 50), records % 3 ? 'pass' : 'fail');
    await write(chunk);
  }
  await write(REPORT_TAIL);
  out.end();
  await once(out, 'finish');
  return { bytes, records };
}

// ---------------------------------------------------------------- the floor

function saxesPass(pieces: Iterable<Buffer>): void {
  const p = new SaxesParser({ xmlns: true });
  const d = new TextDecoder('utf-8');
  for (const b of pieces) p.write(d.decode(b, { stream: true }));
  p.write(d.decode());
  p.close();
}

function* in64k(b: Buffer): Generator<Buffer> {
  for (let i = 0; i < b.length; i += 64 * 1024) yield b.subarray(i, i + 64 * 1024);
}

/** The single member of a zip written by makeZip(), inflated (bare: no zip library). */
function unzipOnly(zip: Buffer): Buffer {
  const nameLength = zip.readUInt16LE(26);
  const size = zip.readUInt32LE(18);
  return inflateRawSync(zip.subarray(30 + nameLength, 30 + nameLength + size));
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? listFiles(join(dir, n)) : [join(dir, n)]));
}

/** Read, inflate and saxes every file: the floor for the small reports. */
function bareSmall(dir: string): void {
  for (const f of listFiles(dir)) {
    const raw = readFileSync(f);
    const xml = f.endsWith('.zip') ? unzipOnly(raw) : f.endsWith('.gz') ? gunzipSync(raw) : raw;
    saxesPass(in64k(xml));
  }
}

async function bareFile(path: string): Promise<void> {
  const p = new SaxesParser({ xmlns: true });
  const d = new TextDecoder('utf-8');
  for await (const c of createReadStream(path, { highWaterMark: 64 * 1024 })) p.write(d.decode(c as Buffer, { stream: true }));
  p.close();
}

// ---------------------------------------------------------------- child cases

interface CaseResult {
  /** CPU seconds (user + system) of the bare pass and of the work: the ratio holds up on a busy machine, wall time does not. */
  bare: number;
  work: number;
  bareWall: number;
  workWall: number;
  /** Peak RSS after the bare pass, and at the end. */
  barePeak: number;
  peak: number;
  /** RSS at a quarter, half and three quarters of the work (flat or growing). */
  quarters: number[];
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

async function childSmall(dir: string, n: number): Promise<CaseResult> {
  const bare = await timed(() => bareSmall(join(dir, 'reports')));
  const bareWall = lastWall;
  const barePeak = peakRss();
  const store = await openSqliteStore(join(dir, 'store.sqlite'));
  const quarters: number[] = [];
  let stored = 0;
  const work = await timed(async () => {
    const summary = await ingestPaths(store.db, [join(dir, 'reports')], {
      rejectedDir: join(dir, 'rejected'),
      onResult: (_r, done, total) => {
        if (done === Math.floor(total / 4) || done === Math.floor(total / 2) || done === Math.floor((3 * total) / 4)) quarters.push(process.memoryUsage.rss());
      },
    });
    stored = summary.stored;
  });
  const workWall = lastWall;
  await store.close();
  if (stored !== n) throw new Error(`${stored} of ${n} small reports stored`);
  return { bare, work, bareWall, workWall, barePeak, peak: peakRss(), quarters, count: stored };
}

async function childBig(path: string, mode: 'parse' | 'ingest', dir: string): Promise<CaseResult> {
  const bare = await timed(() => bareFile(path));
  const bareWall = lastWall;
  const barePeak = peakRss();
  const quarters: number[] = [];
  let count = 0;
  // RSS sampled at each quarter of the bytes: the parser's position is not visible, time is a fair proxy.
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(process.memoryUsage.rss()), 100);
  let work: number;
  try {
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
  } finally {
    clearInterval(timer);
  }
  for (const f of [0.25, 0.5, 0.75]) quarters.push(samples[Math.floor(samples.length * f)] ?? 0);
  return { bare, work, bareWall, workWall: lastWall, barePeak, peak: peakRss(), quarters, count };
}

// ---------------------------------------------------------------- parent

function runChild(args: string[]): CaseResult {
  const r = spawnSync(process.execPath, [...process.execArgv, SELF, '--child', ...args], { encoding: 'utf8', maxBuffer: 16 * MB });
  if (r.status !== 0) throw new Error(`bench case ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as CaseResult;
}

const mib = (n: number) => `${fmt(n / MB, 0)} MiB`;

async function main(): Promise<void> {
  const reports = (flag('reports') ?? '2000').split(',').map(Number).filter((n) => n > 0);
  const bigMb = Number(flag('big-mb') ?? 40);
  const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-'));
  try {
    console.log(`dmarc-rollout ingest benchmark, node ${process.version}, ${new Date().toISOString()}`);
    console.log('each case in its own process; "x bare" is CPU time against a bare saxes pass (xmlns on, no handlers) over the same bytes, run first in that process');
    for (const n of reports) {
      const dir = join(work, `small-${n}`);
      const { inputBytes, xmlBytes } = writeSmallReports(join(dir, 'reports'), n);
      const r = runChild(['small', dir, String(n)]);
      console.log(`\n${n.toLocaleString('en-US')} small reports (${fmt(inputBytes / MB)} MiB on disk, ${fmt(xmlBytes / MB)} MiB of XML; zip, gzip and plain XML from five reporters), ingested into a fresh SQLite store`);
      console.log(`  bare saxes pass (read, inflate, saxes):  ${fmt(r.bare, 2)} s CPU (${fmt(r.bareWall, 2)} s wall)  ${fmt(n / r.bare, 0)} reports per CPU second  peak RSS ${mib(r.barePeak)}`);
      console.log(`  ingest (ingestPaths):                     ${fmt(r.work, 2)} s CPU (${fmt(r.workWall, 2)} s wall)  ${fmt(n / r.work, 0)} reports per CPU second (${fmt(n / r.workWall, 0)}/s wall)  = ${fmt(r.work / r.bare, 2)} x bare`);
      console.log(`  RSS at 1/4, 1/2, 3/4 of the reports: ${r.quarters.map(mib).join(' / ')}; peak ${mib(r.peak)}`);
      rmSync(dir, { recursive: true, force: true });
    }
    if (bigMb > 0) {
      const path = join(work, `big-${bigMb}.xml`);
      const { bytes, records } = await writeBigReport(path, bigMb);
      console.log(`\none report of ${fmt(bytes / MB)} MiB (${records.toLocaleString('en-US')} records), plain XML from disk`);
      for (const mode of ['parse', 'ingest'] as const) {
        const dir = join(work, `big-${mode}`);
        mkdirSync(dir);
        const r = runChild(['big', path, mode, dir]);
        if (r.count !== records) throw new Error(`${mode}: ${r.count} of ${records} records`);
        const label = mode === 'parse' ? 'parse (readReport: unpack, parse, normalise, hash)' : 'ingest (parse + store in SQLite)';
        console.log(`  ${label}`);
        console.log(`    bare saxes pass: ${fmt(r.bare, 2)} s CPU (${fmt(r.bareWall, 2)} s wall)  ${fmt(bytes / MB / r.bare)} MiB per CPU second  peak RSS ${mib(r.barePeak)}`);
        console.log(
          `    ${mode}: ${fmt(r.work, 2)} s CPU (${fmt(r.workWall, 2)} s wall)  ${fmt(bytes / MB / r.work)} MiB per CPU second  ${fmt(records / r.work, 0)} records per CPU second  = ${fmt(r.work / r.bare, 2)} x bare (${fmt(r.bare / r.work, 2)} of its speed)`,
        );
        console.log(`    RSS at 1/4, 1/2, 3/4 of the run: ${r.quarters.map(mib).join(' / ')}; peak ${mib(r.peak)}`);
        rmSync(dir, { recursive: true, force: true });
      }
      rmSync(path);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child')) {
  const [kind, a, b, c] = process.argv.slice(process.argv.indexOf('--child') + 1);
  const result = kind === 'small' ? await childSmall(a!, Number(b)) : await childBig(a!, b as 'parse' | 'ingest', c!);
  console.log(JSON.stringify(result));
} else {
  await main();
}
