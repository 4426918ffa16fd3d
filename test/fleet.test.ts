/**
 * Enrolment: domain names as an operator types them (pure, run once), and
 * enrolling through the command line against a real PowerDNS, on SQLite and
 * on Postgres (one suite looped over the dialects, a fresh store per test:
 * the CLI is given the store the way a user gives it, DMARC_ROLLOUT_DB or
 * DMARC_ROLLOUT_DATABASE_URL).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { enrollDomains, enrollInputsFromText, fleetStatus, normalizeDomainName } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { runMain } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { tempDir } from './helpers/temp-dirs.js';

describe('domain names as an operator types them', () => {
  const accepted: Array<[string, string]> = [
    ['example.com', 'example.com'],
    ['Example.COM.', 'example.com'],
    ['  mail.example.co.uk ', 'mail.example.co.uk'],
    ['bücher.de', 'xn--bcher-kva.de'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
    ['münchen.中国', 'xn--mnchen-3ya.xn--fiqs8s'],
  ];
  for (const [input, domain] of accepted) {
    it(`accepts ${JSON.stringify(input)} as ${domain}`, () => {
      assert.deepEqual(normalizeDomainName(input), { ok: true, domain });
    });
  }

  const refused: Array<[string, RegExp]> = [
    ['*.example.com', /wildcard/],
    ['example.com,', /characters other than/],
    ['example.com extra', /whitespace/],
    ['https://example.com/', /URL/],
    ['postmaster@example.com', /email address/],
    ['_dmarc.example.com', /_dmarc name/],
    ['192.0.2.1', /IP address/],
    ['com', /two labels/],
    ['a..example.com', /empty label/],
    ['example.com..', /empty label/],
    ['-bad.example.com', /characters other than/],
    [`${'a'.repeat(64)}.com`, /longer than 63/],
    [`${'abcdefghi.'.repeat(25)}com`, /_dmarc\.<domain> would exceed/],
    ['example.123', /all digits/],
    ['', /empty/],
  ];
  for (const [input, reason] of refused) {
    it(`refuses ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}…` : input)}`, () => {
      const result = normalizeDomainName(input);
      assert.equal(result.ok, false);
      assert.match((result as { reason: string }).reason, reason);
    });
  }
});

for (const dialect of storeDialects()) describe(`enrolment on a real store, on ${dialect.name}`, () => {
  // Enrolment reads each domain's live record through its provider: a real PowerDNS holds the zones.
  let pdns: PdnsServer;
  let settings: Record<string, string>;
  before(async () => {
    pdns = await startPdns();
    for (const zone of ['example.com', 'example.org', 'example.net', 'xn--bcher-kva.de']) await pdns.createZone(zone);
    const providers = join(tempDir('dmarc-rollout-fleet-'), 'providers.yaml');
    writeFileSync(providers, `powerdns:\n  type: powerdns\n  api_url: ${pdns.apiUrl}\n  api_key_env: PDNS_FLEET_KEY\n`);
    settings = { DMARC_ROLLOUT_PROVIDERS: providers, PDNS_FLEET_KEY: pdns.apiKey };
  });
  after(async () => {
    await pdns?.stop();
  });

  it('enrolls a thousand domains from a file in one go and names every refused line', async () => {
    const store = await dialect.open();
    const storeEnv = dialect.cliEnv(store);
    const dir = tempDir('dmarc-rollout-fleet-');
    const lines = ['# fleet export', ''];
    for (let i = 0; i < 1000; i++) lines.push(`shop-${i}.example.com`);
    lines.splice(500, 0, 'bad domain.com', '*.wild.example.com  # a wildcard', 'shop-7.example.com');
    const file = join(dir, 'fleet.txt');
    writeFileSync(file, lines.join('\n'));

    const res = await runMain(['enroll', '--file', file, '--provider', 'powerdns', '--report-address', 'dmarc@reports.example', '--json'], { ...storeEnv, ...settings });
    assert.equal(res.code, 1, 'refused lines make the run fail so scripts notice');
    const out = JSON.parse(res.stdout);
    assert.equal(out.enrolled.length, 1000);
    assert.deepEqual(
      out.refused.map((r: { line: number; input: string }) => [r.line, r.input]),
      [
        [501, 'bad domain.com'],
        [502, '*.wild.example.com'],
        [503, 'shop-7.example.com'],
      ],
    );
    assert.match(out.refused[2].reason, /listed twice \(first at .*fleet\.txt:10\)/);

    const { rows: counts } = await sql`select (select count(*) from domains) d, (select count(*) from stage_history) h, (select count(*) from audit_events where action = 'enroll') a`.execute(store.db);
    const { rows: states } = await sql`select distinct state, stage_index, plan, provider from domains`.execute(store.db);
    assert.deepEqual(counts, [{ d: 1000, h: 1000, a: 1000 }]);
    assert.deepEqual(states, [{ state: 'active', stage_index: 0, plan: 'default', provider: 'powerdns' }]);

    const again = await runMain(['enroll', 'shop-1.example.com', 'new.example.org', '--provider', 'powerdns', '--report-address', 'dmarc@reports.example'], { ...storeEnv, ...settings });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /enrolled 1 domain/);
    assert.match(again.stdout, /already enrolled: shop-1\.example\.com \(plan default\)/);
    const otherProvider = await runMain(['enroll', 'shop-2.example.com', '--provider', 'powerdns', '--plan', 'default', '--report-address', 'dmarc@reports.example'], { ...storeEnv, ...settings });
    assert.equal(otherProvider.code, 0, 'the same plan and provider again: nothing to change');
  });

  it('status shows each domain at its first stage, and one domain with its history', async () => {
    const storeEnv = dialect.cliEnv(await dialect.open());
    const enrolled = await runMain(['enroll', 'bücher.de', 'example.net', '--provider', 'powerdns', '--report-address', 'dmarc@reports.example'], { ...storeEnv, ...settings });
    assert.equal(enrolled.code, 0, enrolled.stderr);

    const all = await runMain(['status', '--json'], storeEnv);
    const fleet = JSON.parse(all.stdout).domains;
    assert.deepEqual(
      fleet.map((d: { domain: string; stage: string; state: string; stage_count: number }) => [d.domain, d.stage, d.state, d.stage_count]),
      [
        ['example.net', 'none:100', 'active', 13],
        ['xn--bcher-kva.de', 'none:100', 'active', 13],
      ],
    );

    const one = await runMain(['status', 'BÜCHER.de'], storeEnv);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /xn--bcher-kva\.de\s+default\s+none:100 \(1\/13\)\s+active\s+not yet in effect/);
    assert.match(one.stdout, /enroll\s+- -> none:100 {2}by cli:/);

    const missing = await runMain(['status', 'nowhere.example'], storeEnv);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nowhere\.example is not enrolled/);
  });

  it('refuses an unknown plan before touching the store', async () => {
    const storeEnv = dialect.cliEnv(await dialect.open());
    const res = await runMain(['enroll', 'example.com', '--plan', 'no-such-plan', '--provider', 'powerdns'], { ...storeEnv, ...settings });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /plan no-such-plan cannot be used:\n.*no plan of that name/);
    const status = await runMain(['status', '--json'], storeEnv);
    assert.deepEqual(JSON.parse(status.stdout).domains, []);
  });

  it('writes nothing when the batch cannot be committed whole', async () => {
    const store = await dialect.open();
    try {
      // A trigger that fails the 3rd insert stands in for a disk or constraint
      // error mid-batch: the first two must not be left behind.
      if (dialect.name === 'sqlite') {
        await sql`create trigger fail_third before insert on domains when (select count(*) from domains) >= 2
                  begin select raise(abort, 'disk full'); end`.execute(store.db);
      } else {
        await sql`create function fail_third() returns trigger language plpgsql as $$
                  begin if (select count(*) from domains) >= 2 then raise exception 'disk full'; end if; return new; end $$`.execute(store.db);
        await sql`create trigger fail_third before insert on domains for each row execute function fail_third()`.execute(store.db);
      }
      const inputs = enrollInputsFromText('a.example\nb.example\nc.example\n', 'batch.txt');
      await assert.rejects(
        enrollDomains(store, {
          inputs,
          plan: loadPlan('default'),
          provider: 'memory',
          providers: { names: ['memory'], get: () => new MemoryDns() },
          reportAddress: 'dmarc@reports.example',
          actor: 'test',
          now: new Date('2026-01-01T00:00:00Z'),
        }),
        /disk full/,
      );
      assert.deepEqual(await fleetStatus(store, new Date()), []);
    } finally {
      await store.close();
    }
  });
});
