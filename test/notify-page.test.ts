/**
 * The notifications page as a pure render: what comes from reports or
 * receivers (a reporter's name in a title, a receiver's error text) is
 * escaped, the Retry button is for operators only, and nothing needs an
 * inline style the page's CSP would block.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderNotificationsPage, type NotificationsShown, type SummaryShown } from '../src/web/notifications-page.js';

const hostile = '<script>alert("x")</script>.example';
const view: NotificationsShown = {
  channels: [{ name: 'chat', type: 'slack', target: null, events: null, min_severity: 'warning', tags: ['prod'], pending: 0, delivered: 3, failed: 1 }],
  messages: [
    {
      key: '0b9f7c1e-8a1d-4a57-9d47-5d1b8f0f2a11',
      channel: 'chat',
      kind: 'digest',
      title: `dmarc-rollout: example.com: reporter(s) quiet: ${hostile}`,
      domains: ['example.com'],
      status: 'failed',
      attempts: 7,
      created_at: '2026-03-10T12:17:00.000Z',
      next_attempt_at: null,
      delivered_at: null,
      last_error: `slack channel chat (hooks.example): HTTP 400: <img src=x onerror=alert(1)>`,
    },
  ],
  next_before: 41,
};
const summary: SummaryShown = {
  since: '2026-03-03T12:17:00.000Z',
  totals: { domains: 1, by_state: { active: 1, paused: 0, halted: 0, completed: 0 }, at_reject_100: 0, moved: 0 },
  stages: [{ stage: 'none:100', domains: 1 }],
  waiting: [{ domain: 'example.com', why: `1 unaligned sender(s) hold it: ${hostile}` }],
  omitted: { domains: 0, waiting: 0 },
  domains: [{ domain: 'example.com', stage: 'none:100', stage_number: 1, stage_count: 13, state: 'active', authorised_fail_rate: 0.004, moves: [] }],
};
const ctx = (role: 'viewer' | 'operator') => ({ user: { name: 'alice', role }, csrfToken: 'csrf-token-1' });

describe('the notifications page', () => {
  it('escapes text from reports and receivers, and pages on to older messages', () => {
    const page = renderNotificationsPage(ctx('viewer'), { view, summary, filter: {} });
    assert.doesNotMatch(page, /<script>alert/);
    assert.doesNotMatch(page, /<img src=x/);
    assert.match(page, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;\.example/);
    assert.match(page, /<td class="outcome-failed">undeliverable<\/td>/);
    assert.match(page, /href="\/notifications\?before=41"/);
    assert.doesNotMatch(page, /\sstyle="/);
  });

  it('offers the Retry button to operators only', () => {
    assert.doesNotMatch(renderNotificationsPage(ctx('viewer'), { view, summary, filter: {} }), /action="\/ui\/notifications\/retry"/);
    const page = renderNotificationsPage(ctx('operator'), { view, summary, filter: { status: 'failed' } });
    assert.match(page, /<form class="inline" method="post" action="\/ui\/notifications\/retry"><input type="hidden" name="_csrf" value="csrf-token-1"><input type="hidden" name="channel" value="chat"><button type="submit">Retry<\/button><\/form>/);
    assert.match(page, /<a href="\/notifications\?status=failed" aria-current="true">failed<\/a>/);
  });
});
