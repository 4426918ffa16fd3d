/**
 * `explain`: a domain's current figures, its sources by class, and the
 * decision the next tick would make, in plain words. explainDomain() measures
 * the domain as the tick does (assessDomain), judges it with decide() and
 * reads any change in flight; explainText() and explanationJson() only format
 * that, for the CLI (and CLASS_TITLES for the page).
 */
import { decide } from '../engine/decide.js';
import { inFlightText, stuckOf } from '../engine/planned-change.js';
import { describeDelay } from '../engine/reporters.js';
import { percent } from '../engine/sources.js';
import { assessDomain, type DomainAssessment } from '../engine/tick.js';
import type { Decision, SourceClass } from '../engine/types.js';
import type { Plan } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import { getDomain } from '../store/domains.js';
import { getIntent } from '../store/intents.js';
import type { Store } from '../store/open.js';
import type { Intent } from '../store/schema.js';

/** A domain measured and judged as the next tick would, with the change in flight that the tick finishes first. */
export interface DomainExplanation {
  domain: string;
  assessment: DomainAssessment;
  decision: Decision;
  intent: Intent | null;
  /** What the next tick does about the change in flight (inFlightText), when there is one. */
  inFlight: string | undefined;
}

/** Measures `domain` at `now` and says what the next tick would decide; null when it is not enrolled. */
export async function explainDomain(store: Store, domain: string, now: Date, loadPlan: (name: string) => Plan): Promise<DomainExplanation | null> {
  const row = await getDomain(store.db, domain);
  if (!row) return null;
  const assessment = await assessDomain(store, row, loadPlan(row.plan), now);
  const decision = decide(assessment.snapshot, assessment.plan, assessment.metrics, now);
  const intent = (await getIntent(store.db, domain)) ?? null;
  const inFlight = intent ? inFlightText(intent, assessment.plan, now) : undefined;
  return { domain, assessment, decision, intent, inFlight };
}

/** The `explain --json` document: the figures, the decision and the change in flight (stuck or not, and what the next tick does). */
export function explanationJson(e: DomainExplanation): object {
  return {
    domain: e.domain,
    metrics: e.assessment.metrics,
    decision: e.decision,
    change_in_flight: e.intent ? { ...e.intent, stuck: stuckOf(e.intent) !== null, next_tick: e.inFlight } : null,
  };
}

/** How the CLI and the page title each class of source. */
export const CLASS_TITLES: Record<SourceClass, string> = {
  authorised: 'Authorised sources (the plan’s rates apply to these)',
  forwarded: 'Forwarders and mailing lists (shown, not counted as authorised failure, never blocking)',
  unaligned: 'Legitimate-looking but unaligned sources (enforcement would break these)',
  unauthenticated: 'Unauthenticated sources (spoofing: shown, never blocking)',
};

/** `inFlight` (engine/planned-change.ts's inFlightText) replaces the "Next tick" line while a change is in flight: the tick finishes that first. */
export function explainText(a: DomainAssessment, decision: Decision, inFlight?: string): string {
  const m = a.metrics;
  const stage = a.plan.stages[a.row.stage_index]!;
  const lines: string[] = [];
  lines.push(`${a.row.domain}: plan ${a.plan.name}, stage ${stageLabel(stage)} (${a.row.stage_index + 1} of ${a.plan.stages.length}), ${a.row.state}${a.row.state_reason ? ` (${a.row.state_reason})` : ''}`);
  lines.push(`record: ${a.row.last_record ?? '(not written by this program yet)'}`);
  if (m.windowStart === null) {
    lines.push('window: the stage is not in effect yet; the next tick writes and verifies it.');
  } else {
    lines.push(`window: mail from ${m.windowStart.slice(0, 10)} on; ${m.daysObserved} complete day(s) of ${stage.min_days} needed.`);
    if (m.days && m.days.pending.length > 0) lines.push(`  waiting for reports on: ${m.days.pending.join(', ')}`);
    if (m.days && m.days.missed.length > 0) lines.push(`  missed by a regular reporter (not counted): ${m.days.missed.join(', ')}`);
  }
  lines.push(
    `mail: ${m.all.messages} message(s) in the window, ${m.own.messages} from ${a.row.domain} itself and ${m.subdomains.messages} from subdomains that follow its record.`,
  );
  lines.push(
    m.subdomainsJudged
      ? `subdomains: they have no sp of their own here, so their mail moves with p and is judged with the domain${a.plan.manage.sp ? ' (the plan writes sp)' : ''}.`
      : 'subdomains: the record sets sp, which this plan does not manage, so subdomain mail is shown but not judged.',
  );
  const rate = m.authorised.failRate;
  lines.push(
    `authorised mail: ${m.authorised.messages} message(s), ${m.authorised.failed} failed DMARC (${rate === null ? 'no rate: nothing observed' : percent(rate)}); advance at or below ${percent(stage.advance_max_fail_rate)}${stage.halt_fail_rate !== null ? `, halt above ${percent(stage.halt_fail_rate)}` : ''}${stage.rollback_fail_rate !== null ? `, roll back above ${percent(stage.rollback_fail_rate)}` : ''}.`,
  );
  lines.push(`spoofing: ${m.spoofing.messages} unauthenticated message(s) in the window.`);
  for (const cls of ['authorised', 'forwarded', 'unaligned', 'unauthenticated'] as const) {
    const sources = m.sources.filter((s) => s.class === cls);
    if (sources.length === 0) continue;
    lines.push('', `${CLASS_TITLES[cls]}:`);
    for (const s of sources.slice(0, 15)) {
      lines.push(
        `  ${s.key}: ${s.messages} in window (${s.passed} passed), ${s.lookbackMessages} over ${s.daysSeen} day(s)${s.blocking ? ' — HOLDS the domain: allowlist it or mark it as abuse' : ''}; ${s.classReason}`,
      );
    }
    if (sources.length > 15) lines.push(`  … and ${sources.length - 15} more`);
  }
  if (m.reporters.length > 0) {
    lines.push('', 'Reporters:');
    for (const r of m.reporters) {
      const delay = r.usualDelaySeconds === undefined ? '' : `, usually ${describeDelay(r.usualDelaySeconds)} late`;
      const status = r.quiet
        ? ` — QUIET: it used to report daily; acknowledge it (dmarc-rollout acknowledge ${a.row.domain} '${r.reporter}' --reason …) or wait`
        : r.late
          ? ` — LATE: waiting for its report for ${r.awaitedDay}`
          : r.acknowledgedBy
            ? ` — silence acknowledged by ${r.acknowledgedBy}`
            : r.regular
              ? ''
              : ' (occasional: not waited for)';
      lines.push(`  ${r.reporter || '(no org name)'}: ${r.daysReported} day(s), last report ended ${r.lastReportEnd}${delay}${status}`);
    }
  }
  lines.push('', inFlight ?? `Next tick: ${decision.action}${decision.to ? ` -> ${decision.to}` : ''}. ${decision.summary}`);
  for (const c of decision.checks) lines.push(`  [${c.outcome}] ${c.rule}: ${c.detail}`);
  return lines.join('\n');
}
