/**
 * One domain in depth: where it stands and why, what the next tick would do
 * and the checks behind it, the daily chart, the record now and next, its
 * sending sources by class, its reporters, stage history and audit trail. An
 * operator also gets the forms (approve, pause, resume, roll back); a viewer
 * sees the same facts with no form that could change anything.
 */
import { CLASS_TITLES } from '../app/explain.js';
import type { DomainView } from '../fleet/views.js';
import { renderDailyChart } from './chart.js';
import { domainActionPath, formatCount, formatDelay, formatMeasure, formatPercent, formatTime, queryString } from './format.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, renderLayout, type PageContext } from './layout.js';
import { approveForm, auditTable, cssToken, nextDecisionText, stageText, stateBadge } from './parts.js';

/** The domain page for `view`, with action forms only when `ctx.user.role` is operator. */
export function renderDomainPage(ctx: PageContext, view: DomainView): string {
  const body = html`<h1>${view.domain}</h1>
<p class="lede">Stage ${stageText(view)} · ${stateBadge(view.state, view.state_reason)}${view.state_reason ? html` <span class="state-reason">${view.state_reason}</span>` : ''}</p>
${facts(view)}
${view.plan_problem ? html`<p class="flash flash-error">The plan cannot be used: ${view.plan_problem}</p>` : ''}
${inFlight(view)}
${ctx.user.role === 'operator' ? actions(ctx, view) : html`<p class="muted viewer-note">You are signed in as a viewer: approving, pausing, resuming and rolling back need an operator token.</p>`}
${nextDecision(view)}
<h2 id="chart-heading">Mail day by day</h2>
${renderDailyChart(view.daily, view.history)}
${windowFigures(view)}
${records(view)}
${sources(view)}
${reporters(view)}
${history(view)}
${audit(view)}`;
  return renderLayout({ title: view.domain, ctx, body });
}

function facts(v: DomainView): SafeHtml {
  return html`<dl class="facts">
<dt>Plan</dt><dd>${v.plan}</dd>
<dt>DNS provider</dt><dd>${v.provider ?? html`<span class="muted">none assigned</span>`}</dd>
<dt>In this stage since</dt><dd>${v.stage_since === null ? html`<span class="muted">not in effect yet (the next tick writes and verifies it)</span>` : html`${formatTime(v.stage_since)} (${formatCount(v.days_in_stage)} day${v.days_in_stage === 1 ? '' : 's'})`}</dd>
<dt>Enrolled</dt><dd>${formatTime(v.enrolled_at)}</dd>
</dl>`;
}

function inFlight(v: DomainView): SafeHtml | '' {
  const c = v.change_in_flight;
  if (!c) return '';
  return html`<section class="in-flight" aria-labelledby="in-flight-heading">
<h2 id="in-flight-heading">Change in flight</h2>
<p><span class="badge badge-inflight">${c.status}</span> ${c.action} → <span class="mono">${c.to}</span>, asked by ${c.actor}: ${c.reason}</p>
${v.stuck ? html`<p class="flash flash-error" id="stuck"><span class="badge badge-stuck">stuck</span> This change has failed ${v.stuck.attempts} times; it is still retried, at most hourly. Fix what the last error names (or pause the domain).</p>` : ''}
<p class="muted">${c.attempts} attempt${c.attempts === 1 ? '' : 's'} so far; next attempt ${formatTime(c.next_attempt_at)}.${c.last_error ? html` Last error: <span class="error-text">${c.last_error}</span>` : ''}</p>
</section>`;
}

/** The operator's forms. Each posts `_csrf` and `reason` to `/ui/domains/<domain>/<action>`. */
function actions(ctx: PageContext, v: DomainView): SafeHtml {
  const forms: SafeHtml[] = [];
  // plan_stages is 0-based and stage_number 1-based, so the next stage sits at index stage_number.
  const nextGated = v.plan_stages[v.stage_number]?.requires_approval === true;
  if (v.next_stage !== null && v.state === 'active' && (v.awaiting_approval || nextGated)) {
    forms.push(
      v.approved_stage !== null
        ? html`<p class="approved"><span class="badge badge-approval">approved</span> ${v.approved_stage} is approved; the next tick moves there once the current stage is clean.</p>`
        : approveForm({ domain: v.domain, stage: v.next_stage, csrfToken: ctx.csrfToken }),
    );
  }
  if (v.state === 'active') {
    forms.push(html`<form method="post" action="${domainActionPath(v.domain, 'pause')}" class="action action-pause">
${csrfField(ctx.csrfToken)}
<label for="pause-reason">Pause reason <input type="text" id="pause-reason" name="reason" required maxlength="500"></label>
<button type="submit">Pause</button>
</form>`);
  }
  if (v.state === 'paused' || v.state === 'halted') {
    forms.push(html`<form method="post" action="${domainActionPath(v.domain, 'resume')}" class="action action-resume">
${csrfField(ctx.csrfToken)}
<label for="resume-reason">Resume note <input type="text" id="resume-reason" name="reason" maxlength="500" placeholder="optional"></label>
<button type="submit" class="primary">Resume</button>
</form>`);
  }
  const earlier = v.plan_stages.slice(0, Math.max(0, v.stage_number - 1));
  if (v.stage_number > 1 && earlier.length > 0) {
    const previous = earlier.length - 1;
    forms.push(html`<form method="post" action="${domainActionPath(v.domain, 'rollback')}" class="action action-rollback">
${csrfField(ctx.csrfToken)}
<label for="rollback-to">Roll back to <select id="rollback-to" name="to">
${earlier.map((s, i) => html`<option value="${s.label}"${i === previous ? html` selected` : ''}>${s.label}</option>`)}
</select></label>
<label for="rollback-reason">Rollback reason <input type="text" id="rollback-reason" name="reason" maxlength="500" placeholder="optional"></label>
<button type="submit" class="danger">Roll back</button>
</form>`);
  }
  return html`${forms.length === 0 ? '' : html`<section class="actions" aria-labelledby="actions-heading">
<h2 id="actions-heading">Actions</h2>
${forms}
</section>`}
${lifecycle(ctx, v)}`;
}

/** Moving the domain to another provider or plan, or unenrolling it: each needs a reason, and names its target in `to`. */
function lifecycle(ctx: PageContext, v: DomainView): SafeHtml {
  return html`<section class="actions lifecycle" aria-labelledby="lifecycle-heading">
<h2 id="lifecycle-heading">Provider, plan, enrolment</h2>
<form method="post" action="${domainActionPath(v.domain, 'set-provider')}" class="action action-set-provider">
${csrfField(ctx.csrfToken)}
<label for="set-provider-to">DNS provider <input type="text" id="set-provider-to" name="to" required maxlength="63" value="${v.provider ?? ''}"></label>
<label for="set-provider-reason">Reason <input type="text" id="set-provider-reason" name="reason" required maxlength="500"></label>
<button type="submit">Change provider</button>
</form>
<form method="post" action="${domainActionPath(v.domain, 'set-plan')}" class="action action-set-plan">
${csrfField(ctx.csrfToken)}
<label for="set-plan-to">Plan <input type="text" id="set-plan-to" name="to" required maxlength="200" value="${v.plan}"></label>
<label for="set-plan-reason">Reason <input type="text" id="set-plan-reason" name="reason" required maxlength="500"></label>
<button type="submit">Change plan (the stage is kept)</button>
</form>
<form method="post" action="${domainActionPath(v.domain, 'unenroll')}" class="action action-unenroll">
${csrfField(ctx.csrfToken)}
<label for="unenroll-to">The record <select id="unenroll-to" name="to">
<option value="keep" selected>stays as it is now</option>
<option value="restore">goes back to the one found at enrolment</option>
</select></label>
<label for="unenroll-reason">Reason <input type="text" id="unenroll-reason" name="reason" required maxlength="500"></label>
<button type="submit" class="danger">Unenroll</button>
</form>
</section>`;
}

function nextDecision(v: DomainView): SafeHtml {
  let lead: SafeHtml;
  if (v.next_decision) {
    lead = html`<p class="next-decision">${nextDecisionText(v)}: ${v.next_decision.summary}</p>`;
  } else if (v.change_in_flight) {
    lead = html`<p class="next-decision">Not judged while a change is in flight: the next tick finishes ${v.change_in_flight.action} → <span class="mono">${v.change_in_flight.to}</span> first.</p>`;
  } else if (v.state !== 'active') {
    lead = html`<p class="next-decision">Not judged while ${v.state}: nothing moves until a person resumes it.${v.checks.length > 0 ? ' The checks below show what the engine would decide if it were active.' : ''}</p>`;
  } else {
    lead = html`<p class="next-decision">Not judged: ${v.plan_problem ?? 'the plan could not be applied'}.</p>`;
  }
  const checks =
    v.checks.length === 0
      ? ''
      : html`<div class="table-wrap"><table id="checks">
<thead><tr><th scope="col">Rule</th><th scope="col">Outcome</th><th scope="col" class="num">Measured</th><th scope="col" class="num">Threshold</th><th scope="col">Detail</th></tr></thead>
<tbody>
${v.checks.map(
  (c) => html`<tr data-rule="${c.rule}" data-outcome="${c.outcome}">
<td class="mono">${c.rule}</td>
<td><span class="outcome-${cssToken(c.outcome)}">${c.outcome}</span></td>
<td class="num">${formatMeasure(c.rule, c.measured)}</td>
<td class="num">${formatMeasure(c.rule, c.threshold)}</td>
<td>${c.detail}</td>
</tr>`,
)}
</tbody>
</table></div>`;
  return html`<section aria-labelledby="decision-heading">
<h2 id="decision-heading">Next decision</h2>
${lead}
${checks}
</section>`;
}

function windowFigures(v: DomainView): SafeHtml | '' {
  const m = v.metrics;
  if (!m) return '';
  return html`<section aria-labelledby="window-heading">
<h2 id="window-heading">This stage’s window</h2>
<dl class="facts">
<dt>Window</dt><dd>${m.windowStart === null ? 'the stage is not in effect yet' : html`from ${formatTime(m.windowStart)}: ${formatCount(m.elapsedDays)} whole day(s), ${formatCount(m.daysObserved)} with reports`}</dd>
<dt>All mail</dt><dd>${formatCount(m.all.messages)} message(s): ${formatCount(m.own.messages)} from ${v.domain} itself, ${formatCount(m.subdomains.messages)} from subdomains${m.subdomainsJudged ? ' (judged with the domain)' : ' (shown, not judged: the record sets sp)'}</dd>
<dt>Authorised mail</dt><dd>${formatCount(m.authorised.messages)} message(s), ${formatCount(m.authorised.failed)} failed DMARC: ${formatPercent(m.authorised.failRate)}</dd>
<dt>Spoofing</dt><dd>${formatCount(m.spoofing.messages)} unauthenticated message(s)</dd>
</dl>
</section>`;
}

function records(v: DomainView): SafeHtml {
  let next: SafeHtml;
  if (v.record_next !== null) next = html`<pre class="record" id="record-next"><code>${v.record_next}</code></pre>`;
  else if (v.record_next_problem) next = html`<p class="flash flash-error" id="record-next">The next stage’s record cannot be made: ${v.record_next_problem}</p>`;
  else if (v.next_stage === null) next = html`<p class="muted" id="record-next">None: this is the plan’s last stage.</p>`;
  else next = html`<p class="muted" id="record-next">Not known yet.</p>`;
  return html`<section aria-labelledby="records-heading">
<h2 id="records-heading">Records</h2>
<h3>Record now</h3>
${
  v.record_now === null
    ? html`<p class="muted" id="record-now">Not written by this program yet: the next tick writes and verifies the first stage.</p>`
    : html`<pre class="record" id="record-now"><code>${v.record_now}</code></pre>`
}
<h3>Record next${v.next_stage ? html` <span class="muted">(${v.next_stage})</span>` : ''}</h3>
${next}
</section>`;
}

function sources(v: DomainView): SafeHtml {
  const groups = (['authorised', 'unaligned', 'forwarded', 'unauthenticated'] as const).map((cls) => {
    const list = v.sources.filter((s) => s.class === cls);
    if (list.length === 0) return html``;
    return html`<h3>${CLASS_TITLES[cls]}</h3>
<div class="table-wrap"><table class="sources" data-class="${cls}">
<thead><tr><th scope="col">Source</th><th scope="col" class="num">Messages</th><th scope="col" class="num">Passed DMARC</th><th scope="col" class="num">Days seen</th><th scope="col">Why this class</th></tr></thead>
<tbody>
${list.map(
  (s) => html`<tr${s.blocking ? html` class="blocking"` : ''}>
<td class="key"><span class="mono">${s.key}</span>${s.blocking ? html` <span class="badge badge-blocking">holds the domain</span> <span class="muted">allowlist it or mark it as abuse</span>` : ''}</td>
<td class="num">${formatCount(s.messages)}</td>
<td class="num">${formatCount(s.passed)}</td>
<td class="num">${formatCount(s.daysSeen)}</td>
<td>${s.classReason}</td>
</tr>`,
)}
</tbody>
</table></div>${omittedSources(v, cls)}`;
  });
  return html`<section aria-labelledby="sources-heading">
<h2 id="sources-heading">Sources</h2>
${v.sources.length === 0 ? html`<p class="empty">No sending sources in the reports yet.</p>` : groups}
</section>`;
}

/** What a class's table leaves out (see SOURCES_LISTED): how many sources, with how much of the stage window's mail. */
function omittedSources(v: DomainView, cls: keyof DomainView['sources_omitted']): SafeHtml {
  const left = v.sources_omitted[cls];
  if (left.sources === 0) return html``;
  return html`<p class="muted omitted" data-class="${cls}">And ${formatCount(left.sources)} more source${left.sources === 1 ? '' : 's'} with ${formatCount(left.messages)} message${left.messages === 1 ? '' : 's'} in the stage window, not listed: the table shows those sending the most.</p>`;
}

function reporters(v: DomainView): SafeHtml {
  return html`<section aria-labelledby="reporters-heading">
<h2 id="reporters-heading">Reporters</h2>
${
  v.reporters.length === 0
    ? html`<p class="empty">No receiver has sent a report for this domain yet.</p>`
    : html`<div class="table-wrap"><table id="reporters">
<thead><tr><th scope="col">Reporter</th><th scope="col" class="num">Days reported</th><th scope="col">Last report ended</th><th scope="col" class="num">Usual delay</th><th scope="col">Status</th></tr></thead>
<tbody>
${v.reporters.map(
  (r) => html`<tr>
<td>${r.reporter === '' ? html`<span class="muted">(no org name)</span>` : r.reporter}</td>
<td class="num">${formatCount(r.daysReported)}</td>
<td>${formatTime(r.lastReportEnd)}</td>
<td class="num">${formatDelay(r.usualDelaySeconds)}</td>
<td>${reporterState(r)}</td>
</tr>`,
)}
</tbody>
</table></div>`
}
</section>`;
}

/** What the engine waits for from this reporter, in the words of the decision: quiet, late for a day, awaited, or fine. */
function reporterState(r: DomainView['reporters'][number]): SafeHtml {
  if (r.acknowledgedBy) return html`<span class="muted">silence acknowledged by ${r.acknowledgedBy}</span>`;
  if (r.quiet) return html`<span class="badge badge-quiet">quiet</span> it used to report regularly; a person must acknowledge or wait`;
  if (r.late) return html`<span class="badge badge-quiet">late</span> its report for ${r.awaitedDay ?? 'the awaited day'} is past its usual delay`;
  if (r.awaitedDay) return html`awaited for ${r.awaitedDay}`;
  return r.regular ? html`reports regularly` : html`<span class="muted">occasional</span>`;
}

function history(v: DomainView): SafeHtml {
  // Newest first, like the audit log: the latest change is what a person looks for.
  const changes = [...v.history].reverse();
  return html`<section aria-labelledby="history-heading">
<h2 id="history-heading">Stage history</h2>
${
  changes.length === 0
    ? html`<p class="empty">No stage changes yet.</p>`
    : html`<div class="table-wrap"><table id="history">
<thead><tr><th scope="col">Time (UTC)</th><th scope="col">Change</th><th scope="col">Action</th><th scope="col">By</th><th scope="col">Reason</th><th scope="col">Record written</th></tr></thead>
<tbody>
${changes.map(
  (h) => html`<tr>
<td><time datetime="${formatTime(h.at)}">${formatTime(h.at)}</time></td>
<td class="mono">${h.from_stage ?? '—'} → ${h.to_stage}</td>
<td>${h.action}</td>
<td>${h.actor}</td>
<td>${h.reason}</td>
<td>${h.record === null ? html`<span class="muted">—</span>` : html`<code class="record-inline">${h.record}</code>`}</td>
</tr>`,
)}
</tbody>
</table></div>`
}
</section>`;
}

function audit(v: DomainView): SafeHtml {
  return html`<section aria-labelledby="audit-heading">
<h2 id="audit-heading">Audit log</h2>
${
  v.audit.length === 0
    ? html`<p class="empty">No audit events yet.</p>`
    : auditTable(v.audit, { id: 'domain-audit', withDomain: false })
}
<p><a href="/audit${queryString({ domain: v.domain })}">The whole audit log for ${v.domain}</a></p>
</section>`;
}
