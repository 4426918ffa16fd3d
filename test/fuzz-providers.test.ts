/**
 * The apply protocol against a failing provider: a real PowerDNS behind a
 * fault proxy that, on a seeded schedule, answers 5xx, hangs past the
 * adapter's timeout, throttles in storms (429 with Retry-After), cuts a page
 * short, or lets a write land and loses its answer. Whatever the faults, the
 * store never claims what the zone does not show; once they stop, the queued
 * move lands exactly once. Bounded and seeded; the faults are counted.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, it } from 'node:test';
import { createProvider } from '../providers/index.js';
import { queryTxt } from '../src/dns/index.js';
import { dnsVerifier } from '../src/engine/verify.js';
import { force } from '../src/fleet/actions.js';
import { loadPlan } from '../src/plans/index.js';
import { stageLabel } from '../src/record/index.js';
import { getDomain, stageHistory } from '../src/store/domains.js';
import { getIntent } from '../src/store/intents.js';
import { fakeClock } from './helpers/fake-clock.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { createWorld } from './helpers/world.js';

const SEED = 424242;
const DOMAINS = ['f1.example', 'f2.example', 'f3.example'];
const plan = loadPlan('default');
const labels = plan.stages.map(stageLabel);
type Fault = 'none' | '5xx' | 'hang' | 'throttle' | 'partial' | 'lost-answer';

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

class FaultProxy {
  #server: Server | null = null;
  url = '';
  faulty = true;
  readonly counts: Record<Fault, number> = { none: 0, '5xx': 0, hang: 0, throttle: 0, partial: 0, 'lost-answer': 0 };
  #storm = 0;
  constructor(
    private readonly target: string,
    private readonly rnd: () => number,
  ) {}
  async start() {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }
  #pick(req: IncomingMessage): Fault {
    if (!this.faulty) return 'none';
    if (this.#storm > 0) {
      this.#storm--;
      return 'throttle';
    }
    // Writes are few: half of them land and lose their answer.
    if (req.method === 'PATCH' && this.rnd() < 0.5) return 'lost-answer';
    const r = this.rnd();
    if (r < 0.45) return 'none';
    if (r < 0.57) return '5xx';
    if (r < 0.64) return 'hang';
    if (r < 0.74) {
      this.#storm = 1 + Math.floor(this.rnd() * 6);
      return 'throttle';
    }
    if (r < 0.86) return req.method === 'GET' ? 'partial' : '5xx';
    return req.method === 'PATCH' ? 'lost-answer' : 'none';
  }
  async #handle(req: IncomingMessage, res: ServerResponse) {
    const fault = this.#pick(req);
    this.counts[fault]++;
    if (fault === '5xx') return void res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway');
    if (fault === 'throttle') return void res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":"slow down"}');
    if (fault === 'hang') return; // never answered: the adapter's timeout ends it
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const upstream = httpRequest(new URL(req.url!, this.target), { method: req.method, headers: req.headers }, (answer) => {
      const body: Buffer[] = [];
      answer.on('data', (c: Buffer) => body.push(c));
      answer.on('end', () => {
        const all = Buffer.concat(body);
        // The write landed in PowerDNS; the answer never reaches the adapter.
        if (fault === 'lost-answer') return void res.socket?.destroy();
        const headers = { ...answer.headers };
        delete headers['content-length'];
        res.writeHead(answer.statusCode!, headers);
        res.end(fault === 'partial' && all.length > 2 ? all.subarray(0, Math.floor(all.length / 2)) : all);
      });
    });
    upstream.end(Buffer.concat(chunks));
  }
  stop() {
    this.#server?.closeAllConnections();
    return new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

let pdns: PdnsServer;
let proxy: FaultProxy;
before(async () => {
  pdns = await startPdns();
  for (const d of DOMAINS) await pdns.createZone(d, [{ name: `_dmarc.${d}.`, type: 'TXT', ttl: 60, records: [{ content: `"v=DMARC1; p=none; rua=mailto:dmarc@${d}"` }] }]);
  proxy = new FaultProxy(pdns.apiUrl, prng(SEED));
  await proxy.start();
});
after(async () => {
  await proxy?.stop();
  await pdns?.stop();
});

it('faults from the provider never make the store claim what the zone does not show; the move lands once', async () => {
  const clock = fakeClock();
  const env = { PDNS_FAULT_KEY: pdns.apiKey };
  const provider = createProvider({ type: 'powerdns', api_url: proxy.url, api_key_env: 'PDNS_FAULT_KEY', timeout_seconds: 0.5, max_attempts: 3 }, { env, clock });
  const direct = createProvider({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'PDNS_FAULT_KEY' }, { env });
  const verify = dnsVerifier({ nameservers: [pdns.dnsServer], timeoutMs: 2000 });
  const start = new Date('2026-04-01T10:00:00Z');
  proxy.faulty = false;
  // Enrolment reads the zone directly; every tick goes through the faulty proxy.
  const w = await createWorld({ start, plan, dns: direct, providerName: 'pdns', providerFor: () => provider });
  const store = w.store;
  await w.enrol(DOMAINS);
  await w.tick(start, { verifierFor: () => verify });
  for (const d of DOMAINS) await force(store, d, () => plan, { actor: 'test:operator', now: start }, { to: labels[3]!, reason: 'fault run' });

  proxy.faulty = true;
  const outcomes: Record<string, number> = {};
  let now = start;
  for (let tick = 0; tick < 12; tick++) {
    now = new Date(now.getTime() + 2 * 3_600_000);
    for (const r of await w.tick(now, { verifierFor: () => verify })) {
      const key = r.apply?.status ?? (r.error ? 'error' : 'none');
      outcomes[key] = (outcomes[key] ?? 0) + 1;
    }
    // After every tick: a domain whose stage moved shows that record in DNS.
    for (const d of DOMAINS) {
      const row = (await getDomain(store.db, d))!;
      if (row.stage_index === 3) assert.deepEqual((await queryTxt(`_dmarc.${d}`, [pdns.dnsServer])).txt, [row.last_record], `${d} claims a record DNS does not show`);
    }
  }
  proxy.faulty = false;
  for (let tick = 0; tick < 3; tick++) {
    now = new Date(now.getTime() + 2 * 3_600_000);
    await w.tick(now, { verifierFor: () => verify });
  }
  for (const d of DOMAINS) {
    const row = (await getDomain(store.db, d))!;
    assert.equal(row.state, 'active', `${d}: ${row.state_reason}`);
    assert.equal(row.stage_index, 3, `${d} reached the forced stage`);
    assert.equal(await getIntent(store.db, d), undefined);
    assert.deepEqual((await queryTxt(`_dmarc.${d}`, [pdns.dnsServer])).txt, [row.last_record]);
    const moves = (await stageHistory(store.db, d)).filter((h) => h.reason === 'fault run');
    assert.equal(moves.length, 1, `${d}: the move landed exactly once`);
  }
  const injected = Object.entries(proxy.counts).filter(([k]) => k !== 'none').reduce((n, [, v]) => n + v, 0);
  assert.ok(injected >= 10 && proxy.counts['lost-answer'] > 0 && proxy.counts.partial > 0 && proxy.counts.hang > 0 && proxy.counts.throttle > 0, JSON.stringify(proxy.counts));
  console.log(`provider faults (seed ${SEED}): ${JSON.stringify(proxy.counts)}; apply outcomes ${JSON.stringify(outcomes)}`);
  await w.close();
});

it('Route 53 through the real AWS SDK, with seeded storms of throttling, 503s and PriorRequestNotComplete: every move lands once', async () => {
  const { Route53Server } = await import('./helpers/route53-server.js');
  const { Route53Provider, route53ConfigSchema } = await import('../providers/route53/index.js');
  const server = new Route53Server();
  await server.start();
  server.accessKeyId = 'AKIDFAULTTEST';
  const rnd = prng(SEED + 1);
  const names = ['r1.example', 'r2.example'];
  for (const d of names) server.addZone(d, { recordSets: [{ name: `_dmarc.${d}`, type: 'TXT', ttl: 300, values: [`"v=DMARC1; p=none; rua=mailto:dmarc@${d}"`] }] });
  const provider = new Route53Provider(route53ConfigSchema.parse({ type: 'route53', endpoint: server.endpoint, poll_seconds: 2 }), {
    env: { AWS_ACCESS_KEY_ID: 'AKIDFAULTTEST', AWS_SECRET_ACCESS_KEY: 'fault-test-secret' },
    clock: fakeClock(),
    random: () => 0.5,
  });
  const start = new Date('2026-04-01T10:00:00Z');
  const w = await createWorld({ start, plan, dns: provider, providerName: 'r53' });
  const r53store = w.store;
  try {
    await w.enrol(names);
    await w.tick(start);
    for (const d of names) await force(r53store, d, () => plan, { actor: 'test:operator', now: start }, { to: labels[4]!, reason: 'r53 fault run' });
    const injected: Record<string, number> = {};
    let now = start;
    for (let tick = 0; tick < 10; tick++) {
      const code = pick(['Throttling', 'ServiceUnavailable', 'PriorRequestNotComplete'] as const, rnd);
      const times = Math.floor(rnd() * 5);
      if (times > 0) server.inject({ operation: rnd() < 0.5 ? '*' : 'ChangeResourceRecordSets', code, times });
      injected[code] = (injected[code] ?? 0) + times;
      now = new Date(now.getTime() + 2 * 3_600_000);
      await w.tick(now);
      for (const d of names) {
        const row = (await getDomain(r53store.db, d))!;
        if (row.stage_index === 4) assert.deepEqual(await provider.readTxt(`_dmarc.${d}`), [row.last_record], `${d} claims a record the zone does not hold`);
      }
    }
    for (const d of names) {
      const row = (await getDomain(r53store.db, d))!;
      assert.equal(row.state, 'active', `${d}: ${row.state_reason}`);
      assert.equal(row.stage_index, 4);
      assert.equal((await stageHistory(r53store.db, d)).filter((h) => h.reason === 'r53 fault run').length, 1);
    }
    console.log(`route53 faults (seed ${SEED + 1}): injected ${JSON.stringify(injected)}`);
  } finally {
    provider.close();
    await w.close();
    await server.stop();
  }
});

function pick<T>(list: readonly T[], rnd: () => number): T {
  return list[Math.floor(rnd() * list.length)]!;
}
