/**
 * A domain's lifecycle after enrolment, through the command line on a real
 * PowerDNS and through the HTTP API: set-plan keeps the stage by label or is
 * refused, set-provider reads the record at the new provider first, unenroll
 * keeps the history and leaves or restores the record; approve works only for
 * a gated next stage of an active domain; a permanent provider error stops
 * the domain instead of retrying for ever. On SQLite and on Postgres: each
 * suite is looped over the dialects, on a fresh store (and for the command
 * line a fresh PowerDNS) per run; the config's `store:` names the run's
 * store, so `tick --config` opens the store the daemon would.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ProviderError } from '../providers/index.js';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { approve, ActionError } from '../src/fleet/actions.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { getDomain } from '../src/store/domains.js';
import type { Store } from '../src/store/open.js';
import { queryTxt } from '../src/dns/index.js';
import { runMain } from './helpers/cli.js';
import { storeConfig, storeDialects } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { csrfOf, formSignIn, postForm } from './helpers/web.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';

const plan = loadPlan('default');
const NOW = new Date('2026-06-15T12:00:00Z');
const FOUND = 'v=DMARC1; p=quarantine; rua=mailto:d@life.example';

const dialects = storeDialects();

for (const dialect of dialects) describe(`lifecycle on the command line (real PowerDNS), on ${dialect.name}`, () => {
  let pdns: PdnsServer;
  let env: Record<string, string>;
  let dir: string;
  before(async () => {
    pdns = await startPdns();
    await pdns.createZone('life.example', [{ name: '_dmarc.life.example.', type: 'TXT', ttl: 3600, records: [{ content: `"${FOUND}"` }] }]);
    dir = tempDir('dmarc-rollout-lifecycle-');
    const store = await dialect.open();
    const { line: storeLine, env: storeEnv } = storeConfig(dialect, store, dir);
    // The commands open the store themselves: the test holds no connection to it.
    await store.close();
    const config = join(dir, 'config.yaml');
    const block = (key: string) => `{ type: powerdns, api_url: ${pdns.apiUrl}, api_key_env: ${key}, verify: { nameservers: ['${pdns.dnsServer}'] } }`;
    writeFileSync(config, `${storeLine}\nreport_addresses: [dmarc@reports.example]\nproviders:\n  pdns: ${block('K1')}\n  pdns-b: ${block('K2')}\n`);
    writeFileSync(join(dir, 'short.yaml'), 'stages:\n  - { policy: none, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.02 }\n  - { policy: reject, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.01 }\n');
    writeFileSync(join(dir, 'fast.yaml'), 'stages:\n  - { policy: none, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.02 }\n  - { policy: quarantine, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.02 }\n  - { policy: reject, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.01, requires_approval: true }\n');
    env = { ...storeEnv, DMARC_ROLLOUT_CONFIG: config, K1: pdns.apiKey, K2: pdns.apiKey, DMARC_ROLLOUT_PLANS: join(dir, 'plans') };
    const enrolled = await runMain(['enroll', 'life.example', '--provider', 'pdns'], env);
    assert.equal(enrolled.code, 0, enrolled.stderr + enrolled.stdout);
  });
  after(async () => {
    await pdns?.stop();
  });

  it('set-plan keeps the stage by its label, and refuses a plan without it', async () => {
    const refused = await runMain(['set-plan', 'life.example', join(dir, 'short.yaml'), '--reason', 'try'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /plan short has no stage quarantine:100 \(none:100, reject:100\)/);
    const moved = await runMain(['set-plan', 'life.example', join(dir, 'fast.yaml'), '--reason', 'the team wants it faster'], env);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /life\.example now follows plan fast, still at quarantine:100/);
    const status = JSON.parse((await runMain(['status', 'life.example', '--json'], env)).stdout);
    assert.deepEqual([status.plan, status.stage], ['fast', 'quarantine:100']);
  });

  it('set-provider reads the record at the new provider first; an unknown one is refused', async () => {
    const unknown = await runMain(['set-provider', 'life.example', 'route53', '--reason', 'move'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no provider named "route53" \(configured: pdns, pdns-b\)/);
    const moved = await runMain(['set-provider', 'life.example', 'pdns-b', '--reason', 'new API key'], env);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /now uses provider pdns-b \(was pdns\)/);
  });

  it('approve opens the gate the new plan sets', async () => {
    const res = await runMain(['approve', 'life.example', '--reason', 'change board said yes'], env);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /reject:100 approved/);
  });

  it('unenroll keeps the audit log and restores the record found at enrolment when asked', async () => {
    const tick = await runMain(['tick', '--config', env.DMARC_ROLLOUT_CONFIG!], env);
    assert.equal(tick.code, 0, tick.stderr + tick.stdout);
    const noReason = await runMain(['unenroll', 'life.example'], env);
    assert.notEqual(noReason.code, 0);
    const gone = await runMain(['unenroll', 'life.example', '--restore', '--reason', 'handed to another team'], env);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /life\.example unenrolled; the record found at enrolment is back/);
    assert.deepEqual((await queryTxt('_dmarc.life.example', [pdns.dnsServer])).txt, [FOUND]);
    const status = await runMain(['status', 'life.example'], env);
    assert.equal(status.code, 1);
    const history = await runMain(['history', 'life.example', '--json'], env);
    assert.equal(history.code, 0, history.stderr);
    const kept = JSON.parse(history.stdout) as { enrolled: boolean; stages: { action: string; to_stage: string }[]; events: { action: string }[] };
    assert.equal(kept.enrolled, false);
    assert.ok(kept.stages.length > 0, 'the stage changes this program made stay readable after unenroll');
    assert.equal(kept.events.at(-1)!.action, 'unenroll');
    const never = await runMain(['history', 'never-enrolled.example'], env);
    assert.equal(never.code, 1, 'a domain with no history at all is not found');
  });
});

for (const dialect of dialects) describe(`lifecycle over the API, approvals and permanent provider errors, on ${dialect.name}`, () => {
  let store: Store;
  let server: RunningApiServer;
  const operator = generateToken();
  const dns = new MemoryDns();
  const other = new MemoryDns();
  const providers = { names: ['memory', 'other'], get: (name: string) => (name === 'other' ? other : dns) };
  const call = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as any };
  };

  before(async () => {
    store = await dialect.open();
    for (const d of ['api.example', 'gate.example']) dns.set(`_dmarc.${d}`, { txt: [`v=DMARC1; p=none; rua=mailto:r@${d}`], ttl: 300 });
    dns.set('_dmarc.broken.example', { txt: ['v=DMARC1; p=none; pct=100; rua=mailto:r@broken.example'], ttl: 300 });
    other.set('_dmarc.api.example', { txt: ['v=DMARC1; p=none; rua=mailto:r@api.example'], ttl: 300 });
    const res = await enrollDomains(store, { inputs: ['api.example', 'gate.example', 'broken.example'].map((text) => ({ text, origin: 'test' })), plan, provider: 'memory', providers, actor: 'test', now: NOW });
    assert.deepEqual(res.refused, []);
    server = await startApiServer({
      config: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 65536, trust_proxy: false },
      tokens: new TokenSet([{ name: 'otto', role: 'operator', sha256: operator.sha256 }]),
      logger: pino({ level: 'silent' }),
      context: { store, now: () => NOW, loadPlan, sourceRules: [], providers, ingest: () => Promise.reject(new Error('no uploads')) },
    });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });

  it('set-provider, set-plan and unenroll answer with the result, refusals with 400 naming the field', async () => {
    const moved = await call('/api/v1/domains/api.example/set-provider', { provider: 'other', reason: 'zone moved' });
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
    assert.equal(moved.json.status.provider, 'other');
    const unknown = await call('/api/v1/domains/api.example/set-provider', { provider: 'nope', reason: 'x' });
    assert.equal(unknown.status, 400);
    assert.match(JSON.stringify(unknown.json.error), /provider/);
    const samePlan = await call('/api/v1/domains/api.example/set-plan', { plan: 'default', reason: 'x' });
    assert.equal(samePlan.status, 200);
    const noPlan = await call('/api/v1/domains/api.example/set-plan', { plan: 'no-such-plan', reason: 'x' });
    assert.equal(noPlan.status, 400);
    const gone = await call('/api/v1/domains/api.example/unenroll', { reason: 'sold the domain' });
    assert.equal(gone.status, 200, JSON.stringify(gone.json));
    assert.match(gone.json.message, /unenrolled; its live record is left as it is/);
    assert.equal(await getDomain(store.db, 'api.example'), undefined);
    const audit = await store.db.selectFrom('audit_events').selectAll().where('domain', '=', 'api.example').orderBy('id').execute();
    assert.deepEqual(audit.map((a) => a.action).filter((a) => a !== 'establish'), ['enroll', 'set-provider', 'unenroll']);
    assert.ok(audit.some((a) => a.action === 'enroll') && audit.at(-1)!.action === 'unenroll', 'the history is kept');
    assert.equal((await call('/api/v1/domains/api.example/unenroll', { reason: 'again' })).status, 404);
  });

  it('approve is refused on a stage the plan does not gate and on a halted domain', async () => {
    await assert.rejects(approve(store, 'gate.example', loadPlan, { actor: 'test', now: NOW }), (e: unknown) => e instanceof ActionError && /not gated in plan default/.test(e.message));
    await store.db.updateTable('domains').set({ stage_index: 6 }).where('domain', '=', 'gate.example').execute();
    const ok = await call('/api/v1/domains/gate.example/approve', { reason: 'ready' });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    await store.db.updateTable('domains').set({ state: 'halted', state_reason: 'test', approved_stage_index: null }).where('domain', '=', 'gate.example').execute();
    const halted = await call('/api/v1/domains/gate.example/approve', { reason: 'ready' });
    assert.equal(halted.status, 409);
    assert.match(halted.json.error.message, /halted .*resume it before approving/);
  });

  it('the page offers the lifecycle forms, and approve only for a gated next stage of an active domain', async () => {
    dns.set('_dmarc.page.example', { txt: ['v=DMARC1; p=none; rua=mailto:r@page.example'], ttl: 300 });
    await enrollDomains(store, { inputs: [{ text: 'page.example', origin: 'test' }], plan, provider: 'memory', providers, actor: 'test', now: NOW });
    const { session } = await formSignIn(server.url, operator.token);
    const page = async (d: string) => (await fetch(`${server.url}/domains/${d}`, { headers: { cookie: session! } })).text();
    const post = async (d: string, action: string, fields: Record<string, string>) => {
      const res = await postForm(server.url, `/ui/domains/${d}/${action}`, session!, { _csrf: csrfOf(await page(d)), ...fields });
      return { status: res.status, location: res.headers.get('location') };
    };
    const html = await page('page.example');
    for (const action of ['set-provider', 'set-plan', 'unenroll']) assert.match(html, new RegExp(`action="/ui/domains/page\\.example/${action}"`));
    assert.doesNotMatch(html, /Approve /, 'none:100 -> quarantine:1 is not gated');
    // gate.example is at quarantine:100, halted: its gated next stage (reject:1) is not offered either.
    assert.doesNotMatch(await page('gate.example'), /<button[^>]*>Approve /);

    assert.deepEqual(await post('page.example', 'set-provider', { to: 'other', reason: 'moved' }), { status: 303, location: '/domains/page.example' });
    assert.match(await page('page.example'), /flash-error[^]*page\.example at provider other holds no DMARC record/);
    assert.deepEqual(await post('page.example', 'set-plan', { to: 'default', reason: 'same' }), { status: 303, location: '/domains/page.example' });
    assert.deepEqual(await post('page.example', 'unenroll', { to: 'keep', reason: 'handed over' }), { status: 303, location: '/' });
    assert.equal(await getDomain(store.db, 'page.example'), undefined);
    assert.deepEqual(await dns.readTxt('_dmarc.page.example'), ['v=DMARC1; p=none; rua=mailto:r@page.example'], 'the record is left as it is');
  });

  it('a provider error no retry can heal stops the domain with the provider’s reason', async () => {
    const failing = {
      name: 'memory',
      inspect: (fqdn: string) => dns.inspect(fqdn),
      readTxt: (fqdn: string) => dns.readTxt(fqdn),
      writeTxt: async () => {
        throw new ProviderError('powerdns', 'secret', 'replace TXT: the server rejected the API key from environment variable PDNS_API_KEY (HTTP 401)', 401);
      },
    };
    const [r] = await runTick({ store, now: NOW, providerFor: () => failing, domains: ['broken.example'] });
    assert.equal(r!.apply?.status, 'stopped', JSON.stringify(r));
    const row = (await getDomain(store.db, 'broken.example'))!;
    assert.equal(row.state, 'halted');
    assert.match(row.state_reason ?? '', /rejected the API key .*\(secret: no retry can fix this\)/);
    const transient = { ...failing, writeTxt: async () => { throw new ProviderError('powerdns', 'throttled', 'gave up after 5 attempts (HTTP 503)'); } };
    await store.db.updateTable('domains').set({ state: 'active', state_reason: null }).where('domain', '=', 'broken.example').execute();
    const [again] = await runTick({ store, now: NOW, providerFor: () => transient, domains: ['broken.example'] });
    assert.equal(again!.apply?.status, 'retrying', JSON.stringify(again));
  });
});
