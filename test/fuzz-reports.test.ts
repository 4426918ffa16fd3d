/**
 * The report parser over seeded mutations of the real corpus: truncation,
 * bit flips, byte runs, duplicated and nested elements, huge counts, foreign
 * encodings, wrapped in gzip. Every input ends as a parsed report with exact,
 * bounded figures, or a ReportError naming why: never another exception, a
 * hang, or a count beyond exact integers. Bounded (a fixed number of
 * mutations per file) and seeded, so a failure replays; the counts are printed.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ReportError } from '../src/reports/errors.js';
import { readReport } from '../src/reports/parse.js';
import { CORPUS_DIR } from './helpers/corpus.js';

const SEED = 20261313;
const PER_FILE = 25;

/** mulberry32: a small seeded PRNG, so every run mutates the same way. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (statSync(full).size < 2 * 1024 * 1024) out.push(full);
    }
  };
  walk(join(CORPUS_DIR, 'aggregate'));
  return out;
}

type Mutation = (bytes: Buffer, rnd: () => number) => Buffer;
const pick = <T>(list: readonly T[], rnd: () => number) => list[Math.floor(rnd() * list.length)]!;
const MUTATIONS: Record<string, Mutation> = {
  truncate: (b, rnd) => b.subarray(0, Math.floor(rnd() * b.length)),
  bitflips: (b, rnd) => {
    const c = Buffer.from(b);
    for (let i = 0; i < 1 + Math.floor(rnd() * 16); i++) {
      const at = Math.floor(rnd() * c.length);
      c[at] = c[at]! ^ (1 << Math.floor(rnd() * 8));
    }
    return c;
  },
  'byte run': (b, rnd) => {
    const at = Math.floor(rnd() * b.length);
    return Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + Math.floor(rnd() * 4096), Math.floor(rnd() * 256)), b.subarray(at)]);
  },
  'duplicate element': (b, rnd) => {
    const s = b.toString('latin1');
    const tag = pick(['record', 'report_metadata', 'policy_published', 'row', 'auth_results', 'feedback'], rnd);
    const m = new RegExp(`<${tag}[\\s>][\\s\\S]*?</${tag}>`).exec(s);
    return m ? Buffer.from(s.slice(0, m.index) + m[0] + m[0] + s.slice(m.index), 'latin1') : b;
  },
  'deep nesting': (b, rnd) => {
    const s = b.toString('latin1');
    const at = s.indexOf('<record>');
    if (at < 0) return b;
    const depth = 1 + Math.floor(rnd() * 200);
    return Buffer.from(`${s.slice(0, at)}${'<x>'.repeat(depth)}${'</x>'.repeat(depth)}${s.slice(at)}`, 'latin1');
  },
  'huge count': (b, rnd) =>
    Buffer.from(b.toString('latin1').replace(/<count>\s*\d+\s*<\/count>/g, () => `<count>${pick(['9007199254740991', '9007199254740992', '18446744073709551616', '-1', '1e309', '0x10', '999999999999999'], rnd)}</count>`), 'latin1'),
  'other encoding': (b, rnd) => {
    const enc = pick(['utf16le', 'latin1'] as const, rnd);
    const s = b.toString('utf8').replace(/encoding=["'][^"']*["']/, `encoding="${enc === 'utf16le' ? 'UTF-16' : 'ISO-8859-1'}"`);
    return enc === 'utf16le' ? Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(s, 'utf16le')]) : Buffer.from(s, 'latin1');
  },
  'gzip of mutated': (b, rnd) => gzipSync(MUTATIONS.bitflips!(b, rnd)),
  'comments between rows': (b, rnd) => Buffer.from(b.toString('latin1').replace(/<\/record>/g, () => `</record><!--${'c'.repeat(Math.floor(rnd() * 2000))}-->`), 'latin1'),
};

it('the parser over mutations of the corpus: a report with exact figures, or a ReportError', async () => {
  const rnd = prng(SEED);
  const files = corpusFiles();
  assert.ok(files.length >= 20, `corpus files: ${files.length}`);
  const outcomes = new Map<string, number>();
  let parsed = 0;
  let total = 0;
  for (const file of files) {
    const original = readFileSync(file);
    for (let i = 0; i < PER_FILE; i++) {
      const name = pick(Object.keys(MUTATIONS), rnd);
      const input = MUTATIONS[name]!(original, rnd);
      total++;
      try {
        const report = await readReport({ bytes: input });
        parsed++;
        for (const n of [report.figures.messages, report.figures.records, report.figures.dmarc_pass, report.figures.dmarc_fail]) {
          assert.ok(Number.isSafeInteger(n) && n >= 0, `${file} / ${name}: figure ${n}`);
        }
        assert.equal(report.figures.dmarc_pass + report.figures.dmarc_fail, report.figures.messages);
      } catch (error) {
        if (!(error instanceof ReportError)) assert.fail(`${file} / ${name} (#${i}, seed ${SEED}): not a ReportError: ${(error as Error)?.stack ?? error}`);
        outcomes.set(error.kind, (outcomes.get(error.kind) ?? 0) + 1);
        // A reason is a sentence about the input, never the input: bounded and on one line.
        assert.ok(error.message.length < 600 && !/[\r\n]/.test(error.message), `${file} / ${name}: ${error.message.slice(0, 200)}`);
      }
    }
  }
  console.log(`fuzz reports (seed ${SEED}): ${files.length} corpus files x ${PER_FILE} = ${total} mutations; ${parsed} parsed, refused by kind ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
  assert.ok(parsed > 0 && outcomes.size > 3, 'the mutations exercise both outcomes');
});
