/**
 * The planned change of one domain (octoDNS's Plan): from what the store
 * holds (the domain, its plan, a change in flight), what the engine decided
 * and what the zone shows, the one value that says what the next tick would
 * do: write a record (old → new), verify one already there, leave the record
 * as it is, refuse and why (a CNAME or delegation, several DMARC records,
 * drift, a weaker policy, an invalid result, no provider, a provider error no
 * retry can heal), or keep retrying a change that is stuck. Pure: values in,
 * a value out. The tick's apply step refuses through the same checks
 * (`checkLive`), the dry run and `plan` print this value, and the views show
 * a stuck change from the same rule (`stuckOf`), so none can disagree.
 */
import { hostedHint } from '../dns/hosted-dmarc.js';
import type { RecordSetView } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import type { Plan } from '../plans/index.js';
import { dmarcName, dmarcRecordsOf, publishedRank, publishedStage, recordForPlanStage, stageLabel } from '../record/index.js';
import type { DomainRow, Intent } from '../store/schema.js';
import type { Decision } from './types.js';

/** Provider error kinds that no retry can heal: the domain stops with the provider's reason until a person fixes it. */
export const PERMANENT_PROVIDER_CODES: ReadonlySet<string> = new Set(['secret', 'config', 'zone-not-found', 'zone-ambiguous', 'conflict']);

/**
 * A failure an adapter reported (providers/shared/errors.ts's ProviderError:
 * `name`, `kind`, maybe the HTTP `status`), read by its fields so the engine
 * does not depend on the adapters' layer.
 */
export interface ProviderFailure extends Error {
  kind: string;
  status?: number;
}

/** Whether a provider failure needs a person (true) or is worth retrying: throttling, timeouts, 5xx, a connection. */
export function isPermanentProviderError(error: unknown): error is ProviderFailure {
  if (!(error instanceof Error) || error.name !== 'ProviderError') return false;
  const { kind, status } = error as ProviderFailure;
  if (PERMANENT_PROVIDER_CODES.has(kind)) return true;
  // Any other 4xx is the provider refusing this request as it stands; only 408 and 429 say "later".
  return kind === 'api' && status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/**
 * Why the engine may not write `toIndex` on its own, or null when it may:
 * below the stage the record stood at when the domain was enrolled (its
 * floor), or, before this program's first write, weaker than what the zone
 * publishes now. A person's move (force, rollback, --start-at) is theirs to make.
 */
export function weakeningReason(plan: Plan, domain: Pick<DomainRow, 'domain' | 'floor_index' | 'last_record' | 'found_record'>, toIndex: number, live: string | null): string | null {
  const target = plan.stages[toIndex];
  if (!target) return null;
  const floor = domain.floor_index === null ? undefined : plan.stages[domain.floor_index];
  if (floor && toIndex < domain.floor_index!) {
    return `${stageLabel(target)} is below ${stageLabel(floor)}, where ${dmarcName(domain.domain)} stood when it was enrolled; the engine never weakens a domain on its own (a person can: dmarc-rollout force ${domain.domain} --to ${stageLabel(target)} --reason …)`;
  }
  // Before the first write the zone holds the owner's record. Enrolment chose the floor from it (a person's
  // --start-at included); a record enrolled without a floor, or changed since enrolment, is checked here.
  if (domain.last_record === null && live !== null && (domain.floor_index === null || live !== domain.found_record)) {
    const published = publishedStage(live);
    if (publishedRank(target) < publishedRank(published)) {
      return `${stageLabel(target)} would be weaker than the live "${live}" (p=${published.policy} at ${published.pct} %); the engine never weakens a domain on its own (a person can: dmarc-rollout force ${domain.domain} --to ${stageLabel(target)} --reason …)`;
    }
  }
  return null;
}

/** Whether an intent was asked for by a person (force, rollback, a lifecycle change) rather than decided by the engine. */
export const byPerson = (intent: Pick<Intent, 'actor'>) => intent.actor !== 'engine';


export function driftReason(fqdn: string, expected: string | null, live: string | null): string {
  return `drift: ${fqdn} is ${live === null ? 'missing' : `"${live}"`}, not what this program last wrote (${expected === null ? 'nothing' : `"${expected}"`}); stopped until a person resumes it`;
}



/** A change that has failed this many times is stuck: shown as such everywhere, still retried with capped backoff. */
export const STUCK_AFTER_ATTEMPTS = 5;

/** What the next tick would do with a domain. */
export type PlannedKind =
  /** Write `next` over `live`, then verify it. */
  | 'write'
  /** The zone already shows `next`: verify it, no write. */
  | 'verify'
  /** Nothing to write: the decision holds, waits for approval, halts or completes. */
  | 'hold'
  /** Not moved: paused, halted or completed (a written change is still verified). */
  | 'idle'
  /** A change in flight that is not due yet (backoff). */
  | 'waiting'
  /** A change in flight that failed STUCK_AFTER_ATTEMPTS times or more. */
  | 'stuck'
  /** The tick would stop the domain, or cannot act on it, for `reason`. */
  | 'refused'
  /** The zone could not be read now; the tick would retry. */
  | 'unreadable';

export interface PlannedChange {
  domain: string;
  kind: PlannedKind;
  /** establish, advance, rollback, force, …; null when nothing moves. */
  action: string | null;
  /** The stage written or verified, as a label; null when nothing moves. */
  to: string | null;
  /** The DMARC record live now, when the zone was read. */
  live: string | null;
  /** The record the tick would publish, when it would write or verify one. */
  next: string | null;
  /** In plain words: the decision's summary, the refusal, the last error. */
  reason: string;
  /** For a change in flight. */
  attempts?: number;
  last_error?: string | null;
  next_attempt_at?: string;
}

/** What planChange reads; every field is a value already fetched. */
export interface PlanChangeInput {
  row: DomainRow;
  /** The domain's plan, or why it cannot be loaded. */
  plan: Plan | { problem: string };
  intent: Intent | null;
  /** decide()'s verdict for an active domain with nothing in flight; null otherwise. */
  decision: Decision | null;
  /** Why the domain's provider cannot be used (none assigned, unknown, broken), else null. */
  providerProblem: string | null;
  /** What the zone shows at `_dmarc`, or the error reading it; null when it was not read (nothing would be written). */
  zone: { view: RecordSetView } | { error: unknown } | null;
  now: Date;
}

/** The change in flight is stuck, and why; null when it is not. */
export function stuckOf(intent: Pick<Intent, 'attempts' | 'last_error'> | null | undefined): { attempts: number; last_error: string | null } | null {
  if (!intent || intent.attempts < STUCK_AFTER_ATTEMPTS) return null;
  return { attempts: intent.attempts, last_error: intent.last_error };
}

/** What the next tick does about a change in flight, in one sentence (explain prints it instead of the decision). */
export function inFlightText(intent: Intent, plan: Plan | null, now: Date): string {
  const to = plan?.stages[intent.to_index] ? stageLabel(plan.stages[intent.to_index]!) : `stage ${intent.to_index + 1}`;
  const stuck = stuckOf(intent);
  const last = intent.last_error ? ` Last error: ${intent.last_error}` : '';
  if (stuck) return `Next tick: STUCK: ${intent.action} -> ${to} has failed ${stuck.attempts} times and is retried from ${intent.next_attempt_at}; nothing else moves until it is verified or stopped.${last}`;
  const when = Date.parse(intent.next_attempt_at) > now.getTime() ? ` from ${intent.next_attempt_at}` : '';
  return `Next tick: finishes the change in flight, ${intent.action} -> ${to} (${intent.status}, ${intent.attempts} failed attempt(s)),${when} before judging the stage again.${last}`;
}

/** The target of a move: a change in flight, or the one decide() would queue. */
export interface MoveTarget {
  toIndex: number;
  /** A person asked for it (force, rollback): the engine's no-weakening rule does not apply. */
  byPerson: boolean;
  status: Intent['status'];
  /** The record computed for it (pending/written); null while requested. */
  record: string | null;
  previousRecord: string | null;
}

/**
 * The tick's checks of the live `_dmarc` set before a write: the refusal,
 * or the record to publish (and the live one it replaces).
 */
export function checkLive(
  view: RecordSetView,
  row: Pick<DomainRow, 'domain' | 'last_record' | 'floor_index' | 'found_record' | 'report_uri'>,
  plan: Plan,
  target: MoveTarget,
): { refusal: string } | { live: string | null; next: string } {
  const fqdn = dmarcName(row.domain);
  if (view.cname) return { refusal: `${fqdn} is a CNAME to ${view.cname}${hostedHint(view.cname)}; refusing to write over it` };
  if (view.delegation && view.delegation.length > 0) {
    return { refusal: `${fqdn} is delegated to ${view.delegation.join(', ')}${hostedHint(view.delegation[0]!)}; refusing to write in the parent zone` };
  }
  const dmarc = dmarcRecordsOf(view.txt);
  if (dmarc.length > 1) return { refusal: `${fqdn} has ${dmarc.length} v=DMARC1 records (receivers then apply none); fix the zone by hand` };
  const live = dmarc[0] ?? null;
  if (target.status !== 'requested') {
    const record = target.record!;
    // Neither what we found before nor what we meant to write: someone else changed it meanwhile.
    if (live !== record && live !== target.previousRecord) return { refusal: driftReason(fqdn, target.previousRecord, live) };
    return { live, next: record };
  }
  // Compare-and-set: the zone must still hold what this program last verified.
  if (row.last_record !== null && live !== row.last_record) return { refusal: driftReason(fqdn, row.last_record, live) };
  const stage = plan.stages[target.toIndex];
  if (!stage) return { refusal: `plan ${plan.name} has no stage ${target.toIndex + 1}` };
  if (!target.byPerson) {
    const weaker = weakeningReason(plan, row, target.toIndex, live);
    if (weaker) return { refusal: weaker };
  }
  const edit = recordForPlanStage(plan, target.toIndex, live, row.report_uri);
  if (!edit.ok) {
    return { refusal: `the record for ${stageLabel(stage)} would be invalid: ${edit.problems.map((p) => `${p.tag ?? 'record'}: ${p.reason}`).join('; ')}` };
  }
  return { live, next: edit.record };
}

const MOVES = new Set(['establish', 'advance', 'rollback']);

/** What the next tick would do with the domain in `input`. */
export function planChange(input: PlanChangeInput): PlannedChange {
  const { row, intent, decision } = input;
  const base = { domain: row.domain, action: null, to: null, live: null, next: null };
  if ('problem' in input.plan) return { ...base, kind: 'refused', reason: `plan ${row.plan} cannot be used: ${input.plan.problem}` };
  const plan = input.plan;
  const label = (i: number) => (plan.stages[i] ? stageLabel(plan.stages[i]!) : `stage ${i + 1}`);

  const verifiesAnyway = intent !== null && intent.status === 'written';
  if (row.state !== 'active' && !verifiesAnyway) {
    const queued = intent ? `; ${intent.action} -> ${label(intent.to_index)} stays queued` : '';
    return { ...base, kind: 'idle', reason: `not moved while ${row.state}${row.state_reason ? ` (${row.state_reason})` : ''}${queued}` };
  }

  let target: MoveTarget;
  let action: string;
  let flight: Pick<PlannedChange, 'attempts' | 'last_error' | 'next_attempt_at'> = {};
  if (intent) {
    flight = { attempts: intent.attempts, last_error: intent.last_error, next_attempt_at: intent.next_attempt_at };
    action = intent.action;
    target = { toIndex: intent.to_index, byPerson: byPerson(intent), status: intent.status, record: intent.record, previousRecord: intent.previous_record };
    const stuck = stuckOf(intent);
    if (stuck) {
      return { ...base, ...flight, kind: 'stuck', action, to: label(intent.to_index), reason: `${action} -> ${label(intent.to_index)} has failed ${stuck.attempts} times${stuck.last_error ? `; last error: ${stuck.last_error}` : ''}; retried from ${intent.next_attempt_at}` };
    }
    if (Date.parse(intent.next_attempt_at) > input.now.getTime()) {
      return { ...base, ...flight, kind: 'waiting', action, to: label(intent.to_index), reason: `${action} -> ${label(intent.to_index)} in flight (${intent.status}), retried from ${intent.next_attempt_at}${intent.last_error ? `; last error: ${intent.last_error}` : ''}` };
    }
  } else {
    if (!decision) return { ...base, kind: 'hold', reason: 'not judged' };
    // Between moves the tick still compares the zone with what it last verified (drift stops the domain).
    if (row.last_record !== null && input.zone !== null && 'view' in input.zone) {
      const live = dmarcRecordsOf(input.zone.view.txt);
      if (!(live.length === 1 && live[0] === row.last_record)) {
        return { ...base, kind: 'refused', action: decision.action, live: live.join(' | ') || null, reason: driftReason(dmarcName(row.domain), row.last_record, live.length === 0 ? null : live.join(' | ')) };
      }
    }
    if (!MOVES.has(decision.action) || decision.toIndex === null) return { ...base, kind: 'hold', action: decision.action, reason: decision.summary };
    action = decision.action;
    target = { toIndex: decision.toIndex, byPerson: false, status: 'requested', record: null, previousRecord: null };
  }
  const moving = { ...base, ...flight, action, to: label(target.toIndex) };
  if (input.providerProblem) return { ...moving, kind: 'refused', reason: input.providerProblem };
  if (input.zone === null) return { ...moving, kind: 'unreadable', reason: 'the zone was not read' };
  if ('error' in input.zone) {
    const text = errorMessage(input.zone.error);
    return isPermanentProviderError(input.zone.error)
      ? { ...moving, kind: 'refused', reason: `reading ${dmarcName(row.domain)} failed: ${text} (${input.zone.error.kind}: no retry can fix this)` }
      : { ...moving, kind: 'unreadable', reason: `reading ${dmarcName(row.domain)} failed: ${text}; the tick would retry` };
  }
  const checked = checkLive(input.zone.view, row, plan, target);
  if ('refusal' in checked) return { ...moving, kind: 'refused', reason: checked.refusal };
  const why = intent ? `${intent.status} change in flight: ${intent.reason}` : decision!.summary;
  return { ...moving, live: checked.live, next: checked.next, kind: checked.live === checked.next ? 'verify' : 'write', reason: why };
}

/** `3 to write, 1 refused, 1 stuck, …` for the end of a dry run. */
export function planSummary(changes: readonly PlannedChange[]): string {
  const order: PlannedKind[] = ['write', 'verify', 'refused', 'stuck', 'unreadable', 'waiting', 'hold', 'idle'];
  const words: Record<PlannedKind, string> = {
    write: 'to write',
    verify: 'to verify without a write',
    refused: 'refused',
    stuck: 'stuck',
    unreadable: 'unreadable now',
    waiting: 'waiting to retry',
    hold: 'unchanged',
    idle: 'not moving (paused, halted or completed)',
  };
  const counts = order.map((k) => [k, changes.filter((c) => c.kind === k).length] as const).filter(([, n]) => n > 0);
  return `${changes.length} domain(s): ${counts.length === 0 ? 'nothing' : counts.map(([k, n]) => `${n} ${words[k]}`).join(', ')}`;
}
