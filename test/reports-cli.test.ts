/**
 * The report commands as an operator and a script run them, with their own
 * SQLite store: through main() in this process (no process boundary is under
 * test here; test/cli-contract.test.ts starts the real executable).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { runMain, tempStore } from './helpers/cli.js';
import { makeMail, makeZip, reportXml } from './fixtures/reports/make.js';

function inputs(dir: string) {
  const xml = Buffer.from(reportXml({ records: 3, count: 4, dkim: 'fail' }));
  const files = {
    plain: join(dir, 'plain.xml'),
    gz: join(dir, 'other.xml.gz'),
    mail: join(dir, 'mail.eml'),
    broken: join(dir, 'broken.xml'),
    ruf: join(dir, 'ruf.eml'),
  };
  writeFileSync(files.plain, xml);
  writeFileSync(files.gz, gzipSync(Buffer.from(reportXml({ reportId: 'r-2', org: 'other.example', records: 1, count: 9 }))));
  writeFileSync(files.mail, makeMail(makeZip([{ name: 'r3.xml', data: Buffer.from(reportXml({ reportId: 'r-3' })) }]), 'r3.zip', 'application/zip', 'attachment-first'));
  writeFileSync(files.broken, reportXml().replace('</policy_published>', ''));
  writeFileSync(
    files.ruf,
    [
      'From: mailer@receiver.example',
      'To: ruf@example.com',
      'Subject: DMARC failure report',
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=feedback-report; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'A message failed DMARC.',
      '--b1',
      'Content-Type: message/feedback-report',
      '',
      'Feedback-Type: auth-failure',
      'Auth-Failure: dmarc',
      '--b1--',
      '',
    ].join('\r\n'),
  );
  return files;
}

test('report parse --json: one object per file in the order given, stores nothing, exit 0 when all read', async () => {
  const { dir, db } = tempStore('dmarc-rollout-cli-');
  const f = inputs(dir);
  const run = await runMain(['report', 'parse', '--json', f.mail, f.plain, f.gz], { DMARC_ROLLOUT_DB: db });
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.file),
    [f.mail, f.plain, f.gz],
  );
  assert.deepEqual(lines[1], {
    file: f.plain,
    org: 'receiver.example',
    report_id: 'r-1',
    domain: 'example.com',
    begin: 1700000000,
    end: 1700086399,
    records: 3,
    messages: 12,
    dmarc_pass: 0,
    dmarc_fail: 12,
  });
  assert.equal(lines[0].container, 'eml+zip');
  assert.equal(lines[0].report_id, 'r-3');
  assert.equal(lines[2].container, 'gzip');
  assert.equal(lines[2].messages, 9);
  assert.equal(lines[2].dmarc_pass, 9);
  assert.equal(existsSync(db), false, 'report parse opens no store');
});

test('report parse --json: an unreadable file gets file and error, the others still print, exit 1', async () => {
  const { dir } = tempStore('dmarc-rollout-cli-');
  const f = inputs(dir);
  const missing = join(dir, 'nope.xml');
  const run = await runMain(['report', 'parse', '--json', f.broken, f.plain, f.ruf, missing]);
  assert.equal(run.code, 1);
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 4);
  assert.equal(lines[0].file, f.broken);
  assert.match(lines[0].error, /not well-formed XML/);
  assert.equal(lines[0].org, undefined);
  assert.equal(lines[1].report_id, 'r-1');
  assert.deepEqual(lines[2], { file: f.ruf, error: 'failure (ruf) report, not aggregate data' });
  assert.match(lines[3].error, /cannot read: ENOENT/);
});

test('report parse without --json prints a line per report and names the file and reason of a failure on stderr', async () => {
  const { dir } = tempStore('dmarc-rollout-cli-');
  const f = inputs(dir);
  const run = await runMain(['report', 'parse', f.plain, f.broken]);
  assert.equal(run.code, 1);
  assert.match(run.stdout, /plain\.xml: org="receiver\.example" report_id=r-1 domain=example\.com .* records=3 messages=12 pass=0 fail=12/);
  assert.match(run.stderr, new RegExp(`${f.broken.replace(/[.]/g, '\\.')}: .*not well-formed XML`));
});

test('ingest: stores, keeps rejected inputs with their reason, prints a summary; run again, all duplicates', async () => {
  const { dir, db } = tempStore('dmarc-rollout-cli-');
  const inbox = join(dir, 'inbox');
  mkdirSync(join(inbox, 'nested'), { recursive: true });
  const f = inputs(join(inbox));
  writeFileSync(join(inbox, 'nested', 'copy.xml.gz'), gzipSync(Buffer.from(reportXml({ records: 3, count: 4, dkim: 'fail' }))));
  const rejectedDir = join(dir, 'kept');
  const run = await runMain(['ingest', inbox, '--rejected-dir', rejectedDir], { DMARC_ROLLOUT_DB: db });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /6 inputs: 3 stored, 1 duplicate, 2 rejected, 0 errors/);
  assert.match(run.stdout, new RegExp(`rejected ${f.ruf.replace(/[.]/g, '\\.')}: failure \\(ruf\\) report, not aggregate data`));
  assert.match(run.stdout, /rejected .*broken\.xml: .*not well-formed XML/);
  assert.match(run.stdout, /rejected inputs are kept in .*kept/);
  assert.equal(readdirSync(rejectedDir).filter((n) => n.endsWith('.reason.json')).length, 2);

  const again = await runMain(['ingest', inbox, '--json', '--rejected-dir', rejectedDir], { DMARC_ROLLOUT_DB: db });
  assert.equal(again.code, 0);
  const summary = JSON.parse(again.stdout);
  assert.equal(summary.stored, 0);
  assert.equal(summary.duplicates, 4);
  assert.equal(summary.rejected, 2);
  assert.ok(summary.results.every((r: { status: string; seen_before?: boolean }) => r.status !== 'rejected' || r.seen_before === true));
  assert.deepEqual(summary.rejected_reasons.map((r: { count: number }) => r.count), [1, 1]);
});

test('ingest: the rejected folder defaults to rejected/ beside DMARC_ROLLOUT_DB; a missing path is an error, exit 1', async () => {
  const { dir, db } = tempStore('dmarc-rollout-cli-');
  writeFileSync(join(dir, 'x.xml'), '<feedback>');
  const run = await runMain(['ingest', join(dir, 'x.xml'), join(dir, 'missing')], { DMARC_ROLLOUT_DB: db });
  assert.equal(run.code, 1);
  assert.match(run.stderr, /error .*missing: cannot read/);
  assert.equal(readdirSync(join(dir, 'rejected')).length, 2);
});
