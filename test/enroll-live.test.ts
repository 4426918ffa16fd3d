/**
 * Enrolment reads before it writes, on a real PowerDNS: each domain starts
 * at the stage its published record matches (never weaker), a `_dmarc`
 * owned by a hosted service is refused naming it, a record that sends no
 * report anywhere is refused unless the daemon's own address is added, and
 * no tick publishes a weaker policy than the one found unless a person chose
 * it with --start-at. Every record is read back over real DNS.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProvider, type DnsProvider } from '../providers/index.js';
import { queryTxt } from '../src/dns/index.js';
import { runTick } from '../src/engine/tick.js';
import { dnsVerifier } from '../src/engine/verify.js';
import { enrollDomains, type ProviderLookup } from '../src/fleet/index.js';
import { chooseStartStage } from '../src/fleet/start-stage.js';
import { loadPlan } from '../src/plans/index.js';
import { brokenRow, cleanRow } from './helpers/reports.js';
import { storeDialects } from './helpers/dialects.js';
import { createWorld } from './helpers/world.js';
import { getDomain } from '../src/store/domains.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { runMain, tempStore } from './helpers/cli.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';

const DAY_MS = 86_400_000;
const START = Date.parse('2026-04-06T09:00:00Z');
const plan = loadPlan('default');
const txt = (name: string, content: string) => ({ name: `${name}.`, type: 'TXT', ttl: 3600, records: [{ content: `"${content}"` }] });

describe('enrolment reads the live record first (real PowerDNS)', () => {
  let pdns: PdnsServer;
  let store: Store;
  let provider: DnsProvider;
  let providers: ProviderLookup;
  const onDns = async (domain: string) => (await queryTxt(`_dmarc.${domain}`, [pdns.dnsServer])).txt;
  const tick = (at: number) =>
    runTick({ store, now: new Date(at), providerFor: () => provider, verifierFor: () => dnsVerifier({ nameservers: [pdns.dnsServer], timeoutMs: 2000 }) });

  before(async () => {
    pdns = await startPdns();
    await pdns.createZone('reject.example', [txt('_dmarc.reject.example', 'v=DMARC1; p=reject; rua=mailto:d@reject.example; fo=1')]);
    await pdns.createZone('q25.example', [txt('_dmarc.q25.example', 'v=DMARC1; p=quarantine; pct=25; rua=mailto:d@q25.example')]);
    await pdns.createZone('hosted.example', [{ name: '_dmarc.hosted.example.', type: 'CNAME', ttl: 3600, records: [{ content: 'hosted.example._d.sdmarc.net.' }] }]);
    await pdns.createZone('delegated.example', [{ name: '_dmarc.delegated.example.', type: 'NS', ttl: 3600, records: [{ content: 'ns1.dmarcprotect.me.' }, { content: 'ns2.dmarcprotect.me.' }] }]);
    await pdns.createZone('empty.example');
    await pdns.createZone('norua.example', [txt('_dmarc.norua.example', 'v=DMARC1; p=none')]);
    await pdns.createZone('forced.example', [txt('_dmarc.forced.example', 'v=DMARC1; p=reject; rua=mailto:d@forced.example')]);
    await pdns.createZone('legacy.example', [txt('_dmarc.legacy.example', 'v=DMARC1; p=reject; rua=mailto:d@legacy.example')]);
    store = await openSqliteStore(tempStore().db);
    provider = createProvider({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'K' }, { env: { K: pdns.apiKey } });
    providers = { names: ['pdns'], get: () => provider };
  });

  after(async () => {
    await store?.close();
    await pdns?.stop();
  });

  it('starts each domain where its record stands, refuses hosted and report-less ones with the reason', async () => {
    const result = await enrollDomains(store, {
      inputs: ['reject.example', 'q25.example', 'hosted.example', 'delegated.example', 'empty.example', 'norua.example'].map((text) => ({ text, origin: 'test' })),
      plan,
      provider: 'pdns',
      providers,
      actor: 'test',
      now: new Date(START),
    });
    assert.deepEqual(
      result.started.map((s) => [s.domain, s.stage]),
      [
        ['reject.example', 'reject:100'],
        ['q25.example', 'quarantine:25'],
      ],
    );
    assert.match(result.started[0]!.why, /publishes p=reject; reject:100 is the first stage of plan default that is not weaker/);
    assert.match(result.started[1]!.why, /RFC 9989 receivers ignore pct/);
    const refused = Object.fromEntries(result.refused.map((r) => [r.input.text, r.reason]));
    assert.match(refused['hosted.example']!, /CNAME to hosted\.example\._d\.sdmarc\.net \(Sendmarc manages this record\)/);
    assert.match(refused['delegated.example']!, /delegated to ns1\.dmarcprotect\.me, ns2\.dmarcprotect\.me \(EasyDMARC manages this record\)/);
    assert.match(refused['empty.example']!, /no DMARC record at _dmarc\.empty\.example, so no aggregate report would come back.*report_addresses/);
    assert.match(refused['norua.example']!, /has no usable rua/);
    const audit = await store.db.selectFrom('audit_events').selectAll().where('action', '=', 'enroll').orderBy('id').execute();
    assert.deepEqual(audit.map((a) => a.domain), ['reject.example', 'q25.example']);
    assert.match(audit[0]!.reason, /at reject:100: .*publishes p=reject/);
    assert.equal(JSON.parse(audit[0]!.details!).found_record, 'v=DMARC1; p=reject; rua=mailto:d@reject.example; fo=1');
  });

  it('with the daemon’s own report address, a domain without a record starts at p=none and the address is in the record', async () => {
    const result = await enrollDomains(store, {
      inputs: [{ text: 'empty.example', origin: 'test' }, { text: 'norua.example', origin: 'test' }],
      plan,
      provider: 'pdns',
      providers,
      actor: 'test',
      now: new Date(START),
      reportAddress: 'dmarc@reports.example',
    });
    assert.deepEqual(result.refused, []);
    assert.deepEqual(result.started.map((s) => [s.domain, s.stage, s.found, s.record]), [
      ['empty.example', 'none:100', null, 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example'],
      ['norua.example', 'none:100', 'v=DMARC1; p=none', 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example'],
    ]);
  });

  it('a person may start lower only with --start-at and a reason, and that is audited', async () => {
    const noReason = await enrollDomains(store, {
      inputs: [{ text: 'forced.example', origin: 'test' }], plan, provider: 'pdns', providers, actor: 'test', now: new Date(START),
      startAt: { stage: 'quarantine:100', reason: ' ' },
    });
    assert.match(noReason.refused[0]!.reason, /--start-at needs a reason/);
    const chosen = await enrollDomains(store, {
      inputs: [{ text: 'forced.example', origin: 'test' }], plan, provider: 'pdns', providers, actor: 'cli:alice', now: new Date(START),
      startAt: { stage: 'quarantine:100', reason: 'a payroll sender is not signed yet' },
    });
    assert.deepEqual(chosen.started.map((s) => s.stage), ['quarantine:100']);
    assert.match(chosen.started[0]!.why, /quarantine:100 chosen by a person \(weaker than reject:100, where the live record stands\): a payroll sender is not signed yet/);
  });

  it('ticks publish nothing weaker than what was found, except where a person chose it', async () => {
    // A domain enrolled by an older version (no floor, at the first stage) over a live p=reject.
    await enrollDomains(store, {
      inputs: [{ text: 'legacy.example', origin: 'test' }], plan, provider: 'pdns', providers, actor: 'test', now: new Date(START),
    });
    await store.db.updateTable('domains').set({ stage_index: 0, floor_index: null }).where('domain', '=', 'legacy.example').execute();

    for (let d = 0; d < 20; d++) {
      for (const r of await tick(START + d * DAY_MS + 3600_000)) {
        if (r.domain === 'legacy.example' && d === 0) assert.equal(r.apply?.status, 'stopped', JSON.stringify(r));
      }
    }
    assert.deepEqual(await onDns('reject.example'), ['v=DMARC1; p=reject; rua=mailto:d@reject.example; fo=1']);
    assert.deepEqual(await onDns('q25.example'), ['v=DMARC1; p=quarantine; t=y; pct=25; rua=mailto:d@q25.example']);
    assert.deepEqual(await onDns('empty.example'), ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example']);
    assert.deepEqual(await onDns('forced.example'), ['v=DMARC1; p=quarantine; rua=mailto:d@forced.example'], 'the person’s choice is written');
    assert.deepEqual(await onDns('legacy.example'), ['v=DMARC1; p=reject; rua=mailto:d@legacy.example'], 'never weakened');
    const legacy = (await getDomain(store.db, 'legacy.example'))!;
    assert.equal(legacy.state, 'halted');
    assert.match(legacy.state_reason ?? '', /none:100 would be weaker than the live "v=DMARC1; p=reject; rua=mailto:d@legacy.example"/);
    const reject = (await getDomain(store.db, 'reject.example'))!;
    assert.deepEqual([reject.stage_index, reject.state, reject.last_record], [12, 'active', 'v=DMARC1; p=reject; rua=mailto:d@reject.example; fo=1']);
  });

  it('enroll on the command line prints the stage, why and the first record, and refuses what it cannot take', async () => {
    await pdns.createZone('cli.example', [txt('_dmarc.cli.example', 'v=DMARC1; p=reject; rua=mailto:d@cli.example')]);
    const { dir, db } = tempStore();
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `store: { sqlite: ${db} }\nreport_addresses: [dmarc@reports.example]\nproviders:\n  pdns: { type: powerdns, api_url: ${pdns.apiUrl}, api_key_env: PDNS_CLI_KEY }\n`,
    );
    const env = { PDNS_CLI_KEY: pdns.apiKey };
    const noProvider = await runMain(['enroll', 'cli.example', '--config', config], env);
    assert.equal(noProvider.code, 1);
    assert.match(noProvider.stderr, /needs the DNS provider that hosts its zone: give --provider <name> \(configured: pdns\)/);
    const unknown = await runMain(['enroll', 'cli.example', '--config', config, '--provider', 'route53'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no provider named "route53" \(configured: pdns\)/);
    const badPlan = await runMain(['enroll', 'cli.example', '--config', config, '--provider', 'pdns', '--plan', 'no-such-plan'], env);
    assert.equal(badPlan.code, 1);
    assert.match(badPlan.stderr, /plan no-such-plan cannot be used/);

    await pdns.createZone('fresh.example');
    const ok = await runMain(['enroll', 'cli.example', 'fresh.example', 'hosted.example', '--config', config, '--provider', 'pdns'], env);
    assert.equal(ok.code, 1, 'a refused line makes the exit code 1');
    assert.match(ok.stdout, /cli\.example: starts at reject:100: _dmarc\.cli\.example publishes p=reject/);
    assert.match(ok.stdout, /fresh\.example: starts at none:100: .*rua=mailto:dmarc@reports\.example is added/);
    assert.match(ok.stdout, /\+ v=DMARC1; p=none; rua=mailto:dmarc@reports\.example/);
    assert.match(ok.stderr, /refused "hosted\.example": .*Sendmarc manages this record/);

    const again = await runMain(['enroll', 'cli.example', '--config', config, '--provider', 'pdns', '--plan', join(dir, 'x', 'fast.yaml')], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /plan file .*fast\.yaml cannot be used/);
  });
});

describe('the starting stage, as a pure choice', () => {
  const view = (record: string | null) => ({ txt: record === null ? [] : [record], ttl: 300, cname: null, delegation: null });
  const start = (record: string | null) => {
    const c = chooseStartStage(plan, '_dmarc.x.example', view(record));
    return c.ok ? c.label : `refused: ${c.reason}`;
  };
  it('maps p, pct and t onto the plan, never weaker', () => {
    assert.equal(start(null), 'none:100');
    assert.equal(start('v=DMARC1; p=none; rua=mailto:a@x.example'), 'none:100');
    assert.equal(start('v=DMARC1; p=quarantine; pct=25; t=y'), 'quarantine:25');
    assert.equal(start('v=DMARC1; p=quarantine; pct=30'), 'quarantine:50', 'between stages: the next one up');
    assert.equal(start('v=DMARC1; p=quarantine; pct=0'), 'quarantine:1');
    assert.equal(start('v=DMARC1; p=quarantine; t=y'), 'quarantine:100', 't=y alone: what RFC 7489 receivers apply');
    assert.equal(start('v=DMARC1; p=reject; pct=10; t=y'), 'reject:10');
    assert.equal(start('v=DMARC1; p=Reject'), 'reject:100');
    assert.equal(start('v=DMARC1; p=bogus; rua=mailto:a@x.example'), 'none:100', 'an invalid p is read as none by receivers');
    assert.match(start('v=DMARC1; p=none; p=reject'), /^refused: the live record .* cannot be edited safely/);
  });
  it('holds subdomain policies the plan writes, and refuses a plan that cannot reach the record', () => {
    const managed = { ...plan, manage: { sp: true, np: false } };
    const c = chooseStartStage(managed, '_dmarc.x.example', view('v=DMARC1; p=none; sp=reject; rua=mailto:a@x.example'));
    assert.ok(c.ok && c.label === 'reject:1', JSON.stringify(c));
    const short = { ...plan, name: 'short', stages: plan.stages.slice(0, 7) };
    const r = chooseStartStage(short, '_dmarc.x.example', view('v=DMARC1; p=reject'));
    assert.ok(!r.ok && /stronger than the last stage of plan short \(quarantine:100\)/.test(r.reason), JSON.stringify(r));
  });
});

for (const dialect of storeDialects()) describe(`the floor: the engine never rolls a domain back below where enrolment found it, on ${dialect.name}`, () => {
  it('a rollback decided below the enrolment stage halts the domain for a person instead of weakening the record', async () => {
    const w = await createWorld({ dialect, start: new Date(START), plan });
    try {
      const found = 'v=DMARC1; p=quarantine; pct=25; t=y; rua=mailto:d@floor.example';
      w.dns.set('_dmarc.floor.example', { txt: [found], ttl: 300 });
      const enrolled = await w.enrol(['floor.example']);
      assert.deepEqual(enrolled.started.map((s) => s.stage), ['quarantine:25']);
      const [first] = await w.tick(new Date(START + 3600_000));
      assert.equal(first!.apply?.status, 'verified', 'the live record already is quarantine:25: verified without a write');
      // The authorised server's DKIM breaks for 30 of 100 messages: the plan says roll back to quarantine:10.
      await w.sendReports(['2026-04-07', '2026-04-08'].map((day) => ({ reporter: 'isp.example', domain: 'floor.example', day, rows: [cleanRow('floor.example', '192.0.2.10', 70), brokenRow('floor.example', '192.0.2.10', 30)] })));
      const [decided] = await w.tick(new Date('2026-04-09T10:00:00Z'));
      assert.equal(decided!.decision?.action, 'rollback', JSON.stringify(decided!.decision));
      assert.equal(decided!.apply?.status, 'stopped');
      assert.deepEqual(await w.dns.readTxt('_dmarc.floor.example'), [found], 'nothing weaker was written');
      assert.deepEqual(w.dns.writes, []);
      const row = await w.row('floor.example');
      assert.equal(row.state, 'halted');
      assert.match(row.state_reason ?? '', /quarantine:10 is below quarantine:25, where _dmarc\.floor\.example stood when it was enrolled; .*dmarc-rollout force floor\.example --to quarantine:10/);
    } finally {
      await w.close();
    }
  });
});
