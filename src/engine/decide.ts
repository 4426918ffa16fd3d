/**
 * decide(): whether a domain's current stage may advance, must hold, waits for
 * a person, halts or rolls back. Pure: the domain, its plan, the stage's
 * metrics and the clock in; a Decision with every check it applied out.
 *
 * Like a progressive-delivery analysis, each check ends passed, failed or
 * inconclusive. Inconclusive (too little mail, too few complete days, a
 * reporter late or gone quiet) holds and never advances: silence is not
 * success. A rate decides only with evidence (evidence.ts): an alarm needs the
 * failure to be surely above its threshold, an advance needs it surely at or
 * below. Alarms look at every report arrived so far, over the whole window and
 * over its latest reported day(s), so a sharp regression stops the stage the
 * day its first report arrives; advancing looks at complete days only.
 */
import { AppError } from '../errors.js';
import type { Plan, Stage } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import { describeEvidence, rateEvidence, type RateEvidence } from './evidence.js';
import { awaitingText } from './reporters.js';
import { percent } from './sources.js';
import type { Check, Decision, DecisionAction, DomainSnapshot, MailTotals, StageMetrics } from './types.js';

/** Halting or rolling back needs at least this many authorised messages: fewer is an anecdote, whatever the interval. */
export const HALT_EVIDENCE_MIN_MESSAGES = 20;

const label = (stage: Stage) => stageLabel(stage);

/**
 * Senders or reporters a check names, those sending the most
 * first. A domain sending through a big ESP without alignment can have
 * hundreds of blocking sources, and anyone can send reports under new
 * reporter names; a check's text goes into every stored decision, audit
 * entry and notification.
 */
export const NAMED_IN_CHECK = 20;

/** The first NAMED_IN_CHECK of `items` joined by `separator`, and how many more there are. */
function namedFirst(items: readonly string[], separator: string, more: string = ''): string {
  const named = items.slice(0, NAMED_IN_CHECK).join(separator);
  return items.length > NAMED_IN_CHECK ? `${named}${separator}and ${items.length - NAMED_IN_CHECK} more${more}` : named;
}

/** The stage a rollback from `index` goes to: the plan's rollback_to, else the last stage that held cleanly, else the one before. */
export function rollbackTarget(plan: Plan, index: number, lastCleanIndex: number | null | undefined): number | null {
  const stage = plan.stages[index]!;
  if (stage.rollback_to !== undefined) {
    const named = plan.stages.findIndex((s) => label(s) === stage.rollback_to);
    if (named >= 0 && named < index) return named;
  }
  if (lastCleanIndex !== null && lastCleanIndex !== undefined && lastCleanIndex >= 0 && lastCleanIndex < index) return lastCleanIndex;
  return index > 0 ? index - 1 : null;
}

export function decide(domain: DomainSnapshot, plan: Plan, metrics: StageMetrics, now: Date): Decision {
  const stage = plan.stages[domain.stageIndex];
  if (!stage) {
    throw new AppError('conflict', `${domain.domain}: stage index ${domain.stageIndex} is outside plan ${plan.name} (${plan.stages.length} stages)`);
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

  const confidence = plan.evidence_confidence;
  const evidenceOf = (t: MailTotals) => rateEvidence(t.failed, t.messages, confidence);
  const text = (e: RateEvidence) => describeEvidence(e, percent);
  const interval = (e: RateEvidence): Check['interval'] => ({ low: e.low, high: e.high, confidence, messages: e.messages });

  // The populations alarms look at: the whole window, and its latest complete day(s) when they say something else.
  const windowEvidence = evidenceOf(metrics.authorised);
  const populations: Array<{ suffix: string; what: string; e: RateEvidence }> = [{ suffix: '', what: 'in the window', e: windowEvidence }];
  const recent = metrics.recent;
  if (recent && recent.days.length > 0 && recent.messages > 0 && recent.messages < metrics.authorised.messages) {
    const complete = new Set(metrics.days?.complete ?? []);
    const whole = recent.days.every((d) => complete.has(d));
    populations.push({
      suffix: '-recent',
      what: `on ${recent.days.join(', ')} (the latest reported day${recent.days.length > 1 ? 's' : ''}${whole ? '' : ', reports so far'})`,
      e: evidenceOf(recent),
    });
  }

  /** An alarm fires when the failure is surely above `threshold`: its lower bound is, on enough messages. */
  const alarm = (rule: string, threshold: number, verb: string) => {
    for (const { suffix, what, e } of populations) {
      if (e.rate === null || e.messages < HALT_EVIDENCE_MIN_MESSAGES) continue;
      const over = e.low > threshold;
      checks.push({
        rule: `${rule}${suffix}`,
        outcome: over ? 'failed' : 'passed',
        measured: e.rate,
        threshold,
        interval: interval(e),
        detail: `authorised mail failing DMARC ${what}: ${text(e)}; ${verb} when surely above ${percent(threshold)}`,
      });
      if (over) return { what, e };
    }
    return null;
  };

  // Rollback and halt come first: a stage that is hurting real mail must not
  // wait for its dwell time, for a late reporter or for a person.
  if (stage.rollback_fail_rate !== null) {
    const hit = alarm('rollback-rate', stage.rollback_fail_rate, 'roll back');
    if (hit) {
      const target = rollbackTarget(plan, domain.stageIndex, domain.lastCleanStageIndex);
      const failing = `authorised failures ${hit.what} ${percent(hit.e.rate!)} (${hit.e.failed} of ${hit.e.messages}) are surely above the rollback rate ${percent(stage.rollback_fail_rate)}`;
      if (target === null) return result('halt', `${failing} and there is no earlier stage: halted for a person to look.`);
      return result(
        'rollback',
        `${failing}: back to ${label(plan.stages[target]!)}, the last stage that held cleanly, in one change; then halted for a person to look.`,
        target,
      );
    }
  }
  if (stage.halt_fail_rate !== null) {
    const hit = alarm('halt-rate', stage.halt_fail_rate, 'halt');
    if (hit) {
      return result(
        'halt',
        `authorised failures ${hit.what} ${percent(hit.e.rate!)} (${hit.e.failed} of ${hit.e.messages}) are surely above the halt rate ${percent(stage.halt_fail_rate)}: halted for a person to look.`,
      );
    }
  }

  const late = metrics.reporters.filter((r) => r.late && !r.quiet);
  checks.push({
    rule: 'late-reporter',
    outcome: late.length > 0 ? 'inconclusive' : 'passed',
    measured: namedFirst(late.map((r) => r.reporter), ', ') || 'none',
    threshold: `${plan.late_reporter_slack_hours} hours past its usual delay`,
    detail:
      late.length > 0
        ? `waiting for ${namedFirst(late.map((r) => awaitingText(r.reporter, r.awaitedDay ?? '?', r.usualDelaySeconds ?? 0)), '; ')}: late, so the day is not judged without it`
        : 'no regular reporter is past its usual delay',
  });

  const quiet = metrics.reporters.filter((r) => r.quiet);
  checks.push({
    rule: 'quiet-reporter',
    outcome: quiet.length > 0 ? 'inconclusive' : 'passed',
    measured: namedFirst(quiet.map((r) => r.reporter), ', ') || 'none',
    threshold: `${plan.quiet_reporter_days} days`,
    detail:
      quiet.length > 0
        ? `${namedFirst(
            quiet.map((r) => `${r.reporter} (last report ended ${r.lastReportEnd}${r.awaitedDay ? `, nothing for ${r.awaitedDay} on` : ''})`),
            ', ',
          )} used to report daily and went quiet; its silence is not taken as clean: a person acknowledges it (dmarc-rollout acknowledge ${domain.domain} <reporter>) or waits for it`
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
        ? `unaligned sender(s) that enforcement would break: ${namedFirst(
            blocking.map((s) => `${s.key} (${s.lookbackMessages} msgs over ${s.daysSeen} day${s.daysSeen === 1 ? '' : 's'})`),
            '; ',
            ' (the domain page lists them)',
          )}; allowlist or mark as abuse`
        : 'no unaligned sender at the plan\'s volume that needs a person',
  });

  const daysOk = metrics.daysObserved >= stage.min_days;
  // Name what the oldest incomplete day waits for: the reporters still to send it, and how late they usually are.
  const firstPending = metrics.days?.firstPending ?? null;
  const delays = new Map(metrics.reporters.map((r) => [r.reporter, r.usualDelaySeconds ?? 0]));
  const waiting = firstPending ? firstPending.reporters.map((name) => awaitingText(name, firstPending.day, delays.get(name) ?? 0)) : [];
  const missed = metrics.days?.missed ?? [];
  checks.push({
    rule: 'min-days',
    outcome: daysOk ? 'passed' : 'inconclusive',
    measured: metrics.daysObserved,
    threshold: stage.min_days,
    detail:
      `${metrics.daysObserved} complete UTC day(s) with reports since ${metrics.windowStart ?? '-'}; needs ${stage.min_days}` +
      (!daysOk && waiting.length > 0 ? `; waiting for ${namedFirst(waiting, '; ')}` : '') +
      (missed.length > 0 ? `; ${missed.length} day(s) a regular reporter missed do not count (${missed.slice(-3).join(', ')})` : ''),
  });

  const judged = metrics.complete ?? { ...metrics.authorised, days: [] };
  const messagesOk = judged.messages >= stage.min_messages;
  checks.push({
    rule: 'min-messages',
    outcome: messagesOk ? 'passed' : 'inconclusive',
    measured: judged.messages,
    threshold: stage.min_messages,
    detail: `${judged.messages} authorised message(s) on complete days; needs ${stage.min_messages}`,
  });
  const advance = evidenceOf(judged);
  const rateOk = advance.rate !== null && advance.high <= stage.advance_max_fail_rate + 1e-12;
  checks.push({
    rule: 'advance-rate',
    outcome: advance.rate === null ? 'inconclusive' : rateOk ? 'passed' : 'failed',
    measured: advance.rate,
    threshold: stage.advance_max_fail_rate,
    interval: interval(advance),
    detail: `authorised mail failing DMARC on complete days: ${text(advance)}; may advance when surely at or below ${percent(stage.advance_max_fail_rate)}`,
  });

  const holding = checks.filter((c) => c.outcome !== 'passed');
  if (holding.length > 0) {
    return result('hold', `holding at ${label(stage)}: ${holding.map((c) => c.detail).join('; ')}.`);
  }

  const nextIndex = domain.stageIndex + 1;
  const next = plan.stages[nextIndex];
  const clean = `${percent(advance.rate!)} authorised failures (${advance.failed} of ${advance.messages}, surely below ${percent(advance.high)}) over ${metrics.daysObserved} complete days`;
  if (!next) return result('complete', `${label(stage)} held cleanly (${clean}): the rollout is complete.`);
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
  return result('advance', `${label(stage)} is clean (${clean}): advance to ${label(next)}.`, nextIndex);
}
