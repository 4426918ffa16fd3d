/**
 * The manual provider against a real pdns_server on loopback: the test plays
 * the person, publishing exactly the zone-file line the provider printed,
 * and the provider must see it over real DNS before its write returns. What
 * it prints, its time-out, finding the servers through a resolver. What every
 * adapter does is the contract suite's, test/providers-contract.test.ts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ManualProvider, manualConfigSchema } from '../providers/manual/index.js';
import { ProviderError } from '../providers/shared/errors.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { fakeClock } from './helpers/fake-clock.js';

let pdns: PdnsServer;
/** Why pdns_server could not start: every test then fails with it (never skips). */
let startError: unknown = null;

/** Virtual time that still lets real I/O (DNS queries, the "person") run between polls. */
const clock = () => fakeClock({ realPauseMs: 5 });
/** Collects what the provider prints and, like a person, publishes the TXT lines it shows. */
function person(zone: string): { output: Writable; text(): string } {
  let text = '';
  const output = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const piece = chunk.toString('utf8');
      text += piece;
      const lines = piece.split('\n').filter((l) => / IN TXT /.test(l));
      const deletion = /^Delete every TXT record at (\S+)$/m.exec(piece);
      if (lines.length > 0) {
        const owner = lines[0]!.split(' ')[0]!;
        const ttl = Number(lines[0]!.split(' ')[1]);
        const contents = lines.map((l) => l.slice(l.indexOf(' IN TXT ') + ' IN TXT '.length));
        void pdns.patchZone(zone, [{ name: owner, type: 'TXT', ttl, records: contents.map((content) => ({ content })) }]);
      } else if (deletion) {
        void pdns.patchZone(zone, [{ name: deletion[1]!, type: 'TXT', changetype: 'DELETE', records: [] }]);
      }
      done();
    },
  });
  return { output, text: () => text };
}

describe('manual provider (real DNS from a pdns_server)', () => {
  before(async () => {
    try {
      pdns = await startPdns();
    } catch (error) {
      startError = error;
      return;
    }
    await pdns.createZone('manual.test', [
      { name: '_dmarc.cname.manual.test.', type: 'CNAME', records: [{ content: 'dmarc.hosted.example.' }] },
      { name: '_dmarc.delegated.manual.test.', type: 'NS', records: [{ content: 'ns1.sdmarc.net.' }, { content: 'ns2.sdmarc.net.' }] },
    ]);
  });
  beforeEach(() => {
    if (startError !== null) throw startError;
  });
  after(async () => {
    await pdns?.stop();
  });

  test('prints the split record, waits until DNS serves it, and reads it back', async () => {
    const uris = Array.from({ length: 12 }, (_, i) => `mailto:agg-${i}@reports.manual.test`);
    const record = `v=DMARC1; p=quarantine; pct=5; t=y; rua=${uris.join(',')}`;
    assert.ok(Buffer.byteLength(record) > 255);
    const who = person('manual.test');
    const c = clock();
    const p = new ManualProvider(manualConfigSchema.parse({ type: 'manual', nameservers: [pdns.dnsServer], poll_seconds: 10, timeout_seconds: 600 }), {
      output: who.output,
      clock: c,
    });
    await p.writeTxt('_dmarc.manual.test', [record], { ttl: 300 });

    const printed = who.text();
    assert.match(printed, /Replace every TXT record at _dmarc\.manual\.test\. with exactly this record \(TTL 300\):/);
    const line = printed.split('\n').find((l) => l.startsWith('_dmarc.manual.test. 300 IN TXT '));
    assert.ok(line, printed);
    const strings = [...line.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
    assert.ok(strings.length >= 2 && strings.every((s) => Buffer.byteLength(s) <= 255));
    assert.equal(strings.join(''), record);
    assert.match(printed, /Seen on the server: _dmarc\.manual\.test is published\./);

    assert.deepEqual(await p.readTxt('_dmarc.manual.test'), [record]);
    assert.deepEqual(await p.inspect('_dmarc.manual.test'), { txt: [record], ttl: null, cname: null, delegation: null });

    // An empty set asks for deletion and waits until DNS has none.
    await p.writeTxt('_dmarc.manual.test', [], { ttl: 300 });
    assert.match(who.text(), /Delete every TXT record at _dmarc\.manual\.test\./);
    assert.deepEqual(await p.readTxt('_dmarc.manual.test'), []);
  });

  test('times out with what DNS showed when nobody publishes', async () => {
    let printed = '';
    const output = new Writable({
      write(chunk: Buffer, _e, done) {
        printed += chunk.toString('utf8');
        done();
      },
    });
    const c = clock();
    const p = new ManualProvider(manualConfigSchema.parse({ type: 'manual', nameservers: [pdns.dnsServer], poll_seconds: 20, timeout_seconds: 60 }), { output, clock: c });
    await assert.rejects(p.writeTxt('_dmarc.manual.test', ['v=DMARC1; p=reject'], { ttl: 300 }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'timeout');
      assert.match(e.message, /did not show the record set within 60 s; last seen: 127\.0\.0\.1:\d+: no TXT/);
      return true;
    });
    assert.deepEqual(c.sleeps, [20_000, 20_000, 20_000]);
    assert.match(printed, /_dmarc\.manual\.test\. 300 IN TXT "v=DMARC1; p=reject"/);
  });

  test('finds the authoritative servers itself and reports a CNAME', async () => {
    const p = new ManualProvider(
      manualConfigSchema.parse({ type: 'manual', resolvers: [pdns.dnsServer], authoritative_port: pdns.dnsPort }),
      { output: new Writable({ write: (_c, _e, done) => done() }) },
    );
    assert.deepEqual(await p.inspect('_dmarc.cname.manual.test'), { txt: [], ttl: null, cname: 'dmarc.hosted.example', delegation: null });
    assert.deepEqual(await p.readTxt('_dmarc.nothing.manual.test'), []);
  });

  test('finds an NS delegation at _dmarc through a resolver too', async () => {
    const quiet = { output: new Writable({ write: (_c, _e, done) => done() }) };
    // From the zone's own server's referral (nameservers set) is the contract's (providers-contract.test.ts).
    const found = new ManualProvider(manualConfigSchema.parse({ type: 'manual', resolvers: [pdns.dnsServer], authoritative_port: pdns.dnsPort }), quiet);
    assert.deepEqual((await found.inspect('_dmarc.delegated.manual.test')).delegation, ['ns1.sdmarc.net', 'ns2.sdmarc.net']);
  });

  test('a server that does not answer is an error, not an empty record', async () => {
    const p = new ManualProvider(manualConfigSchema.parse({ type: 'manual', nameservers: ['127.0.0.1:1'] }));
    await assert.rejects(p.readTxt('_dmarc.manual.test'), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.match(e.message, /^manual: no server answered for _dmarc\.manual\.test: 127\.0\.0\.1:1 DNS lookup of CNAME _dmarc\.manual\.test failed: E/);
      return true;
    });
  });
});
