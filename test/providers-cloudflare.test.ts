/**
 * The Cloudflare adapter through the real `cloudflare` SDK, pointed at a
 * loopback server that speaks the v4 JSON API: what the SDK put on the wire
 * (from the server's request log), in-place updates, a Retry-After longer
 * than allowed, client-side pacing, the token. What every adapter does (reads,
 * whole-set writes, long records, CNAME and NS, zone discovery, retries and
 * refusals, paged lists and a page that fails) is the contract suite's,
 * test/providers-contract.test.ts.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { CloudflareProvider, cloudflareConfigSchema } from '../providers/cloudflare/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import type { Clock } from '../providers/shared/clock.js';
import { CloudflareServer, type FakeZone } from './helpers/cloudflare-server.js';
import { fakeClock } from './helpers/fake-clock.js';
import { tempDir } from './helpers/temp-dirs.js';

const TOKEN_ENV = 'TEST_CF_API_TOKEN';
const TOKEN = 'cf-token-5ecr3t-0123456789abcdefABCDEF';

function longRecord(): string {
  const uris = Array.from({ length: 14 }, (_, i) => `mailto:dmarc-reports-${i}@reports.example.com`);
  return `v=DMARC1; p=reject; pct=10; t=y; rua=${uris.join(',')}; fo=1`;
}

let server: CloudflareServer;
let zone: FakeZone;

function provider(extra: Record<string, unknown> = {}, clock: Clock = fakeClock()): CloudflareProvider {
  const config = cloudflareConfigSchema.parse({ type: 'cloudflare', api_token_env: TOKEN_ENV, base_url: server.baseUrl, ...extra });
  return new CloudflareProvider(config, { env: { [TOKEN_ENV]: TOKEN }, clock, random: () => 0.5 });
}

describe('cloudflare provider (real SDK, v4 JSON server on loopback)', () => {
  before(async () => {
    server = new CloudflareServer();
    server.token = TOKEN;
    await server.start();
  });
  after(async () => {
    await server.stop();
  });
  beforeEach(() => {
    server.reset();
    zone = server.addZone('example.com');
  });

  test('creates the TXT record with quoted content and reads it back', async () => {
    const p = provider();
    const record = 'v=DMARC1; p=none; rua=mailto:dmarc@example.com';
    await p.writeTxt('_dmarc.example.com', [record], { ttl: 300 });
    const [post] = server.calls('POST');
    assert.ok(post);
    assert.equal(post.path, `/zones/${zone.id}/dns_records`);
    assert.deepEqual(post.body, { type: 'TXT', name: '_dmarc.example.com', content: `"${record}"`, ttl: 300 });
    assert.equal(post.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(post.headers['x-auth-key'], undefined);
    const list = server.calls('GET').find((r) => r.path.endsWith('/dns_records'));
    assert.equal(list?.query.get('name.exact'), '_dmarc.example.com');

    assert.deepEqual(await p.readTxt('_dmarc.example.com'), [record]);
    assert.deepEqual(await p.inspect('_DMARC.example.com.'), { txt: [record], ttl: 300, cname: null, delegation: null });
  });

  test('a long record is sent as one content of quoted strings; records made elsewhere with bare, unquoted content read whole', async () => {
    const p = provider();
    const record = longRecord();
    await p.writeTxt('_dmarc.example.com', [record], { ttl: 120 });
    const content = (server.calls('POST')[0]?.body as { content: string }).content;
    assert.match(content, /^"[^"]{255}" "[^"]{255}" "[^"]+"$/);

    server.addRecord(zone, { name: '_dmarc.legacy.example.com', type: 'TXT', content: 'v=DMARC1; p=none', ttl: 1 });
    assert.deepEqual(await p.inspect('_dmarc.legacy.example.com'), { txt: ['v=DMARC1; p=none'], ttl: 300, cname: null, delegation: null });
  });

  test('rewrites in place (PUT), changes only the TTL with PATCH, removes strays, and deletes for an empty set', async () => {
    const first = server.addRecord(zone, { name: '_dmarc.example.com', type: 'TXT', content: '"v=DMARC1; p=none"', ttl: 3600 });
    server.addRecord(zone, { name: '_dmarc.example.com', type: 'TXT', content: '"stray"', ttl: 3600 });
    const p = provider();
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=quarantine; pct=1; t=y'], { ttl: 300 });
    assert.deepEqual(server.requests.filter((r) => r.method !== 'GET').map((r) => r.method), ['PUT', 'DELETE']);
    assert.deepEqual(server.recordsAt('_dmarc.example.com').map((r) => [r.id, r.content, r.ttl]), [
      [first.id, '"v=DMARC1; p=quarantine; pct=1; t=y"', 300],
    ]);

    server.requests.length = 0;
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=quarantine; pct=1; t=y'], { ttl: 60 });
    assert.deepEqual(server.requests.filter((r) => r.method !== 'GET').map((r) => r.method), ['PATCH']);
    server.requests.length = 0;
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=quarantine; pct=1; t=y'], { ttl: 60 });
    assert.deepEqual(server.requests.filter((r) => r.method !== 'GET'), [], 'nothing to change, nothing sent');

    await p.writeTxt('_dmarc.example.com', [], { ttl: 60 });
    assert.deepEqual(server.recordsAt('_dmarc.example.com'), []);
    assert.deepEqual(await p.inspect('_dmarc.example.com'), { txt: [], ttl: null, cname: null, delegation: null });
  });

  test('429 is retried after its Retry-After; a block longer than allowed fails at once', async () => {
    const clock = fakeClock();
    const p = provider({}, clock);
    server.throttle(2, '3');
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=none'], { ttl: 300 });
    assert.equal(server.requests.filter((r) => r.status === 429).length, 2);
    assert.deepEqual(clock.sleeps.filter((ms) => ms >= 3000), [3000, 3000]);
    assert.deepEqual(server.recordsAt('_dmarc.example.com').map((r) => r.content), ['"v=DMARC1; p=none"']);

    const blocked = fakeClock();
    server.throttle(1, '300');
    await assert.rejects(provider({ max_retry_after_seconds: 60 }, blocked).readTxt('_dmarc.example.com'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'throttled');
      assert.match(e.message, /asked to wait 300 s, longer than the 60 s allowed/);
      return true;
    });
    assert.deepEqual(blocked.sleeps, []);
  });

  test('requests are paced to stay inside the 5-minute budget', async () => {
    const clock = fakeClock();
    const p = provider({ requests_per_5_minutes: 12, burst: 2 }, clock);
    for (let i = 0; i < 5; i += 1) await p.readTxt('_dmarc.example.com');
    // Zone discovery once (_dmarc.example.com: an empty page; example.com: a page, then the empty page
    // that ends the SDK's iteration), then one list per read.
    assert.equal(server.requests.length, 3 + 5);
    // Burst 2, then (12 - 2) per 300 s = one every 30 s: the other 6 requests take at least 180 s.
    assert.ok(clock.elapsed() >= 180_000, `elapsed ${clock.elapsed()} ms`);
    assert.ok(clock.elapsed() < 300_000);
  });

  test('a configured zone_id: names outside it are refused, and a zone_id the account lacks is zone-not-found', async () => {
    // Discovery of the longest zone, and a name in none, are the contract's (providers-contract.test.ts).
    const pinned = provider({ zone_id: zone.id });
    assert.deepEqual(await pinned.readTxt('_dmarc.example.com'), []);
    await assert.rejects(pinned.readTxt('_dmarc.other.test'), /not in the configured zone/);
    await assert.rejects(provider({ zone_id: '0'.repeat(32) }).readTxt('_dmarc.example.com'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'zone-not-found');
      return true;
    });
  });

  test('the token comes from the environment or a file; missing or rejected tokens are named, never shown', async () => {
    const config = (extra: Record<string, unknown>) => cloudflareConfigSchema.parse({ type: 'cloudflare', base_url: server.baseUrl, ...extra });
    assert.throws(() => new CloudflareProvider(config({ api_token_env: 'CF_TOKEN_NOT_SET' }), { env: {} }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /environment variable CF_TOKEN_NOT_SET \(api_token_env\) is not set/);
      return true;
    });
    const dir = tempDir('dmarc-rollout-cf-token-');
    assert.throws(() => new CloudflareProvider(config({ api_token_file: join(dir, 'none') }), { env: {} }), /cannot read file .*none \(api_token_file\): ENOENT/);
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`);
    assert.deepEqual(await new CloudflareProvider(config({ api_token_file: file }), { env: {} }).readTxt('_dmarc.example.com'), []);
    const wrong = 'cf-wrong-token-9876543210';
    writeFileSync(file, wrong);
    await assert.rejects(new CloudflareProvider(config({ api_token_file: file }), { env: {} }).readTxt('_dmarc.example.com'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /rejected the API token from file .*token \(HTTP 403: 10000 Authentication error\)/);
      assert.ok(!e.message.includes(wrong) && !JSON.stringify(e).includes(wrong));
      return true;
    });
    assert.throws(() => cloudflareConfigSchema.parse({ type: 'cloudflare', api_token: TOKEN }), /api_token/);
  });
});
