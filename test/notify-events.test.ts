/**
 * The mapping from audit entries to notification events, on the entries the
 * engine, apply and people write: by action and by check rule, so checks
 * added later (a new reporter or sender rule) are announced without a change
 * here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventsFromAudit, type AuditLike } from '../src/store/notify-events.js';

const at = new Date('2026-03-10T12:17:00Z');
const engine = (action: string, reason: string, details?: unknown): AuditLike => ({ at, actor: 'engine', domain: 'example.com', action, reason, ...(details ? { details } : {}) });
const check = (rule: string, outcome: string, measured: unknown, detail = `${rule} detail`) => ({ rule, outcome, measured, threshold: null, detail });
const types = (entry: AuditLike, ctx = {}) => eventsFromAudit(entry, ctx).events.map((e) => `${e.type}/${e.severity}`);

describe('audit entries to notification events', () => {
  it('announces the decisions a person must know of, and not a plain hold', () => {
    assert.deepEqual(types(engine('halt', 'authorised failures 6% exceed the halt rate', { checks: [check('halt-rate', 'failed', 0.06)] })), ['halted/critical']);
    assert.deepEqual(types(engine('rollback', 'back to quarantine:50', { checks: [check('rollback-rate', 'failed', 0.2)] })), ['rolled-back/critical']);
    assert.deepEqual(types(engine('complete', 'the rollout is complete', { checks: [] })), ['rollout-complete/info']);
    assert.deepEqual(types(engine('hold', 'holding at none:100: 3 of 14 days', { checks: [check('min-days', 'inconclusive', 3)] })), []);
    assert.deepEqual(types(engine('advance', 'advance to quarantine:1', { checks: [check('advance-rate', 'passed', 0)] })), []);
  });

  it('keys a waiting approval by domain and stage, so the same wait is one condition', () => {
    const [event] = eventsFromAudit(engine('await-approval', 'quarantine:100 is clean; reject:1 waits for approval (dmarc-rollout approve example.com).', { checks: [check('approval', 'inconclusive', 'not approved')] })).events;
    assert.equal(event!.type, 'approval-waiting');
    assert.deepEqual(event!.condition, { key: 'approval-waiting:example.com:reject:1', fingerprint: '' });
  });

  it('announces reporter and sender checks by rule name, including rules it has never seen', () => {
    const hold = engine('hold', 'holding', {
      checks: [
        check('quiet-reporter', 'inconclusive', 'Yahoo'),
        check('late-reporter', 'inconclusive', 'google.com'),
        check('unaligned-sender', 'failed', 1, 'unaligned sender(s) that enforcement would break: 198.51.100.7 dkim:esp.example (30 msgs over 9 days); allowlist or mark as abuse'),
        check('forwarded-new-source', 'failed', 2),
        check('min-days', 'passed', 9),
      ],
    });
    const { events, settles } = eventsFromAudit(hold);
    assert.deepEqual(
      events.map((e) => [e.type, e.condition?.key]),
      [
        ['reporter-quiet', 'reporter-quiet:example.com:quiet-reporter:Yahoo'],
        ['reporter-late', 'reporter-late:example.com:late-reporter:google.com'],
        ['blocking-sender', 'blocking-sender:example.com:unaligned-sender:198.51.100.7 dkim:esp.example'],
        ['blocking-sender', 'blocking-sender:example.com:forwarded-new-source:2'],
      ],
    );
    assert.ok(settles.includes('reporter-quiet') && settles.includes('blocking-sender') && settles.includes('approval-waiting'), 'a decision settles the conditions it no longer states');
  });

  it('tells drift, a refused change and a halt after a rollback apart', () => {
    assert.deepEqual(types(engine('halt', 'drift: _dmarc.example.com is "v=DMARC1; p=none", not what this program last wrote')), ['drift/critical']);
    assert.deepEqual(
      types(engine('halt', '_dmarc.example.com is a CNAME to x.ondmarc.com (Red Sift OnDMARC manages this record); refusing to write over it', { abandoned_intent: { action: 'advance', to_index: 3, record: null } })),
      ['change-refused/critical'],
    );
    assert.deepEqual(types(engine('halt', 'rolled back to quarantine:50 and halted for a person')), ['halted/critical']);
    const retry = eventsFromAudit(engine('apply-retry', 'writing _dmarc.example.com through pdns failed: 503; the stage does not move, retrying from 2026-03-10T12:47:00Z', { attempts: 1, intent: 'advance', to_index: 3 })).events[0]!;
    assert.equal(retry.type, 'change-retrying');
    assert.doesNotMatch(retry.condition!.fingerprint, /2026-03-10T12:47/, 'the retry time is not part of what makes a failure new');
  });

  it('announces a verified stage with the move the same transaction recorded', () => {
    const entry = engine('verified', 'reject:1 verified in DNS (advance); judged on mail from 2026-03-12T00:00:00.000Z', { record: 'v=DMARC1; p=reject; pct=1; t=y' });
    const [event] = eventsFromAudit(entry, { stageChange: { action: 'advance', from_stage: 'quarantine:100', to_stage: 'reject:1' } }).events;
    assert.equal(event!.type, 'stage-verified');
    assert.equal(event!.title, 'example.com: reject:1 verified in DNS');
    assert.deepEqual(event!.data, { from: 'quarantine:100', to: 'reject:1', move: 'advance', record: 'v=DMARC1; p=reject; pct=1; t=y' });
    const [back] = eventsFromAudit(entry, { stageChange: { action: 'rollback', from_stage: 'reject:1', to_stage: 'quarantine:100' } }).events;
    assert.equal(back!.title, 'example.com: quarantine:100 verified in DNS (rollback)');
  });

  it("announces a person's action as an operator action, whatever it is", () => {
    for (const action of ['approve', 'pause', 'resume', 'force', 'allow', 'tag', 'acknowledge-reporter', 'something-new']) {
      const [event] = eventsFromAudit({ at, actor: 'web:alice', domain: 'example.com', action, reason: 'because' }).events;
      assert.equal(event!.type, 'operator-action');
      assert.equal(event!.title, `example.com: ${action} by web:alice`);
    }
    assert.equal(eventsFromAudit({ at, actor: 'cli:bob', domain: null, action: 'allow', reason: '192.0.2.0/24' }).events[0]!.title, 'the fleet: allow by cli:bob');
  });
});
