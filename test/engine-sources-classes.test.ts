/**
 * Senders classed by who they are, on a real store (SQLite, then Postgres):
 * reports generated as receivers write them, delivered through the real
 * ingest, judged by the real assessment and decide(), explained in the words
 * a person reads. A sender
 * broken as long as it worked stays the domain's own; another tenant on a
 * shared provider IP is not the domain's failure; forwarders and lists are a
 * class of their own; a new unaligned sender at volume holds from its first
 * report.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainText } from '../src/app/explain.js';
import type { SourceSummary } from '../src/engine/types.js';
import { storeDialects } from './helpers/dialects.js';
import { daysFrom, ownServer, ownViaEsp, rotatedBadly, senderWorld, type SenderRow } from './helpers/sender-reports.js';

const find = (sources: SourceSummary[], ip: string, cls?: string) => {
  const hit = sources.filter((s) => s.ip === ip && (cls === undefined || s.class === cls));
  assert.ok(hit.length > 0, `no ${cls ?? ''} source from ${ip} among ${sources.map((s) => `${s.key} [${s.class}]`).join(' | ')}`);
  return hit;
};
const check = (checks: Array<{ rule: string; outcome: string; detail: string }>, rule: string) => {
  const c = checks.find((x) => x.rule === rule);
  assert.ok(c, `no ${rule} check among ${checks.map((x) => x.rule).join(', ')}`);
  return c;
};

for (const dialect of storeDialects()) {
  describe(`a sender broken for as long as it worked (${dialect.name})`, () => {
    it('stays authorised-failing (named by its DKIM identity), is what the halt rate sees, and is never called unaligned', async () => {
      const w = await senderWorld('rotation.example', dialect);
      const d = w.domain;
      const esp = '198.51.100.20';
      // Eight days of mail signed with the domain's key at its ESP, then eight with a rotated key whose DNS record was never published.
      const worked = daysFrom('2026-03-02', 8);
      const broke = daysFrom('2026-03-10', 8);
      for (const [days, row] of [
        [worked, (n: number) => ownViaEsp(d, esp, n)],
        [broke, (n: number) => rotatedBadly(d, esp, n)],
      ] as const) {
        for (const day of days) {
          await w.deliver([
            { org: 'google.com', reportId: `g-${day}`, domain: d, day, rows: [row(300), ownServer(d, '192.0.2.10', 100)] },
            { org: 'Yahoo', reportId: `y-${day}`, domain: d, day, rows: [row(120), ownServer(d, '192.0.2.10', 40)] },
          ]);
        }
      }
      const { assessment, decision } = await w.judge(new Date('2026-03-18T12:00:00Z'));
      const m = assessment.metrics;

      const failing = find(m.sources, esp).filter((s) => s.passed === 0);
      assert.equal(failing.length, 1);
      assert.equal(failing[0]!.class, 'authorised');
      assert.match(failing[0]!.classReason, /signed as rotation\.example \(d=rotation\.example s=esp2\).*with selector esp1.*DKIM broke/);
      assert.deepEqual(
        m.sources.filter((s) => s.class === 'unaligned').map((s) => s.key),
        [],
        'the old IP-history rule renamed this sender "an unaligned sender enforcement would break"',
      );
      // Every broken message is authorised failure: 8 days x 420.
      assert.equal(m.authorised.failed, 8 * 420);
      assert.equal(m.authorised.messages, 16 * 420 + 16 * 140);

      assert.ok(['halt', 'rollback'].includes(decision.action), `${decision.action}: ${decision.summary}`);
      const rate = decision.checks.find((c) => c.outcome === 'failed')!;
      assert.match(rate.rule, /^(halt|rollback)-rate/);
      assert.doesNotMatch(JSON.stringify(decision), /unaligned/);

      const text = explainText(assessment, decision);
      const authorisedPart = text.slice(text.indexOf('Authorised sources'), text.indexOf('\n\n', text.indexOf('Authorised sources')));
      assert.match(authorisedPart, /198\.51\.100\.20 spf:bounce\.esp\.example: .*DKIM broke/);
      assert.doesNotMatch(text, /unaligned sources/);
    });
  });

  describe(`spoofing from a shared provider IP (${dialect.name})`, () => {
    it('signed as the attacker’s own tenant domain is unaligned, not authorised failure, and does not halt a clean domain', async () => {
      const w = await senderWorld('shared.example', dialect);
      const d = w.domain;
      const shared = '198.51.100.30';
      const attacker = (n: number): SenderRow => ({
        ip: shared,
        count: n,
        headerFrom: d,
        dkim: 'fail',
        spf: 'fail',
        signatures: [{ domain: 'attacker-tenant.example', selector: 'k1', result: 'pass' }],
        spfDomain: 'bounce.esp.example',
        spfResult: 'pass',
      });
      for (const day of daysFrom('2026-03-02', 6)) {
        // Before: 55 % of the IP's mail passed, so its IP history made the spoofing "authorised" and its failure halted the domain.
        await w.deliver([{ org: 'google.com', reportId: `g-${day}`, domain: d, day, rows: [ownViaEsp(d, shared, 550), attacker(450)] }]);
      }
      const { assessment, decision } = await w.judge(new Date('2026-03-08T12:00:00Z'));
      const m = assessment.metrics;
      const spoof = find(m.sources, shared, 'unaligned');
      assert.equal(spoof.length, 1);
      assert.match(spoof[0]!.classReason, /authenticates as dkim:attacker-tenant\.example.*shared provider/);
      assert.equal(find(m.sources, shared).filter((s) => s.class === 'authorised' && s.passed === 0).length, 0);
      assert.deepEqual([m.authorised.messages, m.authorised.failed], [6 * 550, 0]);
      assert.ok(!['halt', 'rollback'].includes(decision.action), `${decision.action}: ${decision.summary}`);
      // It is a person's call (another tenant, or an account of the domain's own there): named, and holding.
      assert.match(check(decision.checks, 'unaligned-sender').detail, /198\.51\.100\.30 dkim:attacker-tenant\.example/);
    });
  });

  describe(`forwarders and mailing lists (${dialect.name})`, () => {
    it('rows the receiver marks forwarded, mailing_list, trusted_forwarder or local_policy, and DKIM-only mail via a forwarder, are their own class and never block', async () => {
      const w = await senderWorld('lists.example', dialect);
      const d = w.domain;
      const altered = (ip: string, n: number, reasons?: SenderRow['reasons'], spfDomain = d): SenderRow => ({
        ip,
        count: n,
        headerFrom: d,
        dkim: 'fail',
        spf: 'fail',
        signatures: [{ domain: d, selector: 's1', result: 'fail' }],
        spfDomain,
        spfResult: spfDomain === d ? 'fail' : 'pass',
        ...(reasons ? { reasons } : {}),
      });
      const relayed = (ip: string, n: number): SenderRow => ({ ...ownServer(d, ip, n), spf: 'fail', spfResult: 'softfail' });
      for (const day of daysFrom('2026-03-02', 6)) {
        await w.deliver([
          {
            org: 'google.com',
            reportId: `g-${day}`,
            domain: d,
            day,
            rows: [
              ownServer(d, '192.0.2.10', 600),
              altered('198.51.100.50', 80, [{ type: 'mailing_list', comment: 'list@lists.example' }], 'lists-bounces.example'),
              altered('203.0.113.70', 40, [{ type: 'forwarded' }]),
              altered('203.0.113.71', 20, [{ type: 'trusted_forwarder' }]),
              altered('192.0.2.200', 25, [{ type: 'local_policy', comment: 'arc=pass' }]),
              // A forwarder no receiver names: our signature survives on most mail (SPF fails for its IP), breaks on some.
              relayed('203.0.113.80', 60),
              altered('203.0.113.80', 45),
            ],
          },
        ]);
      }
      const { assessment, decision } = await w.judge(new Date('2026-03-08T12:00:00Z'));
      const m = assessment.metrics;
      const expect = {
        '198.51.100.50': /reports it as mailing list \(list@lists\.example\)/,
        '203.0.113.70': /reports it as forwarded/,
        '203.0.113.71': /reports it as trusted forwarder/,
        '192.0.2.200': /reports it as local policy \(arc=pass\)/,
      };
      for (const [ip, reason] of Object.entries(expect)) {
        const [s] = find(m.sources, ip);
        assert.equal(s!.class, 'forwarded', `${ip}: ${s!.classReason}`);
        assert.match(s!.classReason, reason);
        assert.equal(s!.blocking, false);
      }
      const relay = find(m.sources, '203.0.113.80');
      assert.deepEqual(relay.map((s) => s.class), ['forwarded', 'forwarded'], relay.map((s) => s.classReason).join(' | '));
      assert.ok(relay.some((s) => /passes DKIM as lists\.example .*SPF fails for 203\.0\.113\.80/.test(s.classReason)));
      assert.ok(relay.some((s) => /relays lists\.example's mail .*broke in transit/.test(s.classReason)));

      // None of it is the domain's own failure: only the own server's mail is authorised.
      assert.deepEqual([m.authorised.messages, m.authorised.failed], [6 * 600, 0]);
      assert.ok(!['halt', 'rollback'].includes(decision.action), `${decision.action}: ${decision.summary}`);
      assert.equal(check(decision.checks, 'unaligned-sender').outcome, 'passed');
      assert.match(explainText(assessment, decision), /Forwarders and mailing lists[^\n]*:\n {2}/);
    });
  });

  describe(`a new unaligned sender (${dialect.name})`, () => {
    it('at 13 % of the mail holds the domain from the first report that shows it; below the plan volume it does not', async () => {
      const w = await senderWorld('newesp.example', dialect);
      const d = w.domain;
      const newEsp = (n: number): SenderRow => ({
        ip: '203.0.113.40',
        count: n,
        headerFrom: d,
        dkim: 'fail',
        spf: 'fail',
        signatures: [{ domain: 'crm-vendor.example', selector: 'crm', result: 'pass' }],
        spfDomain: 'mail.crm-vendor.example',
        spfResult: 'pass',
      });
      for (const day of daysFrom('2026-03-02', 6)) {
        await w.deliver([{ org: 'google.com', reportId: `g-${day}`, domain: d, day, rows: [ownServer(d, '192.0.2.10', 400)] }]);
      }
      const before = await w.judge(new Date('2026-03-08T12:00:00Z'));
      assert.equal(check(before.decision.checks, 'unaligned-sender').outcome, 'passed');

      // 2026-03-08: a CRM starts sending as the domain, 60 of 460 messages (13 %).
      await w.deliver([{ org: 'google.com', reportId: 'g-2026-03-08', domain: d, day: '2026-03-08', rows: [ownServer(d, '192.0.2.10', 400), newEsp(60)] }]);
      const { assessment, decision } = await w.judge(new Date('2026-03-09T12:00:00Z'));
      const [crm] = find(assessment.metrics.sources, '203.0.113.40');
      assert.deepEqual([crm!.class, crm!.daysSeen, crm!.blocking], ['unaligned', 1, true]);
      const c = check(decision.checks, 'unaligned-sender');
      assert.equal(c.outcome, 'failed');
      assert.match(c.detail, /203\.0\.113\.40 dkim:crm-vendor\.example spf:mail\.crm-vendor\.example \(60 msgs over 1 day\)/);
      assert.notEqual(decision.action, 'advance');
      assert.match(explainText(assessment, decision), /unaligned sources[^\n]*:\n {2}203\.0\.113\.40 [^\n]*HOLDS the domain/);

      // The plan's volume rule stays: 49 messages in the look-back do not hold the domain.
      const small = await senderWorld('smallesp.example', dialect);
      for (const day of daysFrom('2026-03-02', 7)) {
        const rows = [ownServer(small.domain, '192.0.2.10', 400)];
        if (day === '2026-03-08') rows.push({ ...newEsp(49), headerFrom: small.domain });
        await small.deliver([{ org: 'google.com', reportId: `g-${day}`, domain: small.domain, day, rows }]);
      }
      const quiet = await small.judge(new Date('2026-03-09T12:00:00Z'));
      const [few] = find(quiet.assessment.metrics.sources, '203.0.113.40');
      assert.deepEqual([few!.class, few!.blocking], ['unaligned', false]);
      assert.equal(check(quiet.decision.checks, 'unaligned-sender').outcome, 'passed');
    });
  });
}
