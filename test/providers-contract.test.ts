/**
 * The contract every DNS provider adapter meets (src/dns/provider.ts and
 * "What every adapter does" in providers/README.md), run over each adapter
 * against the real thing or its wire format: route53 and cloudflare through
 * their real SDKs against the loopback servers in test/helpers/, powerdns
 * against a real pdns_server (behind a loopback proxy that can answer 429,
 * 5xx or 4xx in its place), manual against the same pdns_server with the test
 * playing the person who publishes what it prints.
 *
 * Each adapter is a harness: how to make a zone, put records in it and read
 * them back without the adapter, build the adapter, and inject a fault. The
 * cases below are written once. What an adapter cannot be asked is said in
 * its harness (manual has no API: no zones to discover, no throttling, no
 * pages, no TTL from the system resolver; PowerDNS's API does not page).
 * Adapter-specific behaviour (wire bodies, escapes, pacing, credentials,
 * Route 53's one change per zone, Cloudflare's in-place updates) stays in
 * providers-<name>.test.ts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { CloudflareProvider, cloudflareConfigSchema } from '../providers/cloudflare/index.js';
import { PROVIDER_TYPES } from '../providers/index.js';
import { ManualProvider, manualConfigSchema } from '../providers/manual/index.js';
import { PowerdnsProvider, powerdnsConfigSchema } from '../providers/powerdns/index.js';
import { Route53Provider, route53ConfigSchema } from '../providers/route53/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import type { DnsProvider } from '../src/dns/provider.js';
import { isPermanentProviderError } from '../src/engine/planned-change.js';
import { CloudflareServer, type FakeZone } from './helpers/cloudflare-server.js';
import { fakeClock, type FakeClock } from './helpers/fake-clock.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { Route53Server } from './helpers/route53-server.js';

type Fault = 'throttle' | 'unavailable' | 'refuse';

interface Harness {
  readonly name: string;
  /** The adapter talks to an API: it finds zones, is throttled, refuses with 4xx. Not so `manual`. */
  readonly api: boolean;
  /** It refuses to write a TXT beside a CNAME (`manual` prints what to do and leaves it to the person). */
  readonly refusesBesideCname: boolean;
  /** It reports the TXT set's TTL (`manual` reads through DNS, which does not say). */
  readonly reportsTtl: boolean;
  /** The smallest page its list calls take, when its API pages; a listing can then fail mid-way. */
  readonly pageSize?: number;
  /** The Retry-After its throttling answer carries, in seconds, when its protocol has one. */
  readonly retryAfterSeconds?: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A new, empty zone (a name of its own for each call). */
  zone(parent?: string): Promise<string>;
  /** Sets the record set `type` at `fqdn` in `zone` to `values` (presentation format), bypassing the adapter. */
  seed(zone: string, fqdn: string, type: string, values: string[], ttl?: number): Promise<void>;
  /** The record set `type` at `fqdn` as `zone` holds it (presentation format), read without the adapter. */
  stored(zone: string, fqdn: string, type?: string): Promise<string[]>;
  adapter(options?: { pages?: boolean; maxAttempts?: number }): { provider: DnsProvider; clock: FakeClock };
  /** Answers the next `times` requests (or, with `nextPage`, only requests for a list's later pages) with a fault. */
  fail(fault: Fault, times: number, nextPage?: boolean): void;
  /** Drops the faults not yet answered. */
  clearFaults(): void;
  /** Requests the adapter sent so far, and how many of them a fault answered. */
  requests(): { total: number; faulted: number };
}

let zoneCount = 0;
const uniqueZone = (adapter: string) => `z${++zoneCount}.${adapter}.test`;

// ---------------------------------------------------------------- route53

function route53Harness(): Harness {
  const KEY = 'AKIDCONTRACT';
  const server = new Route53Server();
  const made: Route53Provider[] = [];
  const zoneId = (zone: string) => [...server.zones.values()].find((z) => z.name === `${zone}.`)!.id;
  return {
    name: 'route53',
    api: true,
    refusesBesideCname: true,
    reportsTtl: true,
    pageSize: 1,
    async start() {
      server.accessKeyId = KEY;
      await server.start();
    },
    async stop() {
      for (const p of made) p.close();
      await server.stop();
    },
    async zone(parent) {
      const name = parent ? `sub.${parent}` : uniqueZone('route53');
      server.addZone(name);
      return name;
    },
    async seed(zone, fqdn, type, values, ttl = 300) {
      const hosted = server.zones.get(zoneId(zone))!;
      const name = `${fqdn.toLowerCase()}.`;
      hosted.recordSets = hosted.recordSets.filter((s) => !(s.name === name && s.type === type));
      if (values.length > 0) hosted.recordSets.push({ name, type, ttl, values });
    },
    async stored(zone, fqdn, type = 'TXT') {
      return server.recordSet(zoneId(zone), fqdn, type)?.values ?? [];
    },
    adapter(options = {}) {
      const clock = fakeClock();
      const config = route53ConfigSchema.parse({
        type: 'route53',
        endpoint: server.endpoint,
        poll_seconds: 1,
        ...(options.pages ? { page_size: 1 } : {}),
        ...(options.maxAttempts ? { max_attempts: options.maxAttempts } : {}),
      });
      const provider = new Route53Provider(config, { env: { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: 'contract-secret' }, clock, random: () => 0.5 });
      made.push(provider);
      return { provider, clock };
    },
    fail(fault, times, nextPage) {
      const code = fault === 'throttle' ? 'Throttling' : fault === 'unavailable' ? 'ServiceUnavailable' : 'InvalidInput';
      // A later page of ListResourceRecordSets carries the NextRecordType marker as `type`.
      if (nextPage) server.inject({ operation: 'ListResourceRecordSets', code, times, when: (r) => r.query['type'] !== undefined });
      else server.inject({ operation: '*', code, times });
    },
    clearFaults: () => server.clearFaults(),
    requests() {
      return { total: server.requests.length, faulted: server.requests.filter((r) => r.error !== null).length };
    },
  };
}

// ---------------------------------------------------------------- cloudflare

function cloudflareHarness(): Harness {
  const TOKEN = 'cf-contract-token-0123456789';
  const server = new CloudflareServer();
  const zones = new Map<string, FakeZone>();
  return {
    name: 'cloudflare',
    api: true,
    refusesBesideCname: true,
    reportsTtl: true,
    pageSize: 5,
    retryAfterSeconds: 7,
    async start() {
      server.token = TOKEN;
      await server.start();
    },
    async stop() {
      await server.stop();
    },
    async zone(parent) {
      const name = parent ? `sub.${parent}` : uniqueZone('cloudflare');
      zones.set(name, server.addZone(name));
      return name;
    },
    async seed(zone, fqdn, type, values, ttl = 300) {
      const z = zones.get(zone)!;
      const name = fqdn.toLowerCase();
      for (const old of server.records.filter((r) => r.zone_id === z.id && r.name === name && r.type === type)) server.records.splice(server.records.indexOf(old), 1);
      for (const content of values) server.addRecord(z, { name, type, content, ttl });
    },
    async stored(zone, fqdn, type = 'TXT') {
      const z = zones.get(zone)!;
      return server.recordsAt(fqdn, type).filter((r) => r.zone_id === z.id).map((r) => r.content);
    },
    adapter(options = {}) {
      const clock = fakeClock();
      const config = cloudflareConfigSchema.parse({
        type: 'cloudflare',
        api_token_env: 'CF_CONTRACT_TOKEN',
        base_url: server.baseUrl,
        ...(options.pages ? { page_size: 5 } : {}),
        ...(options.maxAttempts ? { max_attempts: options.maxAttempts } : {}),
      });
      return { provider: new CloudflareProvider(config, { env: { CF_CONTRACT_TOKEN: TOKEN }, clock, random: () => 0.5 }), clock };
    },
    fail(fault, times, nextPage) {
      const when = nextPage ? (r: { method: string; path: string; query: URLSearchParams }) => r.method === 'GET' && r.path.endsWith('/dns_records') && r.query.get('page') === '2' : undefined;
      if (fault === 'throttle' && !nextPage) {
        server.throttle(times, '7');
        return;
      }
      const [status, code, message] =
        fault === 'throttle'
          ? [429, 971, 'Please wait and consider throttling your request speed']
          : fault === 'unavailable'
            ? [503, 10001, 'Service unavailable']
            : [400, 1004, 'DNS Validation Error'];
      server.fail({ times, status, code, message, ...(when ? { when } : {}) });
    },
    clearFaults: () => server.clearFaults(),
    requests() {
      return { total: server.requests.length, faulted: server.requests.filter((r) => r.status >= 400).length };
    },
  };
}

// ---------------------------------------------------------------- powerdns and manual (one pdns_server)

let pdnsStarted: Promise<PdnsServer> | undefined;
const sharedPdns = () => (pdnsStarted ??= startPdns());
// Stopped once every suite in the file is done with it.
after(async () => {
  await (await pdnsStarted?.catch(() => undefined))?.stop();
});

/** The API's view of one RRset at `fqdn` in `zone`. */
async function pdnsStored(pdns: PdnsServer, zone: string, fqdn: string, type: string): Promise<string[]> {
  const res = await fetch(`${pdns.apiUrl}/api/v1/servers/localhost/zones/${zone}.`, { headers: { 'X-API-Key': pdns.apiKey } });
  const body = (await res.json()) as { rrsets: { name: string; type: string; records: { content: string }[] }[] };
  return body.rrsets.filter((r) => r.name === `${fqdn.toLowerCase()}.` && r.type === type).flatMap((r) => r.records.map((x) => x.content));
}

async function pdnsSeed(pdns: PdnsServer, zone: string, fqdn: string, type: string, values: string[], ttl = 300): Promise<void> {
  await pdns.patchZone(
    zone,
    values.length > 0
      ? [{ name: `${fqdn}.`, type, ttl, records: values.map((content) => ({ content })) }]
      : [{ name: `${fqdn}.`, type, changetype: 'DELETE', records: [] }],
  );
}

function powerdnsHarness(): Harness {
  const KEY_ENV = 'PDNS_CONTRACT_KEY';
  let pdns: PdnsServer;
  let proxy: FaultProxy;
  return {
    name: 'powerdns',
    api: true,
    refusesBesideCname: true,
    reportsTtl: true,
    retryAfterSeconds: 7,
    async start() {
      pdns = await sharedPdns();
      proxy = await startFaultProxy(pdns.apiUrl);
    },
    async stop() {
      await proxy?.stop();
    },
    async zone(parent) {
      const name = parent ? `sub.${parent}` : uniqueZone('powerdns');
      await pdns.createZone(name);
      return name;
    },
    seed: (zone, fqdn, type, values, ttl) => pdnsSeed(pdns, zone, fqdn, type, values, ttl),
    stored: (zone, fqdn, type = 'TXT') => pdnsStored(pdns, zone, fqdn, type),
    adapter(options = {}) {
      const clock = fakeClock();
      const config = powerdnsConfigSchema.parse({ type: 'powerdns', api_url: proxy.url, api_key_env: KEY_ENV, ...(options.maxAttempts ? { max_attempts: options.maxAttempts } : {}) });
      return { provider: new PowerdnsProvider(config, { env: { [KEY_ENV]: pdns.apiKey }, clock, random: () => 0.5 }), clock };
    },
    fail(fault, times) {
      if (fault === 'throttle') proxy.fail({ times, status: 429, headers: { 'retry-after': '7' } });
      else if (fault === 'unavailable') proxy.fail({ times, status: 503 });
      else proxy.fail({ times, status: 400, body: JSON.stringify({ error: 'RRset _dmarc: refused' }) });
    },
    clearFaults: () => proxy.reset(),
    requests() {
      return { total: proxy.requests.length, faulted: proxy.requests.filter((r) => r.faulted).length };
    },
  };
}

function manualHarness(): Harness {
  let pdns: PdnsServer;
  const zones: string[] = [];
  /** Plays the person: publishes (or deletes) exactly the TXT set the adapter printed, in the zone that holds the name. */
  const person = () =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        const text = chunk.toString('utf8');
        const lines = text.split('\n').filter((l) => / IN TXT /.test(l));
        const deletion = /^Delete every TXT record at (\S+)$/m.exec(text);
        const owner = lines.length > 0 ? lines[0]!.split(' ')[0]! : deletion?.[1];
        if (owner === undefined) return done();
        const fqdn = owner.replace(/\.$/, '');
        const zone = zones.filter((z) => fqdn === z || fqdn.endsWith(`.${z}`)).sort((a, b) => b.length - a.length)[0]!;
        const contents = lines.map((l) => l.slice(l.indexOf(' IN TXT ') + ' IN TXT '.length));
        pdnsSeed(pdns, zone, fqdn, 'TXT', contents, lines.length > 0 ? Number(lines[0]!.split(' ')[1]) : 300).then(() => done(), done);
      },
    });
  return {
    name: 'manual',
    api: false,
    refusesBesideCname: false,
    reportsTtl: false,
    async start() {
      pdns = await sharedPdns();
    },
    async stop() {},
    async zone(parent) {
      const name = parent ? `sub.${parent}` : uniqueZone('manual');
      await pdns.createZone(name);
      zones.push(name);
      return name;
    },
    seed: (zone, fqdn, type, values, ttl) => pdnsSeed(pdns, zone, fqdn, type, values, ttl),
    stored: (zone, fqdn, type = 'TXT') => pdnsStored(pdns, zone, fqdn, type),
    adapter() {
      // Virtual time that still lets the DNS queries and the "person" run between polls.
      const clock = fakeClock({ realPauseMs: 5 });
      const config = manualConfigSchema.parse({ type: 'manual', nameservers: [pdns.dnsServer], poll_seconds: 1, timeout_seconds: 120 });
      return { provider: new ManualProvider(config, { output: person(), clock }), clock };
    },
    fail() {
      throw new Error('manual has no API to fail');
    },
    clearFaults: () => undefined,
    requests() {
      return { total: 0, faulted: 0 };
    },
  };
}

// ---------------------------------------------------------------- the contract

/** The character-strings of a TXT value in presentation format (`"a" "b"`, with `\"` and `\\`). */
function characterStrings(value: string): string[] {
  const strings = [...value.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => (m[1] ?? '').replace(/\\(["\\])/g, '$1'));
  return strings.length > 0 ? strings : [value];
}

/** What a stored TXT value says, its strings joined. */
const text = (value: string) => characterStrings(value).join('');

function longRecord(): string {
  const uris = Array.from({ length: 14 }, (_, i) => `mailto:dmarc-reports-${i}@reports.example.net`);
  return `v=DMARC1; p=quarantine; pct=25; t=y; rua=${uris.join(',')}; fo=1`;
}

/** A ProviderError that the engine treats as needing a person (true) or as worth another try (false). */
function providerError(code: string | undefined, permanent: boolean) {
  return (error: unknown) => {
    assert.ok(error instanceof ProviderError, `a ProviderError, got ${String(error)}`);
    if (code !== undefined) assert.equal(error.kind, code, error.message);
    assert.equal(isPermanentProviderError(error), permanent, `${error.kind} ${error.status ?? ''}: ${error.message}`);
    return true;
  };
}

const EMPTY = { txt: [], ttl: null, cname: null, delegation: null };

const HARNESSES = [route53Harness(), cloudflareHarness(), powerdnsHarness(), manualHarness()];

test('the contract runs over every adapter the registry knows', () => {
  assert.deepEqual(HARNESSES.map((h) => h.name).sort(), [...PROVIDER_TYPES].sort());
});

for (const h of HARNESSES) {
  describe(`${h.name} meets the provider contract`, () => {
    before(() => h.start());
    after(() => h.stop());

    test('a name with nothing at it reads as no records, no TTL, no CNAME, no delegation', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter();
      assert.deepEqual(await provider.readTxt(`_dmarc.${zone}`), []);
      assert.deepEqual(await provider.inspect(`_dmarc.${zone}`), EMPTY);
    });

    test('writes one record: the zone holds it, and a read returns it, the name in any case, with or without the final dot', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter();
      const record = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net';
      await provider.writeTxt(`_dmarc.${zone}`, [record], { ttl: 300 });
      assert.deepEqual((await h.stored(zone, `_dmarc.${zone}`)).map(text), [record]);
      assert.deepEqual(await provider.readTxt(`_dmarc.${zone}`), [record]);
      assert.deepEqual(await provider.inspect(`_DMARC.${zone.toUpperCase()}.`), { txt: [record], ttl: h.reportsTtl ? 300 : null, cname: null, delegation: null });
    });

    test('writing the set the zone already holds leaves it as it was', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter();
      const record = 'v=DMARC1; p=quarantine; pct=5; t=y; rua=mailto:dmarc@reports.example.net';
      await provider.writeTxt(`_dmarc.${zone}`, [record], { ttl: 300 });
      const first = await h.stored(zone, `_dmarc.${zone}`);
      await provider.writeTxt(`_dmarc.${zone}`, [record], { ttl: 300 });
      assert.deepEqual(await h.stored(zone, `_dmarc.${zone}`), first);
      assert.deepEqual(await provider.inspect(`_dmarc.${zone}`), { txt: [record], ttl: h.reportsTtl ? 300 : null, cname: null, delegation: null });
    });

    test('a write replaces the whole TXT set at the name, strays included; an empty set deletes it; other names and types are left alone', async () => {
      const zone = await h.zone();
      await h.seed(zone, `_dmarc.${zone}`, 'TXT', ['"v=DMARC1; p=none"', '"stray"']);
      await h.seed(zone, zone, 'TXT', ['"v=spf1 -all"']);
      await h.seed(zone, `_dmarc.sibling.${zone}`, 'TXT', ['"v=DMARC1; p=reject"']);
      await h.seed(zone, `_dmarc.${zone}`, 'CAA', ['0 issue "ca.example.net"']);
      const { provider } = h.adapter();
      assert.deepEqual((await provider.readTxt(`_dmarc.${zone}`)).sort(), ['stray', 'v=DMARC1; p=none']);

      await provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=quarantine; pct=1; t=y'], { ttl: 300 });
      assert.deepEqual((await h.stored(zone, `_dmarc.${zone}`)).map(text), ['v=DMARC1; p=quarantine; pct=1; t=y']);
      await provider.writeTxt(`_dmarc.${zone}`, [], { ttl: 300 });
      assert.deepEqual(await h.stored(zone, `_dmarc.${zone}`), []);
      assert.deepEqual(await provider.inspect(`_dmarc.${zone}`), EMPTY);

      assert.deepEqual((await h.stored(zone, zone)).map(text), ['v=spf1 -all']);
      assert.deepEqual((await h.stored(zone, `_dmarc.sibling.${zone}`)).map(text), ['v=DMARC1; p=reject']);
      assert.equal((await h.stored(zone, `_dmarc.${zone}`, 'CAA')).length, 1);
    });

    test('a record over 255 octets is stored as strings of at most 255 and reads back whole', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter();
      const record = longRecord();
      assert.ok(Buffer.byteLength(record) > 2 * 255);
      await provider.writeTxt(`_dmarc.${zone}`, [record], { ttl: 300 });
      const [stored] = await h.stored(zone, `_dmarc.${zone}`);
      const strings = characterStrings(stored!);
      assert.equal(strings.length, Math.ceil(Buffer.byteLength(record) / 255));
      assert.ok(strings.every((s) => Buffer.byteLength(s) <= 255));
      assert.equal(strings.join(''), record);
      assert.deepEqual(await provider.readTxt(`_dmarc.${zone}`), [record]);
    });

    test('a CNAME or an NS delegation at _dmarc is reported (a hosted DMARC service owns it)', async () => {
      const zone = await h.zone();
      await h.seed(zone, `_dmarc.${zone}`, 'CNAME', ['hosted.dmarc-service.example.']);
      await h.seed(zone, `_dmarc.delegated.${zone}`, 'NS', ['ns1.dmarc-service.example.', 'ns2.dmarc-service.example.']);
      const { provider } = h.adapter();
      assert.deepEqual(await provider.inspect(`_dmarc.${zone}`), { txt: [], ttl: null, cname: 'hosted.dmarc-service.example', delegation: null });
      assert.deepEqual((await provider.inspect(`_dmarc.delegated.${zone}`)).delegation?.sort(), ['ns1.dmarc-service.example', 'ns2.dmarc-service.example']);
      if (h.refusesBesideCname) {
        await assert.rejects(provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=none'], { ttl: 300 }), providerError('conflict', true));
        assert.deepEqual(await h.stored(zone, `_dmarc.${zone}`), []);
      }
    });

    if (!h.api) return;

    test('the longest zone holding the name is the one written; a name in no zone is a permanent zone-not-found', async () => {
      const parent = await h.zone();
      const child = await h.zone(parent);
      const { provider } = h.adapter();
      await provider.writeTxt(`_dmarc.${child}`, ['v=DMARC1; p=none'], { ttl: 300 });
      assert.deepEqual((await h.stored(child, `_dmarc.${child}`)).map(text), ['v=DMARC1; p=none']);
      assert.deepEqual(await h.stored(parent, `_dmarc.${child}`), []);
      await assert.rejects(provider.readTxt('_dmarc.nowhere.invalid'), providerError('zone-not-found', true));
    });

    test('throttling and 5xx answers are retried (after Retry-After, where the API sends one) until the call goes through', async () => {
      const zone = await h.zone();
      const { provider, clock } = h.adapter();
      h.fail('throttle', 2);
      await provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=none'], { ttl: 300 });
      h.fail('unavailable', 2);
      assert.deepEqual(await provider.readTxt(`_dmarc.${zone}`), ['v=DMARC1; p=none']);
      assert.deepEqual((await h.stored(zone, `_dmarc.${zone}`)).map(text), ['v=DMARC1; p=none']);
      assert.ok(h.requests().faulted >= 4, `faults answered: ${h.requests().faulted}`);
      if (h.retryAfterSeconds !== undefined) {
        assert.equal(clock.sleeps.filter((ms) => ms >= h.retryAfterSeconds! * 1000).length, 2, `sleeps: ${clock.sleeps.join(', ')}`);
      }
    });

    test('throttling that does not stop gives up after max_attempts as throttled, which is worth another try later', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter({ maxAttempts: 3 });
      const before = h.requests().total;
      h.fail('throttle', 100);
      await assert.rejects(provider.readTxt(`_dmarc.${zone}`), (e: unknown) => {
        providerError('throttled', false)(e);
        assert.match((e as Error).message, /gave up after 3 attempts/);
        return true;
      });
      assert.equal(h.requests().total - before, 3);
      h.clearFaults();
    });

    test('a 4xx refusal is not retried and needs a person (a permanent error)', async () => {
      const zone = await h.zone();
      const { provider } = h.adapter();
      await provider.readTxt(`_dmarc.${zone}`);
      const before = h.requests().total;
      h.fail('refuse', 1);
      await assert.rejects(provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=none'], { ttl: 300 }), (e: unknown) => {
        providerError('api', true)(e);
        assert.equal((e as ProviderError).status, 400);
        return true;
      });
      assert.deepEqual(await h.stored(zone, `_dmarc.${zone}`), []);
      assert.equal(h.requests().total - before, 1, 'the refused request only: no retry');
    });

    if (h.pageSize === undefined) return;

    test('a name with more record sets than a page is read whole, and replaced whole', async () => {
      const zone = await h.zone();
      const values = Array.from({ length: 7 }, (_, i) => `value ${i}`);
      await h.seed(zone, `_dmarc.${zone}`, 'CAA', ['0 issue "ca.example.net"']);
      await h.seed(zone, `_dmarc.${zone}`, 'TXT', values.map((v) => `"${v}"`));
      const { provider } = h.adapter({ pages: true });
      assert.deepEqual((await provider.readTxt(`_dmarc.${zone}`)).sort(), values);
      await provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=none'], { ttl: 300 });
      assert.deepEqual((await h.stored(zone, `_dmarc.${zone}`)).map(text), ['v=DMARC1; p=none']);
      assert.equal((await h.stored(zone, `_dmarc.${zone}`, 'CAA')).length, 1);
    });

    test('a list that fails on a later page: a transient failure is retried and the list read whole; a refusal fails the call and nothing is written', async () => {
      const zone = await h.zone();
      const values = Array.from({ length: 7 }, (_, i) => `value ${i}`);
      await h.seed(zone, `_dmarc.${zone}`, 'CAA', ['0 issue "ca.example.net"']);
      await h.seed(zone, `_dmarc.${zone}`, 'TXT', values.map((v) => `"${v}"`));
      const { provider } = h.adapter({ pages: true });
      h.fail('unavailable', 1, true);
      assert.deepEqual((await provider.readTxt(`_dmarc.${zone}`)).sort(), values);
      assert.equal(h.requests().faulted >= 1, true);

      // Half a listing is never taken for the whole set: a read fails rather than answer with the first page.
      h.fail('refuse', 1, true);
      await assert.rejects(provider.readTxt(`_dmarc.${zone}`), providerError('api', true));
      // A write either fails with nothing changed, or (Route 53's UPSERT, which needs no listing) replaces the set whole.
      h.fail('refuse', 1, true);
      const written = await provider.writeTxt(`_dmarc.${zone}`, ['v=DMARC1; p=none'], { ttl: 300 }).then(
        () => true,
        (e: unknown) => providerError('api', true)(e) && false,
      );
      h.clearFaults();
      assert.deepEqual((await h.stored(zone, `_dmarc.${zone}`)).map(text).sort(), written ? ['v=DMARC1; p=none'] : values);
    });
  });
}
