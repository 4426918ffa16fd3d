/**
 * End to end on a real PowerDNS: domains enrolled, reports generated and
 * ingested day by day, ticks through simulated months, every change written
 * through the PowerDNS API and verified over real DNS queries to the server.
 * Mid-way a record is changed by hand (drift): that domain stops with the
 * reason while the others go on to p=reject.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProvider } from '../providers/index.js';
import { queryTxt } from '../src/dns/index.js';
import { runTick } from '../src/engine/tick.js';
import { dnsVerifier } from '../src/engine/verify.js';
import { approve } from '../src/fleet/actions.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { aggregateReportXml, cleanRow, spoofRow } from './helpers/reports.js';

const DAY_MS = 86_400_000;
const START = Date.parse('2026-02-02T00:00:00Z');
const DRIFT_DAY = 30;
const DOMAINS = ['alpha.example', 'beta.example', 'drift.example'];
const OWNER_RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc-reports@alpha.example; fo=1; adkim=r';

describe('a fleet on real PowerDNS, from p=none to p=reject', () => {
  let pdns: PdnsServer;
  let store: Store;
  const dmarcOnDns = async (domain: string) => (await queryTxt(`_dmarc.${domain}`, [pdns.dnsServer])).txt;
  const outcomes: Record<string, string[]> = {};
  let driftState: { state: string; state_reason: string | null } | undefined;
  let stageAtDrift = -1;

  before(async () => {
    pdns = await startPdns();
    for (const domain of DOMAINS) {
      const rrsets = domain === 'alpha.example' ? [{ name: `_dmarc.${domain}.`, type: 'TXT', ttl: 3600, records: [{ content: `"${OWNER_RECORD}"` }] }] : [];
      await pdns.createZone(domain, rrsets);
    }
    const { dir, db } = tempStore();
    store = await openSqliteStore(db);
    const plan = loadPlan('default');
    const provider = createProvider({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'PDNS_TEST_KEY' }, { env: { PDNS_TEST_KEY: pdns.apiKey } });
    const verify = dnsVerifier({ nameservers: [pdns.dnsServer], timeoutMs: 2000 });
    await enrollDomains(store, { inputs: DOMAINS.map((text) => ({ text, origin: 'test' })), plan, provider: 'pdns', providers: { names: ['pdns'], get: () => provider }, reportAddress: 'dmarc@reports.example', actor: 'test', now: new Date(START) });

    for (let d = 0; d < 125; d++) {
      const now = new Date(START + d * DAY_MS + 12 * 3600_000);
      if (d > 0) {
        const day = new Date(START + (d - 1) * DAY_MS).toISOString().slice(0, 10);
        for (const domain of DOMAINS) {
          const xml = aggregateReportXml({ reporter: 'google.com', domain, day, rows: [cleanRow(domain, '192.0.2.25', 450), spoofRow(domain, '203.0.113.5', 40)] });
          const stored = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `gen:${domain}:${day}`, { rejectedDir: join(dir, 'rejected') });
          assert.equal(stored.status, 'stored');
        }
      }
      if (d === DRIFT_DAY) {
        stageAtDrift = (await store.db.selectFrom('domains').select('stage_index').where('domain', '=', 'drift.example').executeTakeFirstOrThrow()).stage_index;
        // Someone edits the record by hand in the zone, behind the program's back.
        await pdns.patchZone('drift.example', [
          { name: '_dmarc.drift.example.', type: 'TXT', ttl: 300, changetype: 'REPLACE', records: [{ content: '"v=DMARC1; p=reject; rua=mailto:someone-else@drift.example"' }] },
        ]);
      }
      for (const result of await runTick({ store, now, providerFor: () => provider, verifierFor: () => verify })) {
        if (result.error) {
          assert.equal(result.domain, 'drift.example', `${result.domain} day ${d}: ${result.error}`);
          assert.match(result.error, /^drift: /);
          assert.equal(d, DRIFT_DAY, 'the drift is caught on the tick right after the hand edit');
        }
        if (result.apply) (outcomes[result.domain] ??= []).push(`${d}:${result.apply.status}`);
        if (result.decision?.action === 'await-approval') await approve(store, result.domain, () => plan, { actor: 'test:operator', now });
      }
    }
    driftState = await store.db.selectFrom('domains').select(['state', 'state_reason']).where('domain', '=', 'drift.example').executeTakeFirst();
  });

  after(async () => {
    await store?.close();
    await pdns?.stop();
  });

  it('reaches p=reject on the domains left alone, read back over real DNS, keeping the owner’s tags in order', async () => {
    assert.deepEqual(await dmarcOnDns('alpha.example'), ['v=DMARC1; p=reject; rua=mailto:dmarc-reports@alpha.example; fo=1; adkim=r']);
    assert.deepEqual(await dmarcOnDns('beta.example'), ['v=DMARC1; p=reject; rua=mailto:dmarc@reports.example']);
    const rows = await store.db.selectFrom('domains').select(['domain', 'stage_index', 'last_record']).where('domain', 'in', ['alpha.example', 'beta.example']).execute();
    for (const row of rows) assert.equal(row.stage_index, 12, `${row.domain} is at stage ${row.stage_index + 1}`);
    // Every change was verified once: 13 writes each (the first stage, then 12 steps).
    for (const domain of ['alpha.example', 'beta.example']) {
      assert.equal(outcomes[domain]!.filter((o) => o.endsWith(':verified')).length, 13, outcomes[domain]!.join(' '));
    }
  });

  it('stops the domain whose record was changed by hand, names the drift, and does not overwrite it', async () => {
    assert.equal(driftState?.state, 'halted');
    assert.match(driftState?.state_reason ?? '', /^drift: _dmarc\.drift\.example is "v=DMARC1; p=reject; rua=mailto:someone-else@drift\.example", not what this program last wrote/);
    assert.deepEqual(await dmarcOnDns('drift.example'), ['v=DMARC1; p=reject; rua=mailto:someone-else@drift.example']);
    const stage = await store.db.selectFrom('domains').select('stage_index').where('domain', '=', 'drift.example').executeTakeFirstOrThrow();
    assert.equal(stage.stage_index, stageAtDrift, 'the stage moved after the drift');
    assert.ok(stageAtDrift >= 1, 'drift.example should have advanced before the drift');
  });
});

describe('plan and tick through the CLI against real PowerDNS', () => {
  it('plan shows the record diff and changes nothing; tick writes it and verifies over DNS', async () => {
    const pdns = await startPdns();
    try {
      await pdns.createZone('gamma.example', [
        { name: '_dmarc.gamma.example.', type: 'TXT', ttl: 3600, records: [{ content: '"v=DMARC1; p=quarantine; rua=mailto:d@gamma.example"' }] },
      ]);
      await pdns.createZone('delta.example');
      const { dir, db } = tempStore();
      const providersFile = join(dir, 'providers.yaml');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(
        providersFile,
        `pdns:\n  type: powerdns\n  api_url: ${pdns.apiUrl}\n  api_key_env: PDNS_CLI_KEY\n  verify:\n    nameservers: ["${pdns.dnsServer}"]\n`,
      );
      const env = { DMARC_ROLLOUT_DB: db, DMARC_ROLLOUT_PROVIDERS: providersFile, PDNS_CLI_KEY: pdns.apiKey };
      const { runMain } = await import('./helpers/cli.js');
      assert.equal((await runMain(['enroll', 'gamma.example', 'delta.example', '--provider', 'pdns', '--report-address', 'dmarc@reports.example'], env)).code, 0);

      const plan = await runMain(['plan'], env);
      assert.equal(plan.code, 0, plan.stderr + plan.stdout);
      assert.equal(
        plan.stdout,
        [
          'delta.example: establish -> none:100',
          '  - (no record)',
          '  + v=DMARC1; p=none; rua=mailto:dmarc@reports.example',
          'gamma.example: establish -> quarantine:100: no change to write (the zone already shows it; the tick verifies it)',
          '2 domain(s): 1 to write, 1 to verify without a write',
          '',
        ].join('\n'),
      );
      const dry = await runMain(['tick', '--dry-run'], env);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual((await queryTxt('_dmarc.gamma.example', [pdns.dnsServer])).txt, ['v=DMARC1; p=quarantine; rua=mailto:d@gamma.example']);
      assert.deepEqual((await queryTxt('_dmarc.delta.example', [pdns.dnsServer])).txt, []);

      const tick = await runMain(['tick', '--json'], env);
      assert.equal(tick.code, 0, tick.stderr + tick.stdout);
      const applied = tick.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(applied.map((r: { domain: string; apply: { status: string } }) => [r.domain, r.apply.status]), [
        ['delta.example', 'verified'],
        ['gamma.example', 'verified'],
      ]);
      // gamma published p=quarantine: it starts there, and nothing weaker is ever written.
      assert.deepEqual((await queryTxt('_dmarc.gamma.example', [pdns.dnsServer])).txt, ['v=DMARC1; p=quarantine; rua=mailto:d@gamma.example']);

      const broken = await runMain(['plan'], { ...env, PDNS_CLI_KEY: '' });
      assert.equal(broken.code, 0, 'nothing to write, so no provider is needed');
      assert.match(broken.stdout, /gamma\.example: hold/);
    } finally {
      await pdns.stop();
    }
  });
});

describe('the manual provider in a tick', () => {
  it('prints the change once and returns; a later tick verifies it when a person has published it', async () => {
    const pdns = await startPdns();
    const { db } = tempStore();
    const store = await openSqliteStore(db);
    try {
      await pdns.createZone('manual.example');
      const printed: string[] = [];
      const provider = createProvider(
        { type: 'manual', nameservers: [pdns.dnsServer], timeout_seconds: 0 },
        { output: { write: (text: string) => printed.push(text) } as never },
      );
      const verify = dnsVerifier({ nameservers: [pdns.dnsServer], timeoutMs: 2000 });
      const plan = loadPlan('default');
      await enrollDomains(store, { inputs: [{ text: 'manual.example', origin: 'test' }], plan, provider: 'manual', providers: { names: ['manual'], get: () => provider }, reportAddress: 'dmarc@reports.example', actor: 'test', now: new Date(START) });
      const tick = (at: number) => runTick({ store, now: new Date(at), providerFor: () => provider, verifierFor: () => verify });

      const [first] = await tick(START);
      assert.equal(first!.apply?.status, 'retrying', JSON.stringify(first));
      assert.match(printed.join(''), /_dmarc\.manual\.example\. 300 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@reports\.example"/);
      const intent = await store.db.selectFrom('intents').selectAll().executeTakeFirstOrThrow();
      assert.equal(intent.status, 'written', 'printing the instructions counts as the write: it is not repeated');

      // The person publishes it.
      await pdns.patchZone('manual.example', [
        { name: '_dmarc.manual.example.', type: 'TXT', ttl: 300, changetype: 'REPLACE', records: [{ content: '"v=DMARC1; p=none; rua=mailto:dmarc@reports.example"' }] },
      ]);
      const [second] = await tick(START + 3 * 3600_000);
      assert.equal(second!.apply?.status, 'verified', JSON.stringify(second));
      assert.equal(printed.filter((t) => t.includes('IN TXT')).length, 1, 'the instructions were printed once');
    } finally {
      await store.close();
      await pdns.stop();
    }
  });
});
