/**
 * decide(): whether a domain's current stage may advance, must hold, waits for
 * a person, halts or rolls back. Pure: the domain, its plan, the stage's
 * metrics and the clock in; a Decision with every check it applied out.
 *
 * Like a progressive-delivery analysis, each check ends passed, failed or
 * inconclusive. Inconclusive (too little mail, too few days, a reporter gone
 * quiet) holds and never advances: silence is not success.
 */
import type { Plan, Stage } from '../plans/index.js';
import { percent } from './sources.js';
import type { Check, Decision, DecisionAction, DomainSnapshot, StageMetrics } from './types.js';

/** Halting or rolling back needs at least this many authorised messages: fewer is an anecdote. */
export const HALT_EVIDENCE_MIN_MESSAGES = 20;

const label = (stage: Stage) => `${stage.policy}:${stage.pct}`;

/** At or below `threshold`, with a hair of tolerance so 6/300 counts as exactly 2 %. */
function atOrBelow(failed: number, messages: number, threshold: number): boolean {
  return failed <= threshold * messages + 1e-9;
}

export function decide(domain: DomainSnapshot, plan: Plan, metrics: StageMetrics, now: Date): Decision {
  const stage = plan.stages[domain.stageIndex];
  if (!stage) {
    throw new Error(`${domain.domain}: stage index ${domain.stageIndex} is outside plan ${plan.name} (${plan.stages.length} stages)`);
  }
  const checks: Check[] = [];
  const result = (action: DecisionAction, summary: string, toIndex: number | null = null): Decision => ({
    domain: domain.domain,
    action,
    from: label(stage),
    to: toIndex === null ? null : label(plan.stages[toIndex]!),
    toIndex,
    checks,
    summary,
    at: now.toISOString(),
  });

  if (domain.state !== 'active') {
    checks.push({
      rule: 'state',
      outcome: 'failed',
      measured: domain.state,
      threshold: 'active',
      detail: `the domain is ${domain.state}; only a person can move it on`,
    });
    return result('hold', `${domain.domain} is ${domain.state}: nothing moves until a person acts.`);
  }
  if (domain.stageSince === null) {
    checks.push({
      rule: 'in-effect',
      outcome: 'inconclusive',
      measured: null,
      threshold: null,
      detail: `${label(stage)} has not been written and verified in DNS yet`,
    });
    return result('establish', `write and verify the ${label(stage)} record; its window starts after that.`, domain.stageIndex);
  }

  const auth = metrics.authorised;
  const rate = auth.failRate;
  const rateText = rate === null ? 'no authorised mail' : `${percent(rate)} (${auth.failed} of ${auth.messages})`;
  const enoughForAlarm = auth.messages >= HALT_EVIDENCE_MIN_MESSAGES;

  // Rollback and halt come first: a stage that is hurting real mail must not
  // wait for its dwell time or for a person.
  if (stage.rollback_fail_rate !== null && rate !== null && enoughForAlarm) {
    const over = !atOrBelow(auth.failed, auth.messages, stage.rollback_fail_rate);
    checks.push({
      rule: 'rollback-rate',
      outcome: over ? 'failed' : 'passed',
      measured: rate,
      threshold: stage.rollback_fail_rate,
      detail: `authorised mail failing DMARC: ${rateText}; rollback above ${percent(stage.rollback_fail_rate)}`,
    });
    if (over) {
      if (domain.stageIndex === 0) return result('halt', `authorised failures ${rateText} exceed the rollback rate and there is no earlier stage: halted.`);
      return result(
        'rollback',
        `authorised failures ${rateText} exceed the rollback rate ${percent(stage.rollback_fail_rate)}: back to ${label(plan.stages[domain.stageIndex - 1]!)}.`,
        domain.stageIndex - 1,
      );
    }
  }
  if (stage.halt_fail_rate !== null && rate !== null && enoughForAlarm) {
    const over = !atOrBelow(auth.failed, auth.messages, stage.halt_fail_rate);
    checks.push({
      rule: 'halt-rate',
      outcome: over ? 'failed' : 'passed',
      measured: rate,
      threshold: stage.halt_fail_rate,
      detail: `authorised mail failing DMARC: ${rateText}; halt above ${percent(stage.halt_fail_rate)}`,
    });
    if (over) return result('halt', `authorised failures ${rateText} exceed the halt rate ${percent(stage.halt_fail_rate)}: halted for a person to look.`);
  }

  const quiet = metrics.reporters.filter((r) => r.quiet);
  checks.push({
    rule: 'quiet-reporter',
    outcome: quiet.length > 0 ? 'inconclusive' : 'passed',
    measured: quiet.map((r) => r.reporter).join(', ') || 'none',
    threshold: `${plan.quiet_reporter_days} days`,
    detail:
      quiet.length > 0
        ? `${quiet.map((r) => `${r.reporter} (last report ended ${r.lastReportEnd})`).join(', ')} used to report daily and went quiet; its silence is not taken as clean`
        : 'every regular reporter is still reporting',
  });

  const blocking = metrics.sources.filter((s) => s.blocking);
  checks.push({
    rule: 'unaligned-sender',
    outcome: blocking.length > 0 ? 'failed' : 'passed',
    measured: blocking.length,
    threshold: `${plan.unaligned_source_min_messages} messages`,
    detail:
      blocking.length > 0
        ? `unaligned sender(s) that enforcement would break: ${blocking.map((s) => `${s.key} (${s.lookbackMessages} msgs over ${s.daysSeen} days)`).join('; ')}; allowlist or mark as abuse`
        : 'no steady unaligned sender above the volume that needs a person',
  });

  const daysOk = metrics.daysObserved >= stage.min_days;
  checks.push({
    rule: 'min-days',
    outcome: daysOk ? 'passed' : 'inconclusive',
    measured: metrics.daysObserved,
    threshold: stage.min_days,
    detail: `${metrics.daysObserved} whole UTC day(s) with reports since ${metrics.windowStart ?? '-'}; needs ${stage.min_days}`,
  });
  const messagesOk = auth.messages >= stage.min_messages;
  checks.push({
    rule: 'min-messages',
    outcome: messagesOk ? 'passed' : 'inconclusive',
    measured: auth.messages,
    threshold: stage.min_messages,
    detail: `${auth.messages} authorised message(s) observed; needs ${stage.min_messages}`,
  });
  const rateOk = rate !== null && atOrBelow(auth.failed, auth.messages, stage.advance_max_fail_rate);
  checks.push({
    rule: 'advance-rate',
    outcome: rate === null ? 'inconclusive' : rateOk ? 'passed' : 'failed',
    measured: rate,
    threshold: stage.advance_max_fail_rate,
    detail: `authorised mail failing DMARC: ${rateText}; may advance at or below ${percent(stage.advance_max_fail_rate)}`,
  });

  const holding = checks.filter((c) => c.outcome !== 'passed');
  if (holding.length > 0) {
    return result('hold', `holding at ${label(stage)}: ${holding.map((c) => c.detail).join('; ')}.`);
  }

  const nextIndex = domain.stageIndex + 1;
  const next = plan.stages[nextIndex];
  if (!next) return result('complete', `${label(stage)} held cleanly for ${metrics.daysObserved} days: the rollout is complete.`);
  if (next.requires_approval && domain.approvedStageIndex !== nextIndex) {
    checks.push({
      rule: 'approval',
      outcome: 'inconclusive',
      measured: 'not approved',
      threshold: 'approved',
      detail: `${label(next)} needs a person's approval`,
    });
    return result('await-approval', `${label(stage)} is clean; ${label(next)} waits for approval (dmarc-rollout approve ${domain.domain}).`, nextIndex);
  }
  if (next.requires_approval) {
    checks.push({ rule: 'approval', outcome: 'passed', measured: 'approved', threshold: 'approved', detail: `${label(next)} was approved` });
  }
  return result('advance', `${label(stage)} is clean (${rateText} authorised failures over ${metrics.daysObserved} days): advance to ${label(next)}.`, nextIndex);
}
