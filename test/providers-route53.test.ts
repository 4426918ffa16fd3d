/**
 * The Route 53 adapter through the real @aws-sdk/client-route-53, pointed at
 * a loopback server that speaks Route 53's REST/XML: what the SDK puts on the
 * wire (UPSERT and DELETE bodies, octal escapes, paging markers of the zone
 * lookup, signed requests) is asserted from the server's request log. What
 * every adapter does (reads, whole-set writes, long records, CNAME and NS,
 * zone discovery, retries and refusals, paged record lists) is the contract
 * suite's, test/providers-contract.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Route53Provider, route53ConfigSchema } from '../providers/route53/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import { fromPresentation } from '../providers/shared/txt.js';
import type { Clock } from '../providers/shared/clock.js';
import { Route53Server, type FakeHostedZone } from './helpers/route53-server.js';
import { fakeClock } from './helpers/fake-clock.js';

const ACCESS_KEY = 'AKIDROUTE53TEST';
const SECRET_KEY = 'r53-secret-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5';
const ENV = { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY };

/** The TXT values the SDK sent in one ChangeResourceRecordSets body, XML entities decoded. */
function sentValues(body: string): string[] {
  return [...body.matchAll(/<Value>([^<]*)<\/Value>/g)].map((m) =>
    (m[1] ?? '').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'),
  );
}

let server: Route53Server;
let zone: FakeHostedZone;
const providers: Route53Provider[] = [];

function provider(extra: Record<string, unknown> = {}, clock: Clock = fakeClock(), env: Record<string, string> = ENV): Route53Provider {
  const config = route53ConfigSchema.parse({ type: 'route53', endpoint: server.endpoint, poll_seconds: 2, ...extra });
  const p = new Route53Provider(config, { env, clock, random: () => 0.5 });
  providers.push(p);
  return p;
}

describe('route53 provider (real SDK, REST/XML server on loopback)', () => {
  before(async () => {
    server = new Route53Server();
    await server.start();
  });
  after(async () => {
    for (const p of providers) p.close();
    await server.stop();
  });
  beforeEach(() => {
    server.reset();
    server.accessKeyId = ACCESS_KEY;
    zone = server.addZone('example.com');
  });

  test('UPSERTs the TXT set, waits for INSYNC, and reads it back', async () => {
    const clock = fakeClock();
    const p = provider({}, clock);
    const record = 'v=DMARC1; p=none; rua=mailto:dmarc@example.com';
    await p.writeTxt('_dmarc.example.com', [record], { ttl: 300 });

    const [change] = server.calls('ChangeResourceRecordSets');
    assert.ok(change);
    assert.match(change.body, /<Action>UPSERT<\/Action>/);
    assert.match(change.body, /<Name>_dmarc\.example\.com\.<\/Name>/);
    assert.match(change.body, /<TTL>300<\/TTL>/);
    assert.deepEqual(sentValues(change.body), [`"${record}"`]);
    assert.match(String(change.headers.authorization), new RegExp(`^AWS4-HMAC-SHA256 Credential=${ACCESS_KEY}/`));
    // PENDING twice, then INSYNC: three GetChange calls, each after a poll interval.
    assert.equal(server.calls('GetChange').length, server.pendingPolls + 1);
    assert.equal(clock.sleeps.filter((ms) => ms === 2000).length, server.pendingPolls + 1);

    assert.deepEqual(await p.readTxt('_dmarc.example.com'), [record]);
    assert.deepEqual(await p.inspect('_DMARC.example.com.'), { txt: [record], ttl: 300, cname: null, delegation: null });
  });

  test('TXT escapes in Route 53\'s documented octal form: a tab, a quote, a backslash and a non-ASCII byte read and written back unchanged', async () => {
    // As Route 53 answers it: \011 is a tab (octal; 011 read as decimal would be a vertical tab), \303\251 is é in UTF-8.
    const stored = '"v=DMARC1; p=none; rua=mailto:d@example.org;\\011x-note=say \\"hi\\" \\\\ caf\\303\\251"';
    server.addZone('example.org', { recordSets: [{ name: '_dmarc.example.org', type: 'TXT', ttl: 300, values: [stored] }] });
    const p = provider();
    const record = 'v=DMARC1; p=none; rua=mailto:d@example.org;\tx-note=say "hi" \\ café';
    assert.deepEqual(await p.readTxt('_dmarc.example.org'), [record]);

    // Written back: the server takes it (a raw tab or é would be refused) and holds exactly the form it answered.
    const org = server.zones.get([...server.zones.keys()].find((id) => server.zones.get(id)!.name === 'example.org.')!)!;
    await p.writeTxt('_dmarc.example.org', [record], { ttl: 300 });
    assert.deepEqual(sentValues(server.calls('ChangeResourceRecordSets')[0]!.body), [stored]);
    assert.deepEqual(server.recordSet(org.id, '_dmarc.example.org', 'TXT')?.values, [stored]);
    assert.deepEqual(await p.readTxt('_dmarc.example.org'), [record]);

    // Read as RFC 1035's decimal escapes (what the adapter used to do), the same value is garbage: \303 is no decimal octet.
    assert.throws(() => fromPresentation(stored), /octets go up to 255/);
    assert.equal(fromPresentation('"a\\011b"'), 'a\vb', 'decimal 011 is a vertical tab, not the tab Route 53 meant');
  });

  test('an empty set DELETEs exactly the current record set', async () => {
    server.addZone('example.org', {
      recordSets: [{ name: '_dmarc.example.org', type: 'TXT', ttl: 3600, values: ['"v=DMARC1; p=none"', '"stray"'] }],
    });
    const p = provider();
    assert.deepEqual((await p.readTxt('_dmarc.example.org')).sort(), ['stray', 'v=DMARC1; p=none']);
    await p.writeTxt('_dmarc.example.org', [], { ttl: 60 });
    const body = server.calls('ChangeResourceRecordSets')[0]!.body;
    assert.match(body, /<Action>DELETE<\/Action>/);
    assert.match(body, /<TTL>3600<\/TTL>/);
    assert.deepEqual(sentValues(body).sort(), ['"stray"', '"v=DMARC1; p=none"']);
    assert.deepEqual(await p.inspect('_dmarc.example.org'), { txt: [], ttl: null, cname: null, delegation: null });
    // Nothing to delete: no change is sent.
    await p.writeTxt('_dmarc.example.org', [], { ttl: 60 });
    assert.equal(server.calls('ChangeResourceRecordSets').length, 1);
  });

  test('zone discovery pages past a private zone of the same name and prefers the longest zone', async () => {
    server.zones.clear();
    const privateZone = server.addZone('example.com', { id: 'Z0001PRIVATE', private: true });
    const publicZone = server.addZone('example.com', { id: 'Z0002PUBLIC' });
    const child = server.addZone('mail.example.com', { id: 'Z0003CHILD' });
    const p = provider({ page_size: 1 });
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=none'], { ttl: 300 });
    await p.writeTxt('_dmarc.mail.example.com', ['v=DMARC1; p=quarantine'], { ttl: 300 });
    assert.equal(server.recordSet(privateZone.id, '_dmarc.example.com', 'TXT'), undefined);
    assert.deepEqual(server.recordSet(publicZone.id, '_dmarc.example.com', 'TXT')?.values, ['"v=DMARC1; p=none"']);
    assert.deepEqual(server.recordSet(child.id, '_dmarc.mail.example.com', 'TXT')?.values, ['"v=DMARC1; p=quarantine"']);
    assert.equal(server.recordSet(publicZone.id, '_dmarc.mail.example.com', 'TXT'), undefined);

    const listed = server.calls('ListHostedZonesByName').filter((r) => r.query['dnsname']?.replace(/\.$/, '') === 'example.com');
    assert.ok(listed.some((r) => r.query['hostedzoneid'] === 'Z0002PUBLIC'), 'second page asked for with NextHostedZoneId');
    assert.ok(listed.every((r) => r.query['maxitems'] === '1'));
  });

  test('Throttling and PriorRequestNotComplete are retried with jittered backoff', async () => {
    const clock = fakeClock();
    const p = provider({}, clock);
    server.inject({ operation: 'ListHostedZonesByName', code: 'Throttling', times: 2 });
    server.busy(zone.id, 2);
    server.inject({ operation: 'GetChange', code: 'Throttling', times: 1 });
    await p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=quarantine; pct=5; t=y'], { ttl: 300 });
    assert.deepEqual(await p.readTxt('_dmarc.example.com'), ['v=DMARC1; p=quarantine; pct=5; t=y']);

    assert.equal(server.requests.filter((r) => r.error === 'Throttling').length, 3);
    assert.equal(server.calls('ChangeResourceRecordSets').filter((r) => r.error === 'PriorRequestNotComplete').length, 2);
    assert.equal(server.calls('ChangeResourceRecordSets').filter((r) => r.error === null).length, 1);
    // Full jitter with random() = 0.5: half of 250, 500, ... ms.
    assert.ok(clock.sleeps.includes(125) && clock.sleeps.includes(250), `backoff sleeps: ${clock.sleeps.join(', ')}`);
  });

  test('one change in flight per zone: concurrent writes wait for INSYNC instead of colliding', async () => {
    const p = provider();
    server.addZone('example.org');
    await Promise.all([
      p.writeTxt('_dmarc.example.com', ['v=DMARC1; p=none'], { ttl: 300 }),
      p.writeTxt('_dmarc.a.example.com', ['v=DMARC1; p=quarantine'], { ttl: 300 }),
      p.writeTxt('_dmarc.b.example.com', ['v=DMARC1; p=reject'], { ttl: 300 }),
      p.writeTxt('_dmarc.example.org', ['v=DMARC1; p=reject'], { ttl: 300 }),
    ]);
    // The fake refuses a change while the zone's previous one is PENDING: none was refused.
    assert.equal(server.requests.filter((r) => r.error !== null).length, 0);
    assert.equal(server.calls('ChangeResourceRecordSets').length, 4);
    assert.deepEqual(server.recordSet(zone.id, '_dmarc.b.example.com', 'TXT')?.values, ['"v=DMARC1; p=reject"']);
  });

  test('requests are paced by a token bucket under the account limit', async () => {
    const clock = fakeClock();
    const p = provider({ requests_per_second: 2 }, clock);
    await p.readTxt('_dmarc.example.com');
    for (let i = 0; i < 8; i += 1) await p.readTxt('_dmarc.example.com');
    // 2 zone lookups (_dmarc.example.com, then example.com) + 9 reads = 11 requests,
    // a burst of 2 then 2 per second: at least 4.5 s.
    assert.equal(server.requests.length, 11);
    assert.ok(clock.elapsed() >= 4500, `elapsed ${clock.elapsed()} ms`);
  });

  test('a configured hosted zone: used without a lookup; missing, it is a clear zone-not-found; a name outside it is refused', async () => {
    // A name in no zone at all, found by lookup, is the contract's (providers-contract.test.ts).
    await assert.rejects(provider({ hosted_zone_id: 'ZNOSUCHZONE' }).readTxt('_dmarc.example.com'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'zone-not-found');
      assert.match(e.message, /No hosted zone found with ID: ZNOSUCHZONE/);
      return true;
    });
    server.requests.length = 0;
    const pinned = provider({ hosted_zone_id: `/hostedzone/${zone.id}` });
    await pinned.writeTxt('_dmarc.example.com', ['v=DMARC1; p=none'], { ttl: 300 });
    assert.equal(server.calls('ListHostedZonesByName').length, 0);
    await assert.rejects(pinned.readTxt('_dmarc.other.test'), /not in the configured hosted zone/);
  });

  test('credentials: missing ones are named, rejected ones never shown', async () => {
    assert.throws(() => provider({ credential_source: 'env' }, fakeClock(), {}), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /environment variable AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set/);
      return true;
    });
    assert.throws(() => provider({ credential_source: 'env' }, fakeClock(), { AWS_ACCESS_KEY_ID: ACCESS_KEY }), /AWS_SECRET_ACCESS_KEY not set/);

    const otherSecret = 'another-secret-value-that-must-not-leak';
    const p = provider({}, fakeClock(), { AWS_ACCESS_KEY_ID: 'AKIDUNKNOWN', AWS_SECRET_ACCESS_KEY: otherSecret });
    await assert.rejects(p.readTxt('_dmarc.example.com'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /AWS refused the credentials \(InvalidClientTokenId/);
      assert.ok(!e.message.includes(otherSecret));
      assert.ok(!JSON.stringify(e).includes(otherSecret));
      return true;
    });
    assert.throws(() => route53ConfigSchema.parse({ type: 'route53', aws_secret_access_key: 'x' }), /aws_secret_access_key/);
  });
});
