/**
 * Ingest benchmark: parse + normalise + store, against a bare saxes pass over
 * the same decompressed bytes in the same process (the floor: what reading
 * the XML costs with no work done on it).
 *
 *  1. the shared corpus, replicated to a few thousand distinct reports (each
 *     copy gets its own report_id and keeps its container: xml, gzip, zip,
 *     zlib, mail), ingested from disk into a fresh SQLite store;
 *  2. one synthetic 500 MB report (generated into a temp folder, deleted
 *     after), streamed and stored, with RSS sampled while it runs: the peak
 *     must stay flat, not grow with the report (a 50 MB report is run first
 *     to compare).
 *
 * Run: npm run bench  (env: BENCH_COPIES=3000 BENCH_BIG_MB=500)
 */
import { createReadStream, createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, gzipSync } from 'node:zlib';
import { SaxesParser } from 'saxes';
import { openSqliteStore } from '../src/store/open.js';
import { DEFAULT_LIMITS, ingestInput, readReport } from '../src/reports/index.js';
import { unpack } from '../src/reports/unpack.js';
import { makeMail, makeZip, recordXml, reportHead, REPORT_TAIL } from '../test/fixtures/reports/make.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const CORPUS = resolve(ROOT, 'test/fixtures/corpus/aggregate');
const COPIES = Number(process.env.BENCH_COPIES ?? 3000);
const BIG_MB = Number(process.env.BENCH_BIG_MB ?? 500);
const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-'));
const MB = 1024 * 1024;

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
}

async function xmlOf(path: string): Promise<{ xml: Buffer; container: string | null } | null> {
  try {
    await readReport({ path });
  } catch {
    return null; // the corpus's malformed files are not benchmark material
  }
  const u = await unpack({ path }, { ...DEFAULT_LIMITS });
  const parts: Buffer[] = [];
  for await (const c of u.xml) parts.push(c);
  return { xml: Buffer.concat(parts), container: u.chain.join('+') || null };
}

function pack(xml: Buffer, container: string | null, name: string): Buffer {
  switch (container) {
    case null:
      return xml;
    case 'gzip':
      return gzipSync(xml);
    case 'gzip+gzip':
      return gzipSync(gzipSync(xml));
    case 'zlib':
      return deflateSync(xml);
    case 'zip':
      return makeZip([{ name: `${name}.xml`, data: xml }]);
    case 'eml+zip':
      return makeMail(makeZip([{ name: `${name}.xml`, data: xml }]), `${name}.zip`, 'application/zip', 'attachment-last');
    case 'eml+gzip':
      return makeMail(gzipSync(xml), `${name}.xml.gz`, 'application/gzip', 'single-part');
    default:
      throw new Error(`no packer for ${container}`);
  }
}

/** The floor: saxes over the decompressed bytes, decoding included, no handlers. */
function bareSaxes(xml: Buffer): void {
  const p = new SaxesParser({ xmlns: true });
  p.on('error', () => undefined); // the two repaired corpus files are not well-formed; the floor just reads on
  const d = new TextDecoder('utf-8');
  for (let i = 0; i < xml.length; i += 64 * 1024) p.write(d.decode(xml.subarray(i, i + 64 * 1024), { stream: true }));
  p.close();
}

async function bareSaxesFile(path: string): Promise<void> {
  const p = new SaxesParser({ xmlns: true });
  const d = new TextDecoder('utf-8');
  for await (const c of createReadStream(path, { highWaterMark: 64 * 1024 })) p.write(d.decode(c as Buffer, { stream: true }));
  p.close();
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

async function corpusBench(): Promise<void> {
  const sources = (await Promise.all(walk(CORPUS).map(async (f) => ({ f, x: await xmlOf(f) })))).filter((s) => s.x !== null);
  const dir = join(work, 'corpus');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir);
  const xmls: Buffer[] = [];
  let inputBytes = 0;
  for (let i = 0; i < COPIES; i++) {
    const s = sources[i % sources.length]!;
    const text = s.x!.xml.toString('latin1');
    // A distinct report per copy: same content otherwise, so every copy is stored, none is a duplicate.
    const copy = Buffer.from(text.replace(/(<report_id>)([^<]*)(<\/report_id>)/, (_m, a: string, id: string, b: string) => `${a}${id.trim()}-bench-${i}${b}`), 'latin1');
    const packed = pack(copy, s.x!.container, `copy-${i}`);
    writeFileSync(join(dir, `${String(i).padStart(5, '0')}-${relative(CORPUS, s.f).replace(/[/]/g, '_')}`), packed);
    xmls.push(copy);
    inputBytes += packed.length;
  }
  const xmlBytes = xmls.reduce((n, b) => n + b.length, 0);

  let t = performance.now();
  for (const x of xmls) bareSaxes(x);
  const bare = (performance.now() - t) / 1000;

  t = performance.now();
  for (const f of readdirSync(dir)) await readReport({ path: join(dir, f) });
  const parseOnly = (performance.now() - t) / 1000;

  const store = await openSqliteStore(join(work, 'corpus.sqlite'));
  const files = readdirSync(dir).sort();
  t = performance.now();
  let stored = 0;
  for (const f of files) {
    const r = await ingestInput(store.db, { path: join(dir, f) }, f, { rejectedDir: join(work, 'rejected') });
    if (r.status === 'stored') stored++;
    else throw new Error(`${f}: ${JSON.stringify(r)}`);
  }
  const full = (performance.now() - t) / 1000;
  await store.close();

  console.log(`\ncorpus: ${sources.length} readable aggregate files replicated to ${COPIES} distinct reports (${stored} stored)`);
  console.log(`  input ${fmt(inputBytes / MB)} MiB on disk, ${fmt(xmlBytes / MB)} MiB of XML after unpacking`);
  console.log(`  bare saxes pass (same XML, in memory):   ${fmt(bare, 2)} s  ${fmt(COPIES / bare, 0)} reports/s  ${fmt(xmlBytes / MB / bare)} MiB/s`);
  console.log(`  read (unpack + parse + normalise):       ${fmt(parseOnly, 2)} s  ${fmt(COPIES / parseOnly, 0)} reports/s  ${fmt(xmlBytes / MB / parseOnly)} MiB/s  = ${fmt(parseOnly / bare, 2)} x bare`);
  console.log(`  ingest (read + store, SQLite, from disk): ${fmt(full, 2)} s  ${fmt(COPIES / full, 0)} reports/s  ${fmt(xmlBytes / MB / full)} MiB/s  = ${fmt(full / bare, 2)} x bare`);
}

/** Writes a synthetic report of about `mb` MB, streaming (it is never held in memory). */
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

async function sampled<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number; start: number; samples: number[] }> {
  const start = process.memoryUsage().rss;
  let peak = start;
  const samples: number[] = [];
  const timer = setInterval(() => {
    const rss = process.memoryUsage().rss;
    samples.push(rss);
    if (rss > peak) peak = rss;
  }, 50);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, peak, start, samples };
  } finally {
    clearInterval(timer);
  }
}

async function bigBench(mb: number): Promise<void> {
  const path = join(work, `big-${mb}.xml`);
  const { bytes, records } = await writeBigReport(path, mb);
  let t = performance.now();
  await bareSaxesFile(path);
  const bare = (performance.now() - t) / 1000;
  global.gc?.();
  const store = await openSqliteStore(join(work, `big-${mb}.sqlite`));
  t = performance.now();
  const run = await sampled(() => ingestInput(store.db, { path }, path, { rejectedDir: join(work, 'rejected') }));
  const full = (performance.now() - t) / 1000;
  await store.close();
  if (run.value.status !== 'stored' || run.value.records !== records) throw new Error(`big report not stored whole: ${JSON.stringify(run.value)}`);
  const q = (f: number) => run.samples[Math.min(run.samples.length - 1, Math.floor(run.samples.length * f))] ?? run.peak;
  console.log(`\nsynthetic report: ${fmt(bytes / MB)} MiB, ${records.toLocaleString('en-US')} records, one report, plain XML from disk`);
  console.log(`  bare saxes pass (same file, streamed):    ${fmt(bare, 2)} s  ${fmt(bytes / MB / bare)} MiB/s`);
  console.log(`  ingest (read + store, SQLite):            ${fmt(full, 2)} s  ${fmt(bytes / MB / full)} MiB/s  ${fmt(records / full, 0)} records/s  = ${fmt(full / bare, 2)} x bare`);
  console.log(
    `  RSS: ${fmt(run.start / MB, 0)} MiB before, ${fmt(q(0.25) / MB, 0)} / ${fmt(q(0.5) / MB, 0)} / ${fmt(q(0.75) / MB, 0)} MiB at 25/50/75% of the run, peak ${fmt(run.peak / MB, 0)} MiB (+${fmt((run.peak - run.start) / MB, 0)} MiB)`,
  );
  rmSync(path);
  rmSync(join(work, `big-${mb}.sqlite`), { force: true });
  rmSync(join(work, `big-${mb}.sqlite-wal`), { force: true });
}

try {
  console.log(`dmarc-rollout ingest benchmark, node ${process.version}, ${new Date().toISOString()}`);
  console.log('ratios are times against a bare saxes pass (xmlns on, no handlers) over the same decompressed bytes in this process');
  await corpusBench();
  await bigBench(Math.max(1, Math.round(BIG_MB / 10)));
  await bigBench(BIG_MB);
} finally {
  rmSync(work, { recursive: true, force: true });
}
