/**
 * The identity checks behind source classes, as pure functions: DMARC
 * identifier alignment (strict and relaxed) without a public suffix list, the
 * network an identity's history is kept for, and the strict mode of a record
 * deciding whether a subdomain's signature is the domain's own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { measureStage } from '../src/engine/metrics.js';
import { aligned, networkOf, SourceRules } from '../src/engine/sources.js';
import type { ObservedRow } from '../src/engine/types.js';

describe('aligned()', () => {
  it('strict needs the same name; relaxed takes parents, children and siblings under the policy domain, never a bare TLD or a look-alike', () => {
    assert.equal(aligned('Example.COM.', 'example.com', 's', 'example.com'), true);
    assert.equal(aligned('mail.example.com', 'example.com', 's', 'example.com'), false);
    assert.equal(aligned('mail.example.com', 'example.com', 'r', 'example.com'), true);
    assert.equal(aligned('example.com', 'news.example.com', 'r', 'example.com'), true);
    assert.equal(aligned('a.example.com', 'b.example.com', 'r', 'example.com'), true);
    assert.equal(aligned('com', 'example.com', 'r', 'example.com'), false);
    assert.equal(aligned('notexample.com', 'example.com', 'r', 'example.com'), false);
    assert.equal(aligned('example.com.evil.example', 'example.com', 'r', 'example.com'), false);
    assert.equal(aligned('esp.example', 'example.com', 'r', 'example.com'), false);
  });
});

describe('networkOf()', () => {
  it('keeps history per /24 and /48, whatever the IPv6 spelling', () => {
    assert.equal(networkOf('192.0.2.77'), '192.0.2.0/24');
    assert.equal(networkOf('2001:db8:1::25'), '2001:db8:1::/48');
    assert.equal(networkOf('2001:0db8:0001:0000::99'), '2001:db8:1::/48');
    assert.equal(networkOf('2001:db8::1'), '2001:db8:0::/48');
    assert.equal(networkOf('not-an-ip'), 'not-an-ip');
  });
});

describe('adkim=s', () => {
  const base = { reporter: 'google.com', begin: Date.parse('2026-03-12T00:00:00Z') / 1000, end: Date.parse('2026-03-12T23:59:59Z') / 1000, policyDomain: 'example.com', disposition: 'none' };
  const measure = (adkim: 'r' | 's') =>
    measureStage({
      domain: 'example.com',
      rows: [
        // A server that signed as the parent domain and passed, then broke.
        { ...base, adkim, sourceIp: '192.0.2.10', count: 100, headerFrom: 'example.com', dkim: 'pass', spf: 'fail', authDkim: [{ domain: 'example.com', selector: 's1', result: 'pass' }], authSpf: [{ domain: 'bounce.esp.example', result: 'pass' }] },
        // Mail from a subdomain signed by the parent, failing: the domain's own under relaxed alignment only.
        { ...base, adkim, sourceIp: '192.0.2.10', count: 30, headerFrom: 'news.example.com', dkim: 'fail', spf: 'fail', authDkim: [{ domain: 'example.com', selector: 's1', result: 'fail' }], authSpf: [{ domain: 'bounce.esp.example', result: 'pass' }] },
      ] satisfies ObservedRow[],
      windowStart: new Date('2026-03-10T00:00:00Z'),
      now: new Date('2026-03-20T12:00:00Z'),
      enrolledDomains: new Set(['example.com']),
      subdomainsJudged: true,
      rules: new SourceRules([]),
      unalignedSourceMinMessages: 50,
      quietReporterDays: 3,
    });
  it('a failing parent-domain signature on a subdomain’s mail is the domain’s own under relaxed alignment, not under strict', () => {
    const relaxed = measure('r').sources.find((s) => s.passed === 0)!;
    assert.equal(relaxed.class, 'authorised');
    const strict = measure('s').sources.find((s) => s.passed === 0)!;
    assert.equal(strict.class, 'unaligned', strict.classReason);
  });
});

describe('SPF history is per address', () => {
  const base = { reporter: 'google.com', policyDomain: 'example.com', headerFrom: 'example.com', disposition: 'none' };
  const on = (day: string) => ({ begin: Date.parse(`${day}T00:00:00Z`) / 1000, end: Date.parse(`${day}T23:59:59Z`) / 1000 });
  it('the own server whose SPF broke is authorised failing; a neighbour in its /24 spoofing the envelope is not', () => {
    const m = measureStage({
      domain: 'example.com',
      rows: [
        { ...base, ...on('2026-03-11'), sourceIp: '192.0.2.10', count: 200, dkim: 'fail', spf: 'pass', authDkim: [], authSpf: [{ domain: 'example.com', result: 'pass' }] },
        { ...base, ...on('2026-03-12'), sourceIp: '192.0.2.10', count: 200, dkim: 'fail', spf: 'fail', authDkim: [], authSpf: [{ domain: 'example.com', result: 'fail' }] },
        { ...base, ...on('2026-03-12'), sourceIp: '192.0.2.99', count: 500, dkim: 'fail', spf: 'fail', authDkim: [], authSpf: [{ domain: 'example.com', result: 'fail' }] },
      ] satisfies ObservedRow[],
      windowStart: new Date('2026-03-10T00:00:00Z'),
      now: new Date('2026-03-20T12:00:00Z'),
      enrolledDomains: new Set(['example.com']),
      subdomainsJudged: true,
      rules: new SourceRules([]),
      unalignedSourceMinMessages: 50,
      quietReporterDays: 3,
    });
    const own = m.sources.filter((s) => s.ip === '192.0.2.10').map((s) => s.class);
    assert.deepEqual(own, ['authorised', 'authorised']);
    const neighbour = m.sources.find((s) => s.ip === '192.0.2.99')!;
    assert.equal(neighbour.class, 'unauthenticated', neighbour.classReason);
    assert.deepEqual([m.authorised.messages, m.authorised.failed, m.spoofing.messages], [400, 200, 500]);
  });
});

describe('the receiver’s alignment verdict', () => {
  const base = { reporter: 'google.com', policyDomain: 'shop.example.com', headerFrom: 'shop.example.com', disposition: 'none' };
  const on = (day: string) => ({ begin: Date.parse(`${day}T00:00:00Z`) / 1000, end: Date.parse(`${day}T23:59:59Z`) / 1000 });
  const spf = [{ domain: 'bounce.esp.example', result: 'pass' }];
  it('a sibling d= the receiver judged aligned (its public suffix list, not ours) is the domain’s own identity when its signature later fails', () => {
    const m = measureStage({
      domain: 'shop.example.com',
      rows: [
        { ...base, ...on('2026-03-11'), sourceIp: '198.51.100.20', count: 300, dkim: 'pass', spf: 'fail', authDkim: [{ domain: 'mail.example.com', selector: 'k1', result: 'pass' }], authSpf: spf },
        { ...base, ...on('2026-03-12'), sourceIp: '198.51.100.21', count: 100, dkim: 'fail', spf: 'fail', authDkim: [{ domain: 'mail.example.com', selector: 'k2', result: 'fail' }], authSpf: spf },
      ] satisfies ObservedRow[],
      windowStart: new Date('2026-03-10T00:00:00Z'),
      now: new Date('2026-03-20T12:00:00Z'),
      enrolledDomains: new Set(['shop.example.com']),
      subdomainsJudged: true,
      rules: new SourceRules([]),
      unalignedSourceMinMessages: 50,
      quietReporterDays: 3,
    });
    const broken = m.sources.find((s) => s.passed === 0)!;
    assert.equal(broken.class, 'authorised', broken.classReason);
    assert.match(broken.classReason, /d=mail\.example\.com s=k2.*with selector k1/);
    assert.deepEqual([m.authorised.messages, m.authorised.failed], [400, 100]);
  });
});
