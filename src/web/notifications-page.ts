/**
 * The notifications page: each channel with its pending, delivered and
 * undeliverable counts, recent messages with their delivery state and last
 * error, and the same summary the weekly mail carries (the chart drawn with
 * <progress> elements, which need no inline style under the page's CSP).
 */
import { formatPercent, formatTime, domainPath, queryString } from './format.js';
import { html } from './html.js';
import { csrfField, renderLayout, type PageContext } from './layout.js';

/** What the page shows of the summary (src/notify/summary.ts builds it; the page is below notify, so it names only what it reads). */
export interface SummaryShown {
  since: string;
  totals: { domains: number; by_state: Record<'active' | 'paused' | 'halted' | 'completed', number>; at_reject_100: number; moved: number };
  stages: ReadonlyArray<{ stage: string; domains: number }>;
  waiting: ReadonlyArray<{ domain: string; why: string }>;
  /** How many a large fleet's summary left out of `domains` and `waiting`. */
  omitted: { domains: number; waiting: number };
  domains: ReadonlyArray<{
    domain: string;
    stage: string | null;
    stage_number: number;
    stage_count: number | null;
    state: string;
    authorised_fail_rate: number | null;
    moves: ReadonlyArray<{ at: string; from: string | null; to: string; action: string }>;
  }>;
}

/** What the page shows of the channels and messages (src/notify/views.ts builds it). */
export interface NotificationsShown {
  channels: ReadonlyArray<{ name: string; type: string; target: string | null; events: readonly string[] | null; min_severity: string; tags: readonly string[] | null; pending: number; delivered: number; failed: number }>;
  messages: ReadonlyArray<{
    key: string;
    channel: string;
    kind: string;
    title: string;
    domains: readonly string[];
    status: 'pending' | 'delivered' | 'failed';
    attempts: number;
    created_at: string;
    next_attempt_at: string | null;
    delivered_at: string | null;
    last_error: string | null;
  }>;
  next_before: number | null;
}

const STATUS_CLASS = { delivered: 'outcome-passed', pending: 'outcome-inconclusive', failed: 'outcome-failed' } as const;

export function renderNotificationsPage(ctx: PageContext, opts: { view: NotificationsShown; summary: SummaryShown; filter: { status?: string; channel?: string } }): string {
  const { view, summary, filter } = opts;
  const channels =
    view.channels.length === 0
      ? html`<p class="empty">No channels configured: add <span class="mono">notifications.channels</span> to the daemon config.</p>`
      : html`<div class="table-wrap"><table id="channels">
<thead><tr><th scope="col">Channel</th><th scope="col">Type</th><th scope="col">Receives</th><th scope="col" class="num">Pending</th><th scope="col" class="num">Delivered</th><th scope="col" class="num">Undeliverable</th></tr></thead>
<tbody>${view.channels.map(
          (c) => html`<tr data-channel="${c.name}">
<td><a href="/notifications${queryString({ channel: c.name })}">${c.name}</a></td>
<td>${c.type}${c.target ? html` <span class="muted">${c.target}</span>` : ''}</td>
<td>${c.events ? c.events.join(', ') : 'every event'}; ${c.min_severity} and above${c.tags ? html`; tags ${c.tags.join(', ')}` : ''}</td>
<td class="num">${c.pending}</td><td class="num">${c.delivered}</td><td class="num${c.failed > 0 ? ' outcome-failed' : ''}">${c.failed > 0 ? html`<a href="/notifications${queryString({ status: 'failed', channel: c.name })}">${c.failed}</a>${
            ctx.user.role === 'operator'
              ? html` <form class="inline" method="post" action="/ui/notifications/retry">${csrfField(ctx.csrfToken)}<input type="hidden" name="channel" value="${c.name}"><button type="submit">Retry</button></form>`
              : ''
          }` : '0'}</td>
</tr>`,
        )}</tbody></table></div>`;

  const filters = html`<p class="filter">Show: ${(['all', 'pending', 'failed', 'delivered'] as const).map((s) => {
    const current = (filter.status ?? 'all') === s;
    const href = `/notifications${queryString({ status: s === 'all' ? undefined : s, channel: filter.channel })}`;
    return html`<a href="${href}"${current ? html` aria-current="true"` : ''}>${s}</a> `;
  })}${filter.channel ? html` · channel ${filter.channel} (<a href="/notifications${queryString({ status: filter.status })}">all channels</a>)` : ''}</p>`;

  const messages =
    view.messages.length === 0
      ? html`<p class="empty">No messages${filter.status || filter.channel ? ' match' : ' yet'}.</p>`
      : html`<div class="table-wrap"><table id="messages">
<thead><tr><th scope="col">Created</th><th scope="col">Channel</th><th scope="col">Message</th><th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Next attempt / delivered</th><th scope="col">Last error</th></tr></thead>
<tbody>${view.messages.map(
          (m) => html`<tr data-key="${m.key}" data-status="${m.status}">
<td class="mono">${formatTime(m.created_at)}</td>
<td>${m.channel}</td>
<td>${m.title}${m.domains.length > 0 ? html`<br><span class="muted">${m.domains.map((d, i) => html`${i > 0 ? ', ' : ''}<a href="${domainPath(d)}">${d}</a>`)}</span>` : ''}<br><span class="muted mono">${m.kind} · ${m.key}</span></td>
<td class="${STATUS_CLASS[m.status]}">${m.status === 'failed' ? 'undeliverable' : m.status}</td>
<td class="num">${m.attempts}</td>
<td class="mono">${m.status === 'delivered' ? formatTime(m.delivered_at) : m.status === 'pending' ? formatTime(m.next_attempt_at) : '—'}</td>
<td>${m.last_error ?? ''}</td>
</tr>`,
        )}</tbody></table></div>`;
  const older =
    view.next_before === null
      ? ''
      : html`<p class="pager"><a rel="next" class="older" href="/notifications${queryString({ before: view.next_before, status: filter.status, channel: filter.channel })}">Older</a></p>`;

  const body = html`<h1>Notifications</h1>
<p>What the daemon announced and whether each channel received it. Undeliverable messages are kept with their last error; <span class="mono">dmarc-rollout notify retry</span> queues them again once the receiver is fixed.</p>
<h2>Channels</h2>
${channels}
<h2>Messages</h2>
${filters}
${messages}
${older}
${renderSummary(summary)}`;
  return renderLayout({ title: 'Notifications', ctx, section: 'notifications', body });
}

/** The summary block: the same figures as the weekly mail. */
export function renderSummary(s: SummaryShown) {
  const max = Math.max(1, ...s.stages.map((x) => x.domains));
  const moved = s.domains.filter((d) => d.moves.length > 0);
  return html`<section id="summary" aria-labelledby="summary-title">
<h2 id="summary-title">Summary since ${formatTime(s.since)}</h2>
<p>${s.totals.domains} domains: ${s.totals.by_state.active} active, ${s.totals.by_state.completed} complete, ${s.totals.by_state.halted} halted, ${s.totals.by_state.paused} paused; ${s.totals.at_reject_100} at reject:100; ${s.totals.moved} moved.</p>
<h3>Fleet by stage</h3>
<table id="summary-stages"><tbody>${s.stages.map(
    (st) => html`<tr><th scope="row" class="mono">${st.stage}</th><td><progress max="${max}" value="${st.domains}">${st.domains}</progress></td><td class="num">${st.domains}</td></tr>`,
  )}</tbody></table>
<h3>Waiting for a person</h3>
${s.waiting.length === 0 ? html`<p class="empty">Nothing waits for a person.</p>` : html`<ul id="summary-waiting">${s.waiting.map((w) => html`<li><a href="${domainPath(w.domain)}">${w.domain}</a>: ${w.why}</li>`)}</ul>`}
${s.omitted.waiting > 0 ? html`<p class="muted">…and ${s.omitted.waiting} more: <a href="/approvals">approvals</a>, and the <a href="/">fleet</a> by state.</p>` : ''}
<h3>Moved</h3>
${
  moved.length === 0
    ? html`<p class="empty">No domain moved in the period.</p>`
    : html`<ul id="summary-moved">${moved.map((d) => html`<li><a href="${domainPath(d.domain)}">${d.domain}</a>: ${d.moves.map((m, i) => html`${i > 0 ? '; ' : ''}${m.from ?? '—'} → ${m.to} (${m.action}, ${formatTime(m.at)})`)}</li>`)}</ul>`
}
<h3>Progress</h3>
<div class="table-wrap"><table id="summary-domains"><thead><tr><th scope="col">Domain</th><th scope="col">Stage</th><th scope="col">Progress</th><th scope="col">State</th><th scope="col" class="num">Authorised fail rate</th></tr></thead><tbody>${s.domains.map(
    (d) => html`<tr><td><a href="${domainPath(d.domain)}">${d.domain}</a></td><td class="mono">${d.stage ?? 'unknown'}</td><td><progress max="${d.stage_count ?? 1}" value="${d.stage_number}">${d.stage_number}/${d.stage_count ?? '?'}</progress> <span class="muted">${d.stage_number}/${d.stage_count ?? '?'}</span></td><td>${d.state}</td><td class="num">${formatPercent(d.authorised_fail_rate)}</td></tr>`,
  )}</tbody></table></div>
${s.omitted.domains > 0 ? html`<p class="muted">…and ${s.omitted.domains} more that hold where they are; every domain is on the <a href="/">fleet page</a>.</p>` : ''}
</section>`;
}
