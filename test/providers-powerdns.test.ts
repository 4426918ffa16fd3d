/**
 * The PowerDNS adapter against a real pdns_server (Debian pdns-server with
 * the SQLite backend) on loopback: what it writes is served over real DNS
 * queries to the server, escapes in zone-file form, a configured zone, the API
 * key. What every adapter does (reads, whole-set writes, long records, CNAME
 * and NS, zone discovery, retries and refusals) is the contract suite's,
 * test/providers-contract.test.ts, against the same kind of server.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { PowerdnsProvider, powerdnsConfigSchema } from '../providers/powerdns/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import type { Clock } from '../providers/shared/clock.js';
import { authoritativeServers, queryTxt } from '../src/dns/index.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { tempDir } from './helpers/temp-dirs.js';

const KEY_ENV = 'TEST_PDNS_API_KEY';

/** A DMARC record well over 255 octets: many report URIs. */
function longRecord(): string {
  const uris = Array.from({ length: 14 }, (_, i) => `mailto:dmarc-reports-${i}@reports.example.test`);
  return `v=DMARC1; p=quarantine; pct=25; t=y; rua=${uris.join(',')}; fo=1`;
}

let pdns: PdnsServer;
/** Why pdns_server could not start: every test then fails with it (never skips). */
let startError: unknown = null;

function provider(extra: Record<string, unknown> = {}, deps: { clock?: Clock } = {}): PowerdnsProvider {
  const config = powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: KEY_ENV, ...extra });
  return new PowerdnsProvider(config, { env: { [KEY_ENV]: pdns.apiKey }, ...deps });
}

describe('powerdns provider (real pdns_server)', () => {
  before(async () => {
    try {
      pdns = await startPdns();
    } catch (error) {
      startError = error;
      return;
    }
    await pdns.createZone('example.test');
    await pdns.createZone('sub.example.test');
  });
  beforeEach(() => {
    if (startError !== null) throw startError;
  });
  after(async () => {
    await pdns?.stop();
  });

  test('writes a record, reads it back through the API and over DNS', async () => {
    const p = provider();
    const record = 'v=DMARC1; p=none; rua=mailto:dmarc@example.test';
    await p.writeTxt('_dmarc.example.test', [record], { ttl: 300 });
    assert.deepEqual(await p.readTxt('_dmarc.example.test'), [record]);
    assert.deepEqual(await p.inspect('_dmarc.example.test'), { txt: [record], ttl: 300, cname: null, delegation: null });
    assert.deepEqual(await queryTxt('_dmarc.example.test', [pdns.dnsServer]), { txt: [record], cname: null });
    // A record with quotes and backslashes survives the presentation format.
    const odd = 'v=DMARC1; p=none; x="quoted" \\ back';
    await p.writeTxt('_dmarc.example.test.', [odd], { ttl: 120 });
    assert.deepEqual(await p.inspect('_DMARC.Example.Test'), { txt: [odd], ttl: 120, cname: null, delegation: null });
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, [odd]);
  });

  test('a tab and a non-ASCII byte go out in zone-file form (decimal escapes, PowerDNS\'s own) and come back unchanged', async () => {
    const p = provider();
    const record = 'v=DMARC1; p=none; rua=mailto:d@example.test;\tx-note=café "q" \\';
    await p.writeTxt('_dmarc.example.test', [record], { ttl: 300 });
    assert.deepEqual(await p.readTxt('_dmarc.example.test'), [record]);
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, [record], 'served to resolvers as the same bytes');
  });

  test('a record over 255 octets is served over DNS as several character-strings that join to it', async () => {
    const p = provider();
    const record = longRecord();
    await p.writeTxt('_dmarc.example.test', [record], { ttl: 300 });
    const resolver = new Resolver();
    resolver.setServers([pdns.dnsServer]);
    const [chunks] = await resolver.resolveTxt('_dmarc.example.test');
    assert.ok(chunks && chunks.length > 1, 'DNS serves several character-strings');
    for (const chunk of chunks) assert.ok(Buffer.byteLength(chunk) <= 255);
    assert.equal(chunks.join(''), record);
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, [record]);
  });

  test('a configured zone is used as given; names outside it are refused, and a configured zone the server lacks is zone-not-found', async () => {
    // Discovery of the longest zone, and a name in none, are the contract's (providers-contract.test.ts).
    await provider().writeTxt('_dmarc.sub.example.test', ['v=DMARC1; p=none; sp=reject'], { ttl: 300 });
    const pinned = provider({ zone: 'sub.example.test' });
    assert.deepEqual(await pinned.readTxt('_dmarc.sub.example.test'), ['v=DMARC1; p=none; sp=reject']);
    await assert.rejects(pinned.readTxt('_dmarc.example.test'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'config');
      assert.match(e.message, /not in the configured zone sub\.example\.test/);
      return true;
    });
    await assert.rejects(provider({ zone: 'missing.invalid' }).readTxt('_dmarc.missing.invalid'), /configured zone missing\.invalid does not exist/);
  });

  test('the API key comes from the environment or a file; missing or wrong keys are named, never shown', async () => {
    const config = (extra: Record<string, unknown>) =>
      powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl, ...extra });
    assert.throws(() => new PowerdnsProvider(config({ api_key_env: 'PDNS_KEY_NOT_SET' }), { env: {} }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /environment variable PDNS_KEY_NOT_SET \(api_key_env\) is not set/);
      return true;
    });
    const dir = tempDir('dmarc-rollout-pdns-key-');
    assert.throws(() => new PowerdnsProvider(config({ api_key_file: join(dir, 'absent') }), { env: {} }), /cannot read file .*absent \(api_key_file\): ENOENT/);
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, `${pdns.apiKey}\n`);
    const fromFile = new PowerdnsProvider(config({ api_key_file: keyFile }), { env: {} });
    assert.deepEqual(await fromFile.readTxt('_dmarc.nothing.example.test'), []);

    const wrongKey = 'wrong-key-0123456789abcdef';
    writeFileSync(keyFile, wrongKey);
    const wrong = new PowerdnsProvider(config({ api_key_file: keyFile }), { env: {} });
    await assert.rejects(wrong.readTxt('_dmarc.example.test'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /rejected the API key from file .*key \(HTTP 401\)/);
      assert.ok(!e.message.includes(wrongKey) && !e.message.includes(pdns.apiKey));
      return true;
    });
    assert.throws(() => powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl }), /exactly one of api_key_env or api_key_file/);
    assert.throws(() => powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'A', api_key: 'inline' }), /api_key/);
  });

  test('authoritativeServers finds the zone NS and its address through the server', async () => {
    assert.deepEqual(await authoritativeServers('_dmarc.example.test', [pdns.dnsServer], { port: pdns.dnsPort }), [pdns.dnsServer]);
    assert.deepEqual(await authoritativeServers('x.sub.example.test', [pdns.dnsServer]), ['127.0.0.1']);
  });
});
