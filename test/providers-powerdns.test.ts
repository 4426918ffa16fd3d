/**
 * The PowerDNS adapter against a real pdns_server (Debian pdns-server with
 * the SQLite backend) on loopback: every write is read back through the API
 * and over real DNS queries to the server.
 */
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { PowerdnsProvider, powerdnsConfigSchema } from '../providers/powerdns/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import type { Clock } from '../providers/shared/clock.js';
import { authoritativeServers, queryTxt } from '../src/dns/index.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { fakeClock } from './helpers/fake-clock.js';

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

async function apiTxtContents(zone: string, fqdn: string): Promise<string[]> {
  const res = await fetch(`${pdns.apiUrl}/api/v1/servers/localhost/zones/${zone}.`, { headers: { 'X-API-Key': pdns.apiKey } });
  const body = (await res.json()) as { rrsets: { name: string; type: string; records: { content: string }[] }[] };
  return body.rrsets.filter((r) => r.name === `${fqdn}.` && r.type === 'TXT').flatMap((r) => r.records.map((x) => x.content));
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

  test('a record over 255 octets goes out as several quoted strings and comes back identical', async () => {
    const p = provider();
    const record = longRecord();
    assert.ok(Buffer.byteLength(record) > 255 * 2);
    await p.writeTxt('_dmarc.example.test', [record], { ttl: 300 });

    const [content] = await apiTxtContents('example.test', '_dmarc.example.test');
    assert.ok(content);
    const strings = [...content.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1] ?? '');
    assert.equal(strings.length, Math.ceil(Buffer.byteLength(record) / 255));
    for (const s of strings) assert.ok(Buffer.byteLength(s) <= 255);

    assert.deepEqual(await p.readTxt('_dmarc.example.test'), [record]);
    const resolver = new Resolver();
    resolver.setServers([pdns.dnsServer]);
    const [chunks] = await resolver.resolveTxt('_dmarc.example.test');
    assert.ok(chunks && chunks.length > 1, 'DNS serves several character-strings');
    for (const chunk of chunks) assert.ok(Buffer.byteLength(chunk) <= 255);
    assert.equal(chunks.join(''), record);
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, [record]);
  });

  test('REPLACE sends the complete set: stray records go, an empty set deletes the RRset', async () => {
    await pdns.patchZone('example.test', [
      { name: '_dmarc.example.test.', type: 'TXT', records: [{ content: '"v=DMARC1; p=none"' }, { content: '"stray"' }] },
    ]);
    const p = provider();
    assert.deepEqual((await p.readTxt('_dmarc.example.test')).sort(), ['stray', 'v=DMARC1; p=none']);
    await p.writeTxt('_dmarc.example.test', ['v=DMARC1; p=reject'], { ttl: 60 });
    assert.deepEqual(await p.readTxt('_dmarc.example.test'), ['v=DMARC1; p=reject']);
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, ['v=DMARC1; p=reject']);
    await p.writeTxt('_dmarc.example.test', [], { ttl: 60 });
    assert.deepEqual(await p.inspect('_dmarc.example.test'), { txt: [], ttl: null, cname: null, delegation: null });
    assert.deepEqual((await queryTxt('_dmarc.example.test', [pdns.dnsServer])).txt, []);
  });

  test('zone discovery picks the longest zone the server holds, or the configured one', async () => {
    const p = provider();
    await p.writeTxt('_dmarc.sub.example.test', ['v=DMARC1; p=none; sp=reject'], { ttl: 300 });
    await p.writeTxt('_dmarc.other.example.test', ['v=DMARC1; p=quarantine'], { ttl: 300 });
    assert.deepEqual(await apiTxtContents('sub.example.test', '_dmarc.sub.example.test'), ['"v=DMARC1; p=none; sp=reject"']);
    assert.deepEqual(await apiTxtContents('example.test', '_dmarc.sub.example.test'), []);
    assert.deepEqual(await apiTxtContents('example.test', '_dmarc.other.example.test'), ['"v=DMARC1; p=quarantine"']);

    const pinned = provider({ zone: 'sub.example.test' });
    assert.deepEqual(await pinned.readTxt('_dmarc.sub.example.test'), ['v=DMARC1; p=none; sp=reject']);
    await assert.rejects(pinned.readTxt('_dmarc.example.test'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, 'config');
      assert.match(e.message, /not in the configured zone sub\.example\.test/);
      return true;
    });
  });

  test('a name in no zone on the server is a clear zone-not-found error', async () => {
    await assert.rejects(provider().readTxt('_dmarc.missing.invalid'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, 'zone-not-found');
      assert.match(e.message, /^powerdns: no zone on the server holds _dmarc\.missing\.invalid/);
      return true;
    });
    await assert.rejects(provider({ zone: 'missing.invalid' }).readTxt('_dmarc.missing.invalid'), /configured zone missing\.invalid does not exist/);
  });

  test('inspect reports a CNAME and an NS delegation at _dmarc', async () => {
    await pdns.createZone('hosted.test', [
      { name: '_dmarc.hosted.test.', type: 'CNAME', records: [{ content: 'hosted.dmarc-service.test.' }] },
      { name: '_dmarc.delegated.hosted.test.', type: 'NS', records: [{ content: 'ns1.dmarc-service.test.' }, { content: 'ns2.dmarc-service.test.' }] },
    ]);
    const p = provider();
    assert.deepEqual(await p.inspect('_dmarc.hosted.test'), { txt: [], ttl: null, cname: 'hosted.dmarc-service.test', delegation: null });
    const delegated = await p.inspect('_dmarc.delegated.hosted.test');
    assert.deepEqual(delegated.delegation?.sort(), ['ns1.dmarc-service.test', 'ns2.dmarc-service.test']);
    assert.deepEqual(await queryTxt('_dmarc.hosted.test', [pdns.dnsServer]), { txt: [], cname: 'hosted.dmarc-service.test' });
    // PowerDNS itself refuses a TXT beside the CNAME; the error carries its reason.
    await assert.rejects(p.writeTxt('_dmarc.hosted.test', ['v=DMARC1; p=none'], { ttl: 60 }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.status, 422);
      assert.match(e.message, /HTTP 422: RRset _dmarc\.hosted\.test\. IN TXT: Conflicts with pre-existing RRset/);
      return true;
    });
  });

  test('the API key comes from the environment or a file; missing or wrong keys are named, never shown', async () => {
    const config = (extra: Record<string, unknown>) =>
      powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl, ...extra });
    assert.throws(() => new PowerdnsProvider(config({ api_key_env: 'PDNS_KEY_NOT_SET' }), { env: {} }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, 'secret');
      assert.match(e.message, /environment variable PDNS_KEY_NOT_SET \(api_key_env\) is not set/);
      return true;
    });
    const dir = mkdtempSync(join(tmpdir(), 'pdns-key-'));
    try {
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
        assert.equal(e.code, 'secret');
        assert.match(e.message, /rejected the API key from file .*key \(HTTP 401\)/);
        assert.ok(!e.message.includes(wrongKey) && !e.message.includes(pdns.apiKey));
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl }), /exactly one of api_key_env or api_key_file/);
    assert.throws(() => powerdnsConfigSchema.parse({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'A', api_key: 'inline' }), /api_key/);
  });

  test('throttling and server errors in front of the API are retried with backoff, honouring Retry-After', async () => {
    // A loopback proxy that answers 429 then 503 before letting requests through, as a rate-limiting gateway would.
    const seen: string[] = [];
    let refusals = 2;
    const proxy: Server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (refusals > 0) {
        refusals -= 1;
        if (refusals === 1) {
          res.writeHead(429, { 'retry-after': '7', 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'slow down' }));
        } else {
          res.writeHead(503);
          res.end();
        }
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host') headers[k] = v;
        fetch(`${pdns.apiUrl}${req.url}`, { method: req.method ?? 'GET', headers, ...(chunks.length ? { body: Buffer.concat(chunks) } : {}) })
          .then(async (upstream) => {
            res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' });
            res.end(Buffer.from(await upstream.arrayBuffer()));
          })
          .catch(() => {
            res.writeHead(502);
            res.end();
          });
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const address = proxy.address();
      assert.ok(address && typeof address === 'object');
      const clock = fakeClock();
      const p = provider({ api_url: `http://127.0.0.1:${address.port}/api/v1/` }, { clock });
      await p.writeTxt('_dmarc.example.test', ['v=DMARC1; p=none; t=y'], { ttl: 300 });
      assert.deepEqual(await p.readTxt('_dmarc.example.test'), ['v=DMARC1; p=none; t=y']);
      assert.equal(clock.sleeps.length, 2);
      assert.ok(clock.sleeps[0]! >= 7000, `waited ${clock.sleeps[0]} ms after Retry-After: 7`);
      assert.ok(clock.sleeps[1]! < 7000);
      assert.equal(seen.filter((s) => s.startsWith('GET /api/v1/servers/localhost/zones?zone=')).length >= 3, true);

      refusals = 100;
      const giveUp = provider({ api_url: `http://127.0.0.1:${address.port}`, max_attempts: 3 }, { clock: fakeClock() });
      await assert.rejects(giveUp.readTxt('_dmarc.example.test'), (e: unknown) => {
        assert.ok(e instanceof ProviderError);
        assert.equal(e.code, 'throttled');
        assert.match(e.message, /gave up after 3 attempts/);
        return true;
      });
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  test('authoritativeServers finds the zone NS and its address through the server', async () => {
    assert.deepEqual(await authoritativeServers('_dmarc.example.test', [pdns.dnsServer], { port: pdns.dnsPort }), [pdns.dnsServer]);
    assert.deepEqual(await authoritativeServers('x.sub.example.test', [pdns.dnsServer]), ['127.0.0.1']);
  });
});
