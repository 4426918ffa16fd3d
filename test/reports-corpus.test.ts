/**
 * Every file of the shared corpus against expected.jsonl: the figures of each
 * aggregate file (the recoverable malformed ones against `recovered`), the
 * unrecoverable ones rejected with a reason, and the five failure (ruf)
 * mails recognised as such. Checked in-process and through the real CLI
 * (`report parse --json`), whose output is the contract tools rely on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { FAILURE_REPORT_REASON, ReportError, readReport, figuresLine } from '../src/reports/index.js';
import { REPO_ROOT, runMain } from './helpers/cli.js';
import { CORPUS_DIR } from './helpers/corpus.js';

const CORPUS = CORPUS_DIR;
const FIGURES = ['org', 'report_id', 'domain', 'begin', 'end', 'records', 'messages', 'dmarc_pass', 'dmarc_fail'] as const;

interface Expected {
  file: string;
  malformed?: boolean;
  why?: string;
  recovered?: Record<string, unknown> & { how: string };
  container?: string;
  namespace?: string;
  [k: string]: unknown;
}

const expected: Expected[] = readFileSync(join(CORPUS, 'expected.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Expected);
const byFile = new Map(expected.map((e) => [e.file, e]));

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      return statSync(p).isDirectory() ? walk(p) : [p];
    });
}

const aggregateFiles = walk(join(CORPUS, 'aggregate')).map((p) => relative(CORPUS, p));
const forensicFiles = walk(join(CORPUS, 'forensic')).map((p) => relative(CORPUS, p));

test('the corpus is what SOURCES.md says: 51 aggregate files, all in expected.jsonl, and 5 failure mails', () => {
  assert.equal(aggregateFiles.length, 51);
  assert.equal(forensicFiles.length, 5);
  assert.deepEqual([...aggregateFiles].sort(), expected.map((e) => e.file).sort());
});

for (const file of aggregateFiles) {
  const e = byFile.get(file)!;
  test(`corpus ${file}`, async () => {
    const path = join(CORPUS, file);
    if (e.malformed && !e.recovered) {
      await assert.rejects(readReport({ path }), (err: unknown) => {
        assert.ok(err instanceof ReportError, `expected a ReportError, got ${String(err)}`);
        assert.ok(err.message.length > 5);
        return true;
      });
      return;
    }
    const report = await readReport({ path });
    const line = figuresLine(file, report);
    const want = (e.recovered ?? e) as Record<string, unknown>;
    for (const k of FIGURES) assert.deepEqual(line[k], want[k], `${k} of ${file}`);
    assert.equal(line.dmarc_pass + line.dmarc_fail, line.messages);
    assert.equal(typeof line.report_id, 'string');
    assert.equal(line.container, e.container, `container of ${file}`);
    assert.equal(line.namespace, e.namespace, `namespace of ${file}`);
    if (e.recovered) assert.ok(line.repaired, `${file} is recovered, so the repair must be recorded`);
  });
}

test('the recorded repairs say what was repaired', async () => {
  const ikea = await readReport({ path: join(CORPUS, 'aggregate/parsedmarc/ikea.com!example.de!1538690400!1538776800.xml') });
  assert.match(ikea.repaired ?? '', /unclosed <xs:schema> start tag/);
  const utf8 = await readReport({ path: join(CORPUS, 'aggregate/parsedmarc/invalid_utf_8.xml') });
  assert.match(utf8.repaired ?? '', /1 invalid UTF-8 byte sequence with U\+FFFD/);
  const mimecast = await readReport({ path: join(CORPUS, 'aggregate/parsedmarc/mimecast-weird-gzip.eml') });
  assert.match(mimecast.repaired ?? '', /2 bytes of trailing data/);
  const nice = await readReport({ path: join(CORPUS, 'aggregate/parsedmarc/nice-input.xml') });
  assert.equal(nice.repaired, null);
});

test('empty.xml and invalid_xml.xml are refused with the file-level and field-level reason', async () => {
  await assert.rejects(readReport({ path: join(CORPUS, 'aggregate/parsedmarc/empty.xml') }), /empty file \(0 bytes\)/);
  await assert.rejects(readReport({ path: join(CORPUS, 'aggregate/parsedmarc/invalid_xml.xml') }), (err: unknown) => {
    assert.ok(err instanceof ReportError);
    assert.equal(err.field, 'report_metadata/email');
    assert.match(err.message, /not well-formed XML: 5:\d+/);
    return true;
  });
});

for (const file of forensicFiles) {
  test(`forensic ${file} is set aside as a failure report`, async () => {
    await assert.rejects(readReport({ path: join(CORPUS, file) }), (err: unknown) => {
      assert.ok(err instanceof ReportError);
      assert.equal(err.kind, 'failure-report');
      assert.equal(err.message, FAILURE_REPORT_REASON);
      return true;
    });
  });
}

test('report parse --json over the whole corpus: one line per file, in order, contract figures, exit 1', async () => {
  const files = [...aggregateFiles, ...forensicFiles];
  const run = await runMain(['report', 'parse', '--json', ...files.map((f) => join(CORPUS, f))]);
  assert.equal(run.code, 1, 'some corpus files are unreadable, so the exit code is 1');
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, files.length);
  lines.forEach((line, i) => {
    const file = files[i]!;
    assert.equal(line.file, join(CORPUS, file), 'file is echoed as given');
    const e = byFile.get(file);
    if (!e) {
      assert.equal(line.error, FAILURE_REPORT_REASON);
      return;
    }
    if (e.malformed && !e.recovered) {
      assert.equal(typeof line.error, 'string');
      assert.equal(line.org, undefined);
      return;
    }
    const want = (e.recovered ?? e) as Record<string, unknown>;
    for (const k of FIGURES) assert.deepEqual(line[k], want[k], `${k} of ${file}`);
    assert.equal(line.container, e.container);
    assert.equal(line.repaired !== undefined, Boolean(e.recovered) || file.endsWith('mimecast-weird-gzip.eml'));
  });
});
