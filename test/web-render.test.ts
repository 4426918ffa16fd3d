/**
 * The web page's HTML, rendered by the pure functions in src/web: what a
 * person (and a browser test) relies on. Report data is hostile and must come
 * out as text; a viewer must get no form that changes anything; the chart must
 * mark stage changes and say when there is nothing yet; the pages must load
 * nothing from another site. Pure functions need no store; the pages built
 * from a real store are built from each store (SQLite and Postgres).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { domainView, fleetOverview, listedSources, type AuditEntryView, type DailyPoint, type DomainOverview, type DomainView } from '../src/fleet/views.js';
import type { StageChange } from '../src/store/schema.js';
import { APP_CSS } from '../src/web/assets.js';
import { renderDailyChart } from '../src/web/chart.js';
import { formatPercent, formatTime } from '../src/web/format.js';
import { html, raw } from '../src/web/html.js';
import {
  renderApprovalsPage,
  renderAuditPage,
  renderDomainPage,
  renderErrorPage,
  renderFleetPage,
  renderLoginPage,
  type PageContext,
} from '../src/web/pages.js';
import { storeDialects } from './helpers/dialects.js';
import { cleanRow, spoofRow } from './helpers/reports.js';
import { createWorld } from './helpers/world.js';

const SCRIPT = '<script>alert(1)</script>';
const ESCAPED_SCRIPT = '&lt;script&gt;alert(1)&lt;/script&gt;';
/** Tries to leave a quoted attribute and add a handler. */
const ATTR_BREAK = 'rate "high" & rising" onmouseover="alert(2)';

const operator: PageContext = { user: { name: 'olivia', role: 'operator' }, csrfToken: 'csrf-op-123' };
const viewer: PageContext = { user: { name: 'victor', role: 'viewer' }, csrfToken: 'csrf-view-456' };

function overview(over: Partial<DomainOverview> = {}): DomainOverview {
  return {
    domain: 'example.com',
    plan: 'default',
    provider: 'manual',
    state: 'active',
    state_reason: null,
    stuck: null,
    stage: 'quarantine:100',
    stage_number: 7,
    stage_count: 13,
    stage_since: '2026-03-01T00:00:00.000Z',
    days_in_stage: 8,
    enrolled_at: '2026-01-01T09:30:00.123Z',
    authorised_fail_rate: 0.0125,
    authorised_messages: 4000,
    spoofing_messages: 321,
    blocking_sources: 0,
    next_decision: { action: 'hold', to: null, summary: 'holding: 3 of 7 days observed' },
    change_in_flight: null,
    awaiting_approval: false,
    approved_stage: null,
    figures_stale: false,
    ...over,
  };
}

const PLAN_STAGES = [
  'none:100',
  'quarantine:1',
  'quarantine:5',
  'quarantine:10',
  'quarantine:25',
  'quarantine:50',
  'quarantine:100',
  'reject:1',
  'reject:5',
].map((label) => ({ label, requires_approval: label === 'reject:1' }));

function view(over: Partial<DomainView> = {}): DomainView {
  return {
    ...overview(),
    record_now: 'v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com',
    record_next: 'v=DMARC1; p=reject; pct=1; rua=mailto:dmarc@example.com',
    next_stage: 'reject:1',
    plan_stages: PLAN_STAGES,
    record_next_problem: null,
    metrics: null,
    checks: [
      { rule: 'min-days', outcome: 'passed', measured: 8, threshold: 7, detail: '8 whole days observed of 7 needed' },
      { rule: 'advance-rate', outcome: 'passed', measured: 0.0125, threshold: 0.02, detail: 'authorised fail rate 1.25% at or below 2%' },
    ],
    sources: [],
    sources_omitted: listedSources([]).sources_omitted,
    reporters: [],
    daily: [],
    history: [],
    audit: [],
    ...over,
  };
}

/** Every form on the page with its action and inner markup. */
function forms(page: string): Array<{ action: string; body: string }> {
  return [...page.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map((m) => ({ action: /action="([^"]*)"/.exec(m[1]!)?.[1] ?? '', body: m[2]! }));
}

const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

describe('the html template', () => {
  it('escapes interpolated text and attribute values, and keeps nested html and raw() as markup', () => {
    const out = html`<p title="${'a"b'}">${SCRIPT}${['<b>', 1, html`<i>ok</i>`]}${raw('<hr>')}${null}${false}</p>`.toString();
    assert.equal(out, `<p title="a&quot;b">${ESCAPED_SCRIPT}&lt;b&gt;1<i>ok</i><hr></p>`);
  });

  it('formats rates with two decimals and times in UTC without milliseconds', () => {
    assert.equal(formatPercent(0.0125), '1.25%');
    assert.equal(formatPercent(null), '—');
    assert.equal(formatTime('2026-03-01T12:34:56.789Z'), '2026-03-01T12:34:56Z');
  });
});

describe('hostile report data comes out as text', () => {
  const hostile = view({
    state: 'halted',
    state_reason: ATTR_BREAK,
    sources: [
      {
        key: `${SCRIPT} dkim:evil.example`,
        ip: '203.0.113.9',
        dkimDomains: [SCRIPT],
        spfDomains: [],
        class: 'unaligned',
        classReason: `authenticates as ${SCRIPT}`,
        messages: 120,
        passed: 0,
        lookbackMessages: 300,
        lookbackPassed: 0,
        daysSeen: 4,
        blocking: true,
      },
    ],
    reporters: [{ reporter: SCRIPT, lastReportEnd: '2026-03-08T23:59:59Z', daysReported: 5, regular: true, quiet: true }],
    checks: [{ rule: 'quiet-reporter', outcome: 'failed', measured: SCRIPT, threshold: 3, detail: `${SCRIPT} went quiet` }],
    history: [{ id: 1, domain: 'example.com', at: '2026-03-01T00:00:00Z', from_stage: 'quarantine:50', to_stage: 'quarantine:100', action: 'advance', actor: 'daemon', reason: SCRIPT, record: SCRIPT }],
    audit: [{ id: 9, at: '2026-03-02T00:00:00Z', actor: SCRIPT, domain: 'example.com', action: 'halt', reason: ATTR_BREAK, details: { reporter: SCRIPT } }],
    daily: [{ day: '2026-03-01', messages: 10, authorised: 5, authorised_failed: 1, authorised_fail_rate: 0.2, spoofing: 5, stage: SCRIPT }],
  });

  it('escapes source keys, reporters, reasons and details on the domain page, inside text and attributes', () => {
    for (const ctx of [operator, viewer]) {
      const page = renderDomainPage(ctx, hostile);
      assert.ok(!page.includes('<script'), 'no script element reaches the page');
      assert.ok(!page.includes('onmouseover="alert(2)'), 'a quote in a reason cannot leave its attribute');
      assert.ok(page.includes(ESCAPED_SCRIPT), 'the hostile text is still shown, as text');
      assert.ok(page.includes('title="rate &quot;high&quot; &amp; rising&quot; onmouseover=&quot;alert(2)"'), 'the reason is the state tooltip, escaped');
      assert.match(page, /class="blocking"/, 'the blocking source is flagged');
    }
  });

  it('the reporters table says which receiver the engine waits for, for which day, and its usual delay', () => {
    const page = renderDomainPage(viewer, view({
      reporters: [
        { reporter: 'google.com', lastReportEnd: '2026-03-01T23:59:59Z', daysReported: 20, regular: true, quiet: false, late: true, usualDelaySeconds: 30 * 3600, awaitedDay: '2026-03-02' },
        { reporter: 'Yahoo', lastReportEnd: '2026-03-02T23:59:59Z', daysReported: 20, regular: true, quiet: false, usualDelaySeconds: 3.5 * 86400, awaitedDay: '2026-03-03' },
        { reporter: 'Mail.Ru', lastReportEnd: '2026-02-10T23:59:59Z', daysReported: 12, regular: true, quiet: true, acknowledgedBy: 'cli:otto' },
      ],
    }));
    const table = page.slice(page.indexOf('id="reporters"'));
    assert.match(table, /google\.com<\/td>[\s\S]*?30 h<\/td>[\s\S]*?late<\/span> its report for 2026-03-02 is past its usual delay/);
    assert.match(table, /Yahoo<\/td>[\s\S]*?3\.5 days<\/td>[\s\S]*?awaited for 2026-03-03/);
    assert.match(table, /Mail\.Ru<\/td>[\s\S]*?silence acknowledged by cli:otto/, 'an acknowledged silence is not shown as quiet');
  });

  it('escapes the state reason and decision summary on the fleet page', () => {
    const page = renderFleetPage(operator, {
      domains: [overview({ state: 'halted', state_reason: ATTR_BREAK, next_decision: { action: 'halt', to: null, summary: SCRIPT } })],
      filter: { q: `"><script>x</script>` },
    });
    assert.ok(!page.includes('<script'));
    assert.ok(!page.includes('onmouseover="alert(2)'));
    assert.ok(page.includes('value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"'), 'the search box echoes the query as a value');
  });

  it('escapes audit actors and reasons and error messages', () => {
    const audit = renderAuditPage(operator, { events: hostile.audit, filter: { actor: SCRIPT }, nextBefore: null });
    const error = renderErrorPage(null, 404, `no domain ${SCRIPT}`);
    const login = renderLoginPage({ csrfToken: 't', error: SCRIPT, next: `"><script>` });
    for (const page of [audit, error, login]) {
      assert.ok(!page.includes('<script'), page);
      assert.ok(page.includes('&lt;script&gt;'));
    }
  });
});

describe('action forms follow the role', () => {
  const awaiting = view({
    awaiting_approval: true,
    next_decision: { action: 'await-approval', to: 'reject:1', summary: 'reject:1 needs a person' },
  });

  it('a viewer sees the state but gets no form that posts to a domain action', () => {
    const page = renderDomainPage(viewer, awaiting);
    assert.deepEqual(
      forms(page).filter((f) => f.action.startsWith('/ui/domains/')),
      [],
    );
    assert.match(page, /awaiting approval/);
    assert.match(page, /Signed in as <strong class="user-name">victor<\/strong>/);
    const queue = renderApprovalsPage(viewer, { domains: [awaiting] });
    assert.deepEqual(
      forms(queue).filter((f) => f.action.startsWith('/ui/domains/')),
      [],
    );
  });

  it('an operator gets approve and pause forms carrying the CSRF token, named for the stage', () => {
    const page = renderDomainPage(operator, awaiting);
    const byAction = new Map(forms(page).map((f) => [f.action, f.body]));
    const approve = byAction.get('/ui/domains/example.com/approve');
    const pause = byAction.get('/ui/domains/example.com/pause');
    assert.ok(approve && pause, [...byAction.keys()].join(', '));
    for (const body of [approve, pause]) assert.match(body, /<input type="hidden" name="_csrf" value="csrf-op-123">/);
    assert.match(approve, /<button type="submit"[^>]*>Approve reject:1<\/button>/);
    assert.match(pause, /name="reason" required/, 'a pause needs a reason');
    assert.match(pause, />Pause<\/button>/);
    assert.ok(!byAction.has('/ui/domains/example.com/resume'), 'an active domain has nothing to resume');
    // Roll back offers the earlier stages, the previous one chosen.
    const rollback = byAction.get('/ui/domains/example.com/rollback')!;
    assert.match(rollback, /<option value="quarantine:50" selected>/);
    assert.equal([...rollback.matchAll(/<option /g)].length, 6);
    assert.ok(!rollback.includes('value="quarantine:100"'), 'not the current stage');
  });

  it('a halted domain offers resume, not pause; the first stage offers no rollback', () => {
    const halted = renderDomainPage(operator, view({ state: 'halted', state_reason: 'fail rate 6%', stage_number: 1, stage: 'none:100', next_stage: 'quarantine:1' }));
    const actions = forms(halted).map((f) => f.action);
    assert.ok(actions.includes('/ui/domains/example.com/resume'));
    assert.ok(!actions.includes('/ui/domains/example.com/pause'));
    assert.ok(!actions.includes('/ui/domains/example.com/rollback'));
    assert.ok(!actions.includes('/ui/domains/example.com/approve'), 'quarantine:1 needs no approval');
  });

  it('the approvals queue gives operators one approve form per domain', () => {
    const a = overview({ domain: 'a.example', awaiting_approval: true, next_decision: { action: 'await-approval', to: 'reject:1', summary: 's' } });
    const b = overview({ domain: 'b.example', awaiting_approval: true, next_decision: { action: 'await-approval', to: 'reject:1', summary: 's' } });
    const page = renderApprovalsPage(operator, { domains: [a, b] });
    const approveForms = forms(page).filter((f) => f.action.endsWith('/approve'));
    assert.deepEqual(
      approveForms.map((f) => f.action),
      ['/ui/domains/a.example/approve', '/ui/domains/b.example/approve'],
    );
    for (const f of approveForms) assert.match(f.body, /value="csrf-op-123"/);
  });
});

describe('the daily chart', () => {
  const days = ['2026-03-01', '2026-03-02', '2026-03-04', '2026-03-05'];
  const points: DailyPoint[] = days.map((day, i) => ({
    day,
    messages: 1000 + i * 10,
    authorised: 800,
    authorised_failed: 8 * i,
    authorised_fail_rate: (8 * i) / 800,
    spoofing: 150,
    stage: 'quarantine:1',
  }));
  const change = (id: number, at: string, to: string): StageChange => ({
    id,
    domain: 'example.com',
    at,
    from_stage: 'none:100',
    to_stage: to,
    action: 'advance',
    actor: 'daemon',
    reason: 'clean',
    record: 'v=DMARC1; p=quarantine',
  });

  it('draws a labelled dashed marker for each stage change inside the range and none outside it', () => {
    const history = [
      change(1, '2026-02-20T10:00:00Z', 'none:100'),
      change(2, '2026-03-01T06:00:00Z', 'quarantine:1'),
      change(3, '2026-03-03T12:00:00Z', 'quarantine:5'),
      change(4, '2026-03-05T23:00:00Z', 'quarantine:10'),
      change(5, '2026-03-06T01:00:00Z', 'quarantine:25'),
      { ...change(6, '2026-03-02T09:00:00Z', 'none:100'), action: 'enroll', record: null },
    ];
    const svg = renderDailyChart(points, history).toString();
    const markers = [...svg.matchAll(/<g class="stage-marker" data-stage="([^"]+)"[\s\S]*?<\/g>/g)];
    assert.deepEqual(
      markers.map((m) => m[1]),
      ['quarantine:1', 'quarantine:5', 'quarantine:10'],
    );
    for (const m of markers) {
      assert.match(m[0], /stroke-dasharray/);
      assert.match(m[0], new RegExp(`>${m[1]}</text>`), 'the marker is labelled with the stage');
    }
    assert.match(svg, /<svg[^>]*viewBox="0 0 \d+ \d+"/);
    assert.match(svg, /<title>Daily DMARC report volume from 2026-03-01 to 2026-03-05/);
    assert.match(svg, /class="bar-authorised"/);
    assert.match(svg, /class="bar-spoofing"/);
    assert.match(svg, /<path class="rate-line" d="M/);
    assert.match(svg, />2026-03-01<\/text>/, 'the time axis is labelled with dates');
    // The missing 3rd is an empty slot, not a skipped day: four days of bars over five slots.
    assert.equal([...svg.matchAll(/<g class="day"/g)].length, 4);
  });

  it('says there is no report data yet instead of drawing empty axes', () => {
    const out = renderDailyChart([], [change(1, '2026-03-01T06:00:00Z', 'quarantine:1')]).toString();
    assert.match(out, /No report data yet/);
    assert.ok(!out.includes('<svg'));
    assert.ok(!out.includes('stage-marker'));
  });
});

describe('the fleet page', () => {
  const domains = [
    overview({ domain: 'waiting.example', awaiting_approval: true, next_decision: { action: 'await-approval', to: 'reject:1', summary: 'reject:1 needs a person' } }),
    overview({ domain: 'paused.example', state: 'paused', state_reason: 'new gateway', next_decision: null }),
    overview({
      domain: 'moving.example',
      next_decision: null,
      change_in_flight: { action: 'rollback', to: 'quarantine:50', status: 'pending', attempts: 1, next_attempt_at: '2026-03-09T00:00:00Z', last_error: null, actor: 'web:olivia', reason: 'x' },
    }),
  ];

  it('links each domain, marks the one awaiting approval and the change in flight, and counts states', () => {
    const page = renderFleetPage(viewer, { domains, filter: {} });
    const table = /<table id="fleet">[\s\S]*?<\/table>/.exec(page)?.[0];
    assert.ok(table);
    const row = (d: string) => new RegExp(`<tr data-domain="${d.replace('.', '\\.')}"[\\s\\S]*?</tr>`).exec(table)?.[0] ?? '';
    assert.match(row('waiting.example'), /<a href="\/domains\/waiting\.example">waiting\.example<\/a>/);
    assert.match(row('waiting.example'), /awaiting approval/);
    assert.doesNotMatch(row('paused.example'), /awaiting approval/);
    assert.match(row('paused.example'), /<span class="state state-paused" title="new gateway">paused<\/span>/);
    assert.match(row('moving.example'), /change in flight<\/span> rollback → <span class="mono">quarantine:50<\/span>/);
    assert.match(row('waiting.example'), />1\.25%</);
    assert.match(row('waiting.example'), /7 of 13/);
    assert.match(page, /<strong>2<\/strong><span class="state state-active">active<\/span>/);
  });

  it('filters by state and by text while the counts still cover every domain given', () => {
    const page = renderFleetPage(viewer, { domains, filter: { state: 'paused' } });
    assert.match(page, /data-domain="paused\.example"/);
    assert.doesNotMatch(page, /data-domain="waiting\.example"/);
    assert.match(page, /<option value="paused" selected>/);
    assert.match(page, /<strong>3<\/strong>all/);
    const byText = renderFleetPage(viewer, { domains, filter: { q: 'MOVING' } });
    assert.deepEqual([...byText.matchAll(/<tr data-domain="([^"]+)"/g)].map((m) => m[1]), ['moving.example']);
  });

  it('says when a domain’s figures are stale, and from when, in the table and the approvals queue', () => {
    const stale = overview({
      domain: 'stale.example',
      awaiting_approval: true,
      next_decision: { action: 'await-approval', to: 'reject:1', summary: 'reject:1 needs a person' },
      assessed_at: '2026-03-08T23:00:00.000Z',
      figures_stale: true,
    });
    const fresh = overview({ domain: 'fresh.example', assessed_at: '2026-03-09T00:10:00.000Z' });
    const note = /figures as of 2026-03-08T23:00:00Z/;
    for (const page of [renderFleetPage(viewer, { domains: [stale, fresh], filter: {} }), renderApprovalsPage(viewer, { domains: [stale, fresh] })]) {
      const row = (d: string) => new RegExp(`<tr data-domain="${d.replace('.', '\\.')}"[\\s\\S]*?</tr>`).exec(page)?.[0] ?? '';
      assert.match(row('stale.example'), note);
      assert.doesNotMatch(row('fresh.example'), /figures as of/);
    }
  });
});

describe('the audit page', () => {
  const events: AuditEntryView[] = [{ id: 41, at: '2026-03-02T10:00:00.500Z', actor: 'web:olivia', domain: 'a.example', action: 'pause', reason: 'gateway', details: null }];

  it('the Older link continues from nextBefore with the same filters', () => {
    const page = renderAuditPage(operator, { events, filter: { domain: 'a.example', actor: 'web:olivia', action: 'pause' }, nextBefore: 41 });
    const href = /<a rel="next" class="older" href="([^"]+)">Older<\/a>/.exec(page)?.[1];
    assert.ok(href, 'an Older link');
    const url = new URL(unescape(href), 'http://localhost');
    assert.equal(url.pathname, '/audit');
    assert.deepEqual(Object.fromEntries(url.searchParams), { before: '41', domain: 'a.example', actor: 'web:olivia', action: 'pause' });
    assert.match(page, /<table id="audit">[\s\S]*2026-03-02T10:00:00Z[\s\S]*<a href="\/domains\/a\.example">a\.example<\/a>/);
  });

  it('has no Older link on the last page', () => {
    assert.doesNotMatch(renderAuditPage(operator, { events, filter: {}, nextBefore: null }), /Older/);
  });
});

describe('the layout', () => {
  it('shows the user, the navigation, a CSRF-protected logout and the flash message', () => {
    const page = renderFleetPage({ ...operator, flash: { kind: 'error', text: 'could not pause' } }, { domains: [], filter: {} });
    assert.match(page, /^<!doctype html>/);
    assert.match(page, /<meta charset="utf-8">/);
    assert.match(page, /<link rel="stylesheet" href="\/assets\/app\.css">/);
    for (const href of ['/', '/approvals', '/audit']) assert.match(page, new RegExp(`<nav[\\s\\S]*href="${href}"[\\s\\S]*</nav>`));
    const logout = forms(page).find((f) => f.action === '/ui/logout');
    assert.ok(logout);
    assert.match(logout.body, /name="_csrf" value="csrf-op-123"/);
    assert.match(page, /role="status">could not pause</);
    assert.match(page, /olivia[\s\S]*operator/);
  });

  it('the login form posts the token, the CSRF token and where to go next', () => {
    const page = renderLoginPage({ csrfToken: 'csrf-login', next: '/domains/a.example' });
    const [form] = forms(page);
    assert.equal(form?.action, '/ui/login');
    assert.match(form!.body, /<input type="password" id="token" name="token"/);
    assert.match(form!.body, /<label for="token">API token/);
    assert.match(form!.body, /name="_csrf" value="csrf-login"/);
    assert.match(form!.body, /name="next" value="\/domains\/a\.example"/);
  });
});

for (const dialect of storeDialects()) {
  describe(`pages from a real store, on ${dialect.name}`, () => {
    const DAY_MS = 86_400_000;
    const START = Date.parse('2026-01-05T00:00:00Z');
    const DAYS = 20;
    let pages: { operator: string; viewer: string; fleet: string; view: DomainView };

    before(async () => {
      // Each day's report arrives at noon the next day, just before that day's tick.
      const w = await createWorld({ dialect, start: new Date(START), tickHours: [12] });
      const store = w.store;
      try {
        await w.enrol(['shop.example']);
        const days = Array.from({ length: DAYS - 1 }, (_, d) => new Date(START + d * DAY_MS).toISOString().slice(0, 10));
        await w.sendReports(
          days.map((day) => ({ reporter: SCRIPT, domain: 'shop.example', day, rows: [cleanRow('shop.example', '192.0.2.10', 400), spoofRow('shop.example', '203.0.113.66', 40)] })),
          12,
        );
        for (const { result: r } of await w.runUntil(new Date(START + (DAYS - 1) * DAY_MS + 12 * 3600_000))) if (r.error) assert.fail(r.error);
        const now = w.now();
        const v = (await domainView(store, 'shop.example', now))!;
        pages = {
          view: v,
          operator: renderDomainPage(operator, v),
          viewer: renderDomainPage(viewer, v),
          fleet: renderFleetPage(operator, { domains: await fleetOverview(store, now), filter: {} }),
        };
      } finally {
        await w.close();
      }
    });

    it('shows the hostile reporter name as text', () => {
      assert.ok(pages.view.reporters.some((r) => r.reporter === SCRIPT), 'the reporter reached the view');
      for (const page of [pages.operator, pages.viewer]) {
        assert.ok(!page.includes('<script'));
        assert.ok(page.includes(ESCAPED_SCRIPT));
      }
    });

    it('marks every stage change that falls within the chart’s days', () => {
      const { daily, history } = pages.view;
      assert.ok(daily.length >= DAYS - 2);
      const start = Date.parse(`${daily[0]!.day}T00:00:00Z`);
      const end = Date.parse(`${daily.at(-1)!.day}T00:00:00Z`) + DAY_MS;
      const expected = history.filter((h) => h.record !== null && Date.parse(h.at) >= start && Date.parse(h.at) < end).map((h) => h.to_stage);
      assert.ok(expected.includes('quarantine:1'), `the domain advanced in the period: ${JSON.stringify(history)}`);
      const markers = [...pages.operator.matchAll(/<g class="stage-marker" data-stage="([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(markers, expected);
    });

    it('gives the operator forms for the live domain and the viewer none', () => {
      assert.ok(forms(pages.operator).some((f) => f.action === '/ui/domains/shop.example/pause'));
      assert.deepEqual(
        forms(pages.viewer).filter((f) => f.action.startsWith('/ui/domains/')),
        [],
      );
      assert.match(pages.fleet, /<a href="\/domains\/shop\.example">shop\.example<\/a>/);
    });
  });
}

describe('nothing is loaded from another site', () => {
  it('no page and not the stylesheet names an http or https URL', () => {
    const awaiting = view({
      awaiting_approval: true,
      next_decision: { action: 'await-approval', to: 'reject:1', summary: 's' },
      daily: [{ day: '2026-03-01', messages: 10, authorised: 5, authorised_failed: 1, authorised_fail_rate: 0.2, spoofing: 5, stage: 'quarantine:100' }],
    });
    const all = [
      APP_CSS,
      renderLoginPage({ csrfToken: 't' }),
      renderFleetPage(operator, { domains: [awaiting], filter: {} }),
      renderDomainPage(operator, awaiting),
      renderDomainPage(viewer, awaiting),
      renderApprovalsPage(operator, { domains: [awaiting] }),
      renderAuditPage(operator, { events: [], filter: {}, nextBefore: 5 }),
      renderErrorPage(operator, 500, 'boom'),
      renderErrorPage(null, 404, 'gone'),
    ];
    for (const text of all) {
      assert.doesNotMatch(text, /https?:\/\//i);
      assert.doesNotMatch(text, /@import|url\(/i, 'the stylesheet pulls nothing in either');
    }
  });
});
