/**
 * The web page's documents: sign-in, the fleet at a glance, the approvals
 * queue, the audit log and the error page (the domain page lives in
 * domain-page.ts and is re-exported here). Pure functions: view values from
 * src/fleet/views.ts in, a complete HTML document out. The routes in src/api
 * fetch the data, check roles and CSRF; these only decide what a person sees,
 * and never show an action form to a viewer.
 */
import type { AuditEntryView, DomainOverview } from '../fleet/views.js';
import { domainPath, formatCount, formatPercent, queryString } from './format.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, renderLayout, type PageContext } from './layout.js';
import { approveForm, auditTable, nextDecisionText, STATES, stageText, staleFiguresNote, stateBadge } from './parts.js';

export { renderDomainPage } from './domain-page.js';
export type { PageContext, PageUser } from './layout.js';

/**
 * The sign-in form: posts `token` (the API token), `_csrf` and `next` (where
 * to go after) to `/ui/login`. `next` is echoed as given; the route must
 * accept only a local path when it redirects.
 */
export function renderLoginPage(opts: { csrfToken: string; error?: string; next?: string }): string {
  const body = html`<section class="login">
<h1>Sign in</h1>
${opts.error ? html`<p class="flash flash-error" role="alert">${opts.error}</p>` : ''}
<form method="post" action="/ui/login">
${csrfField(opts.csrfToken)}
<input type="hidden" name="next" value="${opts.next ?? '/'}">
<label for="token">API token <input type="password" id="token" name="token" required autocomplete="current-password" autofocus></label>
<button type="submit" class="primary">Sign in</button>
</form>
<p class="muted">Use the API token you were given: a viewer token shows the fleet; an operator token can also approve, pause, resume and roll back.</p>
</section>`;
  return renderLayout({ title: 'Sign in', ctx: null, body });
}

/** The whole fleet's counts, when the page shows one page of it (the counts then cannot come from the rows). */
export interface FleetCounts {
  all: number;
  byState: Record<string, number>;
  awaiting: number;
}

/** Where a page of the fleet is: the first row's offset, how many match the filter, and the neighbouring pages' offsets. */
export interface FleetPager {
  offset: number;
  total: number;
  nextOffset: number | null;
  prevOffset: number | null;
}

/**
 * The fleet at a glance: counts per state, a filter form (GET `/` with
 * `state` and `q`) and the table `#fleet`, one row per domain. Given the
 * whole fleet, the page applies the filter itself and counts every domain
 * passed in; given one page of it (`counts` and `pager`, the daemon's way
 * on a large fleet), it shows the counts given and links to the pages
 * before and after.
 */
export function renderFleetPage(
  ctx: PageContext,
  opts: { domains: DomainOverview[]; filter: { state?: string; q?: string }; counts?: FleetCounts; pager?: FleetPager },
): string {
  const state = opts.filter.state && (STATES as readonly string[]).includes(opts.filter.state) ? opts.filter.state : undefined;
  const q = opts.filter.q?.trim().toLowerCase() || undefined;
  const shown = opts.domains.filter((d) => (state === undefined || d.state === state) && (q === undefined || d.domain.toLowerCase().includes(q)));
  const awaiting = opts.counts?.awaiting ?? opts.domains.filter((d) => d.awaiting_approval).length;

  const counts = html`<ul class="counts" aria-label="Domains by state">
<li><a href="/"${state === undefined ? html` aria-current="true"` : ''}><strong>${formatCount(opts.counts?.all ?? opts.domains.length)}</strong>all</a></li>
${STATES.map((s) => {
    const n = opts.counts?.byState[s] ?? opts.domains.filter((d) => d.state === s).length;
    return html`<li><a href="/${queryString({ state: s })}" class="count-${s}"${state === s ? html` aria-current="true"` : ''}><strong>${formatCount(n)}</strong>${stateBadge(s, null)}</a></li>`;
  })}
<li><a href="/approvals"><strong>${formatCount(awaiting)}</strong><span class="badge badge-approval">awaiting approval</span></a></li>
</ul>`;

  const filterForm = html`<form class="filter" method="get" action="/" role="search" aria-label="Filter the fleet">
<label for="filter-state">State <select id="filter-state" name="state">
<option value=""${state === undefined ? html` selected` : ''}>All states</option>
${STATES.map((s) => html`<option value="${s}"${state === s ? html` selected` : ''}>${s}</option>`)}
</select></label>
<label for="filter-q">Domain contains <input type="search" id="filter-q" name="q" value="${opts.filter.q ?? ''}"></label>
<button type="submit">Filter</button>
${state !== undefined || q !== undefined ? html`<a href="/">Clear</a>` : ''}
</form>`;

  const rows = shown.map(
    (d) => html`<tr data-domain="${d.domain}" data-state="${d.state}"${d.awaiting_approval ? html` class="awaiting-approval"` : ''}>
<td class="domain"><a href="${domainPath(d.domain)}">${d.domain}</a></td>
<td>${stageText(d)}</td>
<td>${stateBadge(d.state, d.state_reason)}</td>
<td class="num" title="${formatCount(d.authorised_messages)} authorised message(s) in the stage window">${formatPercent(d.authorised_fail_rate)}</td>
<td class="num">${formatCount(d.spoofing_messages)}</td>
<td class="num">${d.days_in_stage === null ? html`<span title="the stage is not in effect yet">—</span>` : formatCount(d.days_in_stage)}</td>
<td>${nextDecisionText(d)}${d.blocking_sources > 0 ? html` <span class="badge badge-blocking" title="unaligned sources hold the domain until someone allowlists them or marks them as abuse">${d.blocking_sources} blocking source${d.blocking_sources === 1 ? '' : 's'}</span>` : ''}${staleFiguresNote(d)}</td>
</tr>`,
  );

  const enrolled = opts.counts?.all ?? opts.domains.length;
  const table =
    shown.length === 0
      ? html`<p class="empty">${enrolled === 0 ? 'No domains are enrolled yet. Enroll some with dmarc-rollout enroll.' : 'No domain matches the filter.'}</p>`
      : html`<div class="table-wrap"><table id="fleet">
<caption class="visually-hidden">Enrolled domains</caption>
<thead><tr><th scope="col">Domain</th><th scope="col">Stage</th><th scope="col">State</th><th scope="col" class="num">Authorised fail rate</th><th scope="col" class="num">Spoofing</th><th scope="col" class="num">Days in stage</th><th scope="col">Next decision</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>`;

  const p = opts.pager;
  const pager =
    p && (p.nextOffset !== null || p.prevOffset !== null)
      ? html`<p class="pager">${formatCount(p.offset + 1)}–${formatCount(p.offset + shown.length)} of ${formatCount(p.total)}${
          p.prevOffset !== null ? html` <a rel="prev" href="/${queryString({ state, q: opts.filter.q, offset: p.prevOffset || null })}">Previous</a>` : ''
        }${p.nextOffset !== null ? html` <a rel="next" href="/${queryString({ state, q: opts.filter.q, offset: p.nextOffset })}">Next</a>` : ''}</p>`
      : '';

  const body = html`<h1>Fleet</h1>
${counts}
${filterForm}
${table}
${pager}`;
  return renderLayout({ title: 'Fleet', ctx, section: 'fleet', body });
}

/**
 * The approvals queue: domains whose next stage waits for a person, and those
 * approved but not moved yet. Operators get an Approve form per domain
 * (posting to `/ui/domains/<domain>/approve`); viewers see the queue only.
 */
export function renderApprovalsPage(ctx: PageContext, opts: { domains: DomainOverview[] }): string {
  const operator = ctx.user.role === 'operator';
  const rows = opts.domains.map((d, i) => {
    const to = d.approved_stage ?? d.next_decision?.to ?? null;
    let action: SafeHtml;
    if (d.approved_stage !== null) {
      action = html`<span class="badge badge-approval">approved</span> <span class="muted">the next tick moves it once the current stage is clean</span>`;
    } else if (!operator) {
      action = html`<span class="muted">an operator can approve</span>`;
    } else if (to === null) {
      action = html`<span class="muted">nothing to approve: no next stage</span>`;
    } else {
      action = approveForm({ domain: d.domain, stage: to, csrfToken: ctx.csrfToken, forDomain: true, idPrefix: `q${i}-` });
    }
    return html`<tr data-domain="${d.domain}">
<td class="domain"><a href="${domainPath(d.domain)}">${d.domain}</a></td>
<td>${stageText(d)} ${stateBadge(d.state, d.state_reason)}</td>
<td><span class="mono">${to ?? '—'}</span></td>
<td class="num">${formatPercent(d.authorised_fail_rate)}</td>
<td class="num">${d.days_in_stage === null ? '—' : formatCount(d.days_in_stage)}</td>
<td>${d.next_decision?.summary ?? ''}${staleFiguresNote(d)}</td>
<td>${action}</td>
</tr>`;
  });
  const body = html`<h1>Approvals</h1>
<p>Stages a plan marks as needing a person (the default plan gates reject:1, the first step that bounces mail). Approving lets the next tick advance once the current stage’s figures are clean; it does not skip any check.</p>
${
  opts.domains.length === 0
    ? html`<p class="empty">Nothing waits for approval.</p>`
    : html`<div class="table-wrap"><table id="approvals">
<thead><tr><th scope="col">Domain</th><th scope="col">Stage now</th><th scope="col">Next stage</th><th scope="col" class="num">Authorised fail rate</th><th scope="col" class="num">Days in stage</th><th scope="col">Why</th><th scope="col">Action</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>`
}`;
  return renderLayout({ title: 'Approvals', ctx, section: 'approvals', body });
}

/**
 * The audit log, newest first: a filter form (GET `/audit` with `domain`,
 * `actor`, `action`), the table `#audit`, and an "Older" link carrying
 * `before=<nextBefore>` and the same filters when there is more.
 */
export function renderAuditPage(
  ctx: PageContext,
  opts: { events: AuditEntryView[]; filter: { domain?: string; actor?: string; action?: string }; nextBefore: number | null },
): string {
  const f = opts.filter;
  const filtered = Boolean(f.domain || f.actor || f.action);
  const filterForm = html`<form class="filter" method="get" action="/audit" role="search" aria-label="Filter the audit log">
<label for="audit-domain">Domain <input type="text" id="audit-domain" name="domain" value="${f.domain ?? ''}"></label>
<label for="audit-actor">Actor <input type="text" id="audit-actor" name="actor" value="${f.actor ?? ''}"></label>
<label for="audit-action">Action <input type="text" id="audit-action" name="action" value="${f.action ?? ''}"></label>
<button type="submit">Filter</button>
${filtered ? html`<a href="/audit">Clear</a>` : ''}
</form>`;
  const older =
    opts.nextBefore === null
      ? ''
      : html`<p class="pager"><a rel="next" class="older" href="/audit${queryString({ before: opts.nextBefore, domain: f.domain, actor: f.actor, action: f.action })}">Older</a></p>`;
  const body = html`<h1>Audit log</h1>
<p>Everything the daemon and people did, and why, newest first.</p>
${filterForm}
${
  opts.events.length === 0
    ? html`<p class="empty">${filtered ? 'No audit events match the filter.' : 'No audit events yet.'}</p>`
    : auditTable(opts.events, { id: 'audit', withDomain: true })
}
${older}`;
  return renderLayout({ title: 'Audit log', ctx, section: 'audit', body });
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request',
  401: 'Not signed in',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  422: 'Cannot do that',
  429: 'Too many requests',
  500: 'Something went wrong',
  503: 'Unavailable',
};

/** An error as a page: the status, the message in plain words, and a way back (the fleet, or sign-in when signed out). */
export function renderErrorPage(ctx: PageContext | null, status: number, message: string): string {
  const title = STATUS_TEXT[status] ?? (status >= 500 ? 'Something went wrong' : 'Error');
  const body = html`<h1>${title} <span class="muted">(${status})</span></h1>
<p class="error-message">${message}</p>
<p>${ctx ? html`<a href="/">Back to the fleet</a>` : html`<a href="/login">Sign in</a>`}</p>`;
  return renderLayout({ title: `${status} ${title}`, ctx, body });
}
