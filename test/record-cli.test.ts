/**
 * `dmarc-rollout record check|render` as an operator runs them: exit codes,
 * what goes to stdout and what to stderr. Through main() in this process
 * (test/helpers/cli.ts runMain): no process boundary is under test here;
 * test/cli-contract.test.ts starts the real executable.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runMain, type CliRun } from './helpers/cli.js';
import { tempDir } from './helpers/temp-dirs.js';

const dir = tempDir('dmarc-rollout-record-cli-');

function cli(...args: string[]): Promise<CliRun> {
  return runMain(args, { DMARC_ROLLOUT_DB: join(dir, 'store.sqlite') });
}

describe('record check', { concurrency: true }, () => {
  test('a valid record: exit 0, its tags and how each receiver applies it', async () => {
    const run = await cli('record', 'check', 'v=DMARC1; p=reject; pct=25; t=y; rua=mailto:agg@example.com');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      [
        'record: v=DMARC1; p=reject; pct=25; t=y; rua=mailto:agg@example.com',
        'valid: yes (0 errors, 0 warnings)',
        'tags:',
        '  v=DMARC1',
        '  p=reject',
        '  pct=25',
        '  t=y',
        '  rua=mailto:agg@example.com',
        'RFC 7489 receiver: failing mail from the domain and its subdomains: 25% rejected, the rest quarantined.',
        'RFC 9989 receiver (testing, t=y: each policy applied one level below what it says): failing mail from the domain and its subdomains: quarantined.',
        '',
      ].join('\n'),
    );
    assert.equal(run.stderr, '');
  });

  test('an invalid record: exit 1 and every problem listed', async () => {
    const run = await cli('record', 'check', 'v=DMARC1; p=rejet; pct=200; adkim=x; foo=bar');
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^valid: no \(3 errors, 1 warning\)$/m);
    assert.match(run.stdout, /^ {2}error {3}p {5}p=rejet is not a policy/m);
    assert.match(run.stdout, /^ {2}error {3}pct {3}pct=200 must be an integer from 0 to 100$/m);
    assert.match(run.stdout, /^ {2}error {3}adkim adkim=x must be r \(relaxed\) or s \(strict\)$/m);
    assert.match(run.stdout, /^ {2}warning foo {3}foo is not a DMARC tag/m);
    assert.match(run.stdout, /^RFC 7489 receiver: no DMARC policy/m);
  });

  test('warnings alone leave the record valid', async () => {
    const run = await cli('record', 'check', 'v=DMARC1; p=none; rf=afrf');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /^valid: yes \(0 errors, 1 warning\)$/m);
  });

  test('--json prints one object with stable field names', async () => {
    const run = await cli('record', 'check', '--json', 'v=DMARC1; p=quarantine; sp=none; np=reject; pct=5; t=y; rua=mailto:agg@example.com!10m');
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    assert.deepEqual(Object.keys(out), ['record', 'valid', 'problems', 'tags', 'txtStrings', 'rfc7489', 'rfc9989']);
    assert.equal(out.valid, true);
    assert.deepEqual(out.problems, [
      { severity: 'warning', code: 'obsolete-size-limit', tag: 'rua', reason: 'rua: the "!10m" size limit is ignored by RFC 9989 receivers' },
    ]);
    assert.deepEqual(out.tags[1], { name: 'p', value: 'quarantine' });
    assert.deepEqual(out.txtStrings, [out.record]);
    assert.deepEqual(Object.keys(out.rfc7489), ['usesRecord', 'note', 'testing', 'psd', 'domain', 'subdomains', 'nonExistentSubdomains', 'summary']);
    assert.deepEqual(out.rfc7489.domain, { requested: 'quarantine', source: 'p', applied: 'quarantine', percent: 5, rest: 'none' });
    assert.deepEqual(out.rfc7489.nonExistentSubdomains, { requested: 'none', source: 'sp', applied: 'none', percent: 100, rest: null });
    assert.equal(out.rfc9989.testing, true);
    assert.deepEqual(out.rfc9989.nonExistentSubdomains, { requested: 'reject', source: 'np', applied: 'quarantine', percent: 100, rest: null });
  });

  test('--json on an invalid record: valid false and exit 1', async () => {
    const run = await cli('record', 'check', 'p=none', '--json');
    assert.equal(run.code, 1);
    const out = JSON.parse(run.stdout);
    assert.equal(out.valid, false);
    assert.deepEqual(
      out.problems.map((p: { code: string }) => p.code),
      ['missing-version'],
    );
    assert.equal(out.rfc9989.usesRecord, false);
  });

  test('accepts the record quoted and split, as dig prints it', async () => {
    const run = await cli('record', 'check', '"v=DMARC1; p=reject; rua=mailto:a" "gg@example.com"');
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, /^record: v=DMARC1; p=reject; rua=mailto:agg@example.com$/m);
    const unterminated = await cli('record', 'check', '"v=DMARC1; p=reject');
    assert.equal(unterminated.code, 1);
    assert.match(unterminated.stderr, /unterminated quoted string/);
  });
});

describe('record render', { concurrency: true }, () => {
  const table: Array<[string, string]> = [
    ['none:100', 'v=DMARC1; p=none'],
    ['quarantine:5', 'v=DMARC1; p=quarantine; pct=5; t=y'],
    ['quarantine:100', 'v=DMARC1; p=quarantine'],
    ['reject:50', 'v=DMARC1; p=reject; pct=50; t=y'],
    ['reject:100', 'v=DMARC1; p=reject'],
  ];
  for (const [label, expected] of table) {
    test(`--stage ${label} prints ${expected}`, async () => {
      const run = await cli('record', 'render', '--stage', label);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${expected}\n`);
      assert.equal(run.stderr, '');
    });
  }

  test('--from keeps the owner\'s tags in order and changes only the managed ones', async () => {
    const run = await cli(
      'record',
      'render',
      '--stage',
      'reject:10',
      '--from',
      'v=DMARC1; p=quarantine; rua=mailto:agg@example.com; fo=1; pct=100; adkim=s',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'v=DMARC1; p=reject; t=y; rua=mailto:agg@example.com; fo=1; pct=10; adkim=s\n');
  });

  test('--rua replaces rua; --manage-sp and --manage-np set sp and np', async () => {
    const run = await cli(
      'record',
      'render',
      '--stage',
      'quarantine:25',
      '--from',
      'v=DMARC1; p=none; rua=mailto:old@example.com; sp=none',
      '--rua',
      'mailto:a@example.com,mailto:b@example.com',
      '--rua',
      'mailto:c@example.com',
      '--manage-sp',
      'quarantine',
      '--manage-np',
      'reject',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'v=DMARC1; p=quarantine; pct=25; t=y; np=reject; rua=mailto:a@example.com,mailto:b@example.com,mailto:c@example.com; sp=quarantine\n');
  });

  test('warnings go to stderr, the record alone to stdout', async () => {
    const run = await cli('record', 'render', '--stage', 'reject:100', '--from', 'v=DMARC1; p=none; ri=3600');
    assert.equal(run.code, 0);
    assert.equal(run.stdout, 'v=DMARC1; p=reject; ri=3600\n');
    assert.match(run.stderr, /^warning: ri is historic in RFC 9989/m);
  });

  test('--quoted prints 255-octet strings in presentation format', async () => {
    const rua = Array.from({ length: 12 }, (_, i) => `mailto:aggregate-reports-${i}@example.com`).join(',');
    const run = await cli('record', 'render', '--stage', 'reject:100', '--rua', rua, '--quoted');
    assert.equal(run.code, 0, run.stderr);
    const expected = `v=DMARC1; p=reject; rua=${rua}`;
    const strings = [...run.stdout.trim().matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(strings.length >= 2);
    assert.ok(strings.every((s) => s.length <= 255));
    assert.equal(strings.join(''), expected);
  });

  test('an invalid result: exit 1, the reasons on stderr, nothing on stdout', async () => {
    const run = await cli('record', 'render', '--stage', 'reject:100', '--from', 'v=DMARC1; p=none; rua=https://example.com/x; fo=7');
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^the record for this stage would be invalid:$/m);
    assert.match(run.stderr, /^error: rua: "https:\/\/example.com\/x" is not a mailto: URI/m);
    assert.match(run.stderr, /^error: fo=7 must be/m);
  });

  test('a current record with junk is refused rather than silently cleaned', async () => {
    const run = await cli('record', 'render', '--stage', 'quarantine:5', '--from', 'v=DMARC1; p=none; oops');
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /current record: "oops" is not a tag=value pair/);
  });

  test('--json: ok with the record, or not ok with the problems', async () => {
    const good = await cli('record', 'render', '--stage', 'quarantine:5', '--json');
    assert.equal(good.code, 0);
    assert.deepEqual(JSON.parse(good.stdout), {
      ok: true,
      record: 'v=DMARC1; p=quarantine; pct=5; t=y',
      txtStrings: ['v=DMARC1; p=quarantine; pct=5; t=y'],
      problems: [],
    });
    const bad = await cli('record', 'render', '--stage', 'reject:100', '--rua', 'reports@example.com', '--json');
    assert.equal(bad.code, 1);
    const out = JSON.parse(bad.stdout);
    assert.equal(out.ok, false);
    assert.equal(out.record, null);
    assert.deepEqual(out.problems.map((p: { code: string; tag: string }) => [p.code, p.tag]), [['bad-uri', 'rua']]);
  });

  test('a stage that is not one: exit 2 (a usage error) with the reason', async () => {
    const none5 = await cli('record', 'render', '--stage', 'none:5');
    assert.equal(none5.code, 2);
    assert.equal(none5.stdout, '');
    assert.match(none5.stderr, /none:5 is not a stage/);
    const garbage = await cli('record', 'render', '--stage', 'enforce');
    assert.equal(garbage.code, 2);
    assert.match(garbage.stderr, /expected <policy>:<pct>/);
  });

  test('a missing --stage or a bad --manage-sp policy: exit 2 (a usage error)', async () => {
    const missing = await cli('record', 'render');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--stage/);
    const badSp = await cli('record', 'render', '--stage', 'reject:100', '--manage-sp', 'block');
    assert.equal(badSp.code, 2);
    assert.match(badSp.stderr, /Allowed choices are none, quarantine, reject/);
  });
});
