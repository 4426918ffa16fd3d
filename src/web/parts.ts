/**
 * Pieces more than one page shows the same way: a domain's state badge, its
 * stage with its position in the plan, what the next tick would do, and the
 * approve form (on the domain page and in the approvals queue), the audit
 * table (the audit page and a domain's). One place, so
 * the fleet table and the domain page can never word the same fact differently.
 */
import type { AuditEntryView, DomainOverview } from '../fleet/views.js';
import { domainActionPath, domainPath, formatTime } from './format.js';
import { html, type SafeHtml } from './html.js';
import { csrfField } from './layout.js';

/** The states in the order the page lists them. */
export const STATES = ['active', 'paused', 'halted', 'completed'] as const;

/** `active`, coloured by state; the reason, when there is one, as its tooltip. */
export function stateBadge(state: string, reason: string | null): SafeHtml {
  return html`<span class="state state-${cssToken(state)}"${reason ? html` title="${reason}"` : ''}>${state}</span>`;
}

/** `quarantine:5 (3 of 13)`, or the stage number and why the plan could not be read. */
export function stageText(d: Pick<DomainOverview, 'stage' | 'stage_number' | 'stage_count' | 'plan_problem'>): SafeHtml {
  const position = d.stage_count === null ? html`stage ${d.stage_number}` : html`${d.stage_number} of ${d.stage_count}`;
  if (d.stage === null) {
    return html`<span class="stage stage-unknown" title="${d.plan_problem ?? 'plan not loaded'}">${position} <span class="muted">(plan problem)</span></span>`;
  }
  return html`<span class="stage"><span class="mono">${d.stage}</span> <span class="muted">(${position})</span></span>`;
}

/**
 * What happens next, in a table cell: a change already on its way, a wait for
 * a person, an approval given, the decision the next tick would make, or why
 * the domain is not being judged.
 */
export function nextDecisionText(d: DomainOverview): SafeHtml {
  if (d.change_in_flight) {
    const c = d.change_in_flight;
    const tip = c.last_error ? `last attempt failed: ${c.last_error}` : `${c.reason} (by ${c.actor})`;
    if (d.stuck) {
      return html`<span class="badge badge-stuck" title="${tip}">stuck</span> ${c.action} → <span class="mono">${c.to}</span> <span class="muted">(failed ${d.stuck.attempts} times)</span>`;
    }
    return html`<span class="badge badge-inflight" title="${tip}">change in flight</span> ${c.action} → <span class="mono">${c.to}</span> <span class="muted">(${c.status}${c.attempts > 0 ? `, ${c.attempts} attempt${c.attempts === 1 ? '' : 's'}` : ''})</span>`;
  }
  if (d.awaiting_approval) {
    return html`<span class="badge badge-approval" title="${d.next_decision?.summary ?? ''}">awaiting approval</span> → <span class="mono">${d.next_decision?.to ?? '?'}</span>`;
  }
  const approved = d.approved_stage ? html` <span class="badge badge-approval" title="a person approved it; the tick moves there once the current stage is clean">approved: ${d.approved_stage}</span>` : '';
  if (d.next_decision) {
    const n = d.next_decision;
    return html`<span class="decision decision-${cssToken(n.action)}" title="${n.summary}">${n.action}${n.to ? html` → <span class="mono">${n.to}</span>` : ''}</span>${approved}`;
  }
  const why = d.plan_problem ? `not judged: ${d.plan_problem}` : d.state === 'active' ? 'not judged' : `not judged while ${d.state}`;
  return html`<span class="muted" title="${why}">—</span>${approved}`;
}

/**
 * Said beside figures that a change has made stale and that were not
 * measured again for this page (its budget of work ran out): they are the
 * tick's, from the time shown.
 */
export function staleFiguresNote(d: DomainOverview): SafeHtml {
  if (!d.figures_stale) return html``;
  return html` <span class="muted stale-figures" title="a report, a rule or the domain changed since; the next tick measures it again">figures as of ${formatTime(d.assessed_at)}</span>`;
}

/**
 * The approve form. The button's text starts with "Approve" and names the
 * stage; `forDomain` adds the domain to its accessible name where several
 * such buttons share a page.
 */
export function approveForm(opts: { domain: string; stage: string; csrfToken: string; forDomain?: boolean; idPrefix?: string }): SafeHtml {
  const id = `${opts.idPrefix ?? ''}approve-reason`;
  return html`<form method="post" action="${domainActionPath(opts.domain, 'approve')}" class="action action-approve">
${csrfField(opts.csrfToken)}
<label for="${id}">Approval note <input type="text" id="${id}" name="reason" maxlength="500" placeholder="optional"></label>
<button type="submit" class="primary">Approve ${opts.stage}${opts.forDomain ? html`<span class="visually-hidden"> for ${opts.domain}</span>` : ''}</button>
</form>`;
}

/** An event's details (JSON from the engine: measurements, rules) folded away; shown as data, never as markup. */
export function detailsBlock(details: unknown): SafeHtml {
  if (details === null || details === undefined) return html``;
  const text = typeof details === 'string' ? details : JSON.stringify(details, null, 2);
  return html`<details><summary>details</summary><pre class="record">${text}</pre></details>`;
}

/** A value safe to use inside a class name (states and actions are ours, but the page never assumes). */
export function cssToken(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
}

/** The audit log as a table, with a domain column unless every event is one domain's. */
export function auditTable(events: AuditEntryView[], opts: { id: string; withDomain: boolean }): SafeHtml {
  return html`<div class="table-wrap"><table id="${opts.id}">
<thead><tr><th scope="col">Time (UTC)</th><th scope="col">Actor</th>${opts.withDomain ? html`<th scope="col">Domain</th>` : ''}<th scope="col">Action</th><th scope="col">Reason</th><th scope="col">Details</th></tr></thead>
<tbody>
${events.map(
  (e) => html`<tr data-id="${e.id}">
<td><time datetime="${formatTime(e.at)}">${formatTime(e.at)}</time></td>
<td>${e.actor}</td>
${opts.withDomain ? html`<td class="domain">${e.domain === null ? html`<span class="muted">fleet</span>` : html`<a href="${domainPath(e.domain)}">${e.domain}</a>`}</td>` : ''}
<td>${e.action}</td>
<td>${e.reason}</td>
<td>${detailsBlock(e.details)}</td>
</tr>`,
)}
</tbody>
</table></div>`;
}
