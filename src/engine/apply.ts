/**
 * Applying a stage change to DNS, the only place the engine touches a zone.
 * The intent is written first; then the live record set is read and checked
 * (a CNAME, several DMARC records, or a record that is not what we last
 * verified stop the domain: compare-and-set); then the provider writes; then
 * the change is verified by reading it back. Only a verified change moves the
 * stage and opens its window. A crash anywhere leaves the intent, and the next
 * tick resumes it from what the zone shows, never repeating a write blindly.
 */
import { hostedHint } from '../../providers/shared/hosted-dmarc.js';
import { ProviderError } from '../../providers/shared/errors.js';
import type { DnsProvider } from '../../providers/types.js';
import type { Plan } from '../plans/index.js';
import {
  dmarcRecordsOf,
  editRecordForStage,
  hasUsableUri,
  isDmarcRecord,
  parseRecord,
  publishedRank,
  publishedStage,
  stageLabel,
  tagValue,
  type EditResult,
  type Policy,
} from '../record/index.js';
import { appendAudit } from '../store/audit.js';
import { appendStageChange, updateDomain } from '../store/domains.js';
import { deleteIntent, updateIntent } from '../store/intents.js';
import type { Store } from '../store/open.js';
import type { DomainRow, Intent } from '../store/schema.js';
import { stageWindowStart } from './window.js';

/** Reads back what resolvers will see; true when exactly `expected` is the DMARC record at `fqdn`. */
export type Verifier = (fqdn: string, expected: string) => Promise<boolean>;

export interface ApplyContext {
  store: Store;
  provider: DnsProvider;
  verify: Verifier;
  plan: Plan;
  now: Date;
}

export type ApplyOutcome =
  | { status: 'verified'; record: string; toIndex: number; windowStart: string }
  | { status: 'retrying'; reason: string; nextAttemptAt: string }
  | { status: 'waiting'; nextAttemptAt: string }
  | { status: 'stopped'; reason: string }
  /** A person replaced the intent (force, rollback) before this apply claimed it: nothing of theirs was touched; the next tick applies theirs. */
  | { status: 'superseded'; reason: string };

/** Retries back off from one minute to an hour, spread per domain so a fleet does not retry in step. */
export function backoffMs(attempts: number, domain: string): number {
  const base = Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 3_600_000);
  let hash = 0;
  for (const ch of domain) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return Math.round(base * (0.75 + (hash % 1000) / 2000));
}

export const dmarcName = (domain: string) => `_dmarc.${domain}`;

/** Verifies through the provider's own read (the in-memory zone, or a provider without DNS access). */
export function providerVerifier(provider: DnsProvider): Verifier {
  return async (fqdn, expected) => dmarcRecordsOf(await provider.readTxt(fqdn)).join('\n') === expected;
}

/**
 * The record for stage `index` of `plan`, edited from `live`: sp/np follow p
 * where the plan manages them, and `reportUri` (the daemon's own address,
 * set at enrolment) becomes the rua while the live record has no usable one.
 */
export function recordForPlanStage(plan: Plan, index: number, live: string | null, reportUri: string | null = null): EditResult {
  const target = plan.stages[index]!;
  const manage: { sp?: Policy; np?: Policy } = {};
  if (plan.manage.sp) manage.sp = target.policy;
  if (plan.manage.np) manage.np = target.policy;
  const rua = live === null ? undefined : tagValue(parseRecord(live).tags, 'rua');
  const addRua = reportUri !== null && (rua === undefined || !hasUsableUri(rua));
  return editRecordForStage(live, target, { manage, ...(addRua ? { rua: [reportUri] } : {}) });
}

/** Provider error codes that no retry can heal: the domain stops with the provider's reason until a person fixes it. */
export const PERMANENT_PROVIDER_CODES: ReadonlySet<string> = new Set(['secret', 'config', 'zone-not-found', 'zone-ambiguous', 'conflict']);

/** Whether a provider failure is worth retrying (throttling, timeouts, 5xx, a connection) or needs a person. */
export function isPermanentProviderError(error: unknown): error is ProviderError {
  if (!(error instanceof ProviderError)) return false;
  if (PERMANENT_PROVIDER_CODES.has(error.code)) return true;
  // Any other 4xx is the provider refusing this request as it stands; only 408 and 429 say "later".
  return error.code === 'api' && error.status !== undefined && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
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
      return `${stageLabel(target)} would be weaker than the live "${live}" (${published.policy}:${published.pct}); the engine never weakens a domain on its own (a person can: dmarc-rollout force ${domain.domain} --to ${stageLabel(target)} --reason …)`;
    }
  }
  return null;
}

/** Whether an intent was asked for by a person (force, rollback, a lifecycle change) rather than decided by the engine. */
export const byPerson = (intent: Pick<Intent, 'actor'>) => intent.actor !== 'engine';

/** Moves `intent` as far as it can go now. */
export async function applyIntent(ctx: ApplyContext, domain: DomainRow, intent: Intent): Promise<ApplyOutcome> {
  const { store, provider, plan, now } = ctx;
  if (Date.parse(intent.next_attempt_at) > now.getTime()) return { status: 'waiting', nextAttemptAt: intent.next_attempt_at };
  const fqdn = dmarcName(domain.domain);

  let view;
  try {
    view = await provider.inspect(fqdn);
  } catch (error) {
    return retry(ctx, domain, intent, `reading ${fqdn} from ${provider.name} failed: ${message(error)}`, error);
  }
  if (view.cname) {
    return stop(ctx, domain, intent, `${fqdn} is a CNAME to ${view.cname}${hostedHint(view.cname)}; refusing to write over it`);
  }
  if (view.delegation && view.delegation.length > 0) {
    return stop(ctx, domain, intent, `${fqdn} is delegated to ${view.delegation.join(', ')}${hostedHint(view.delegation[0]!)}; refusing to write in the parent zone`);
  }
  const dmarc = dmarcRecordsOf(view.txt);
  if (dmarc.length > 1) {
    return stop(ctx, domain, intent, `${fqdn} has ${dmarc.length} v=DMARC1 records (receivers then apply none); fix the zone by hand`);
  }
  const live = dmarc[0] ?? null;

  if (intent.status === 'requested') {
    // Compare-and-set: the zone must still hold what this program last
    // verified. Before the first write, whatever the owner published is the
    // record we edit.
    if (domain.last_record !== null && live !== domain.last_record) {
      return stop(ctx, domain, intent, driftReason(fqdn, domain.last_record, live));
    }
    const target = plan.stages[intent.to_index];
    if (!target) return stop(ctx, domain, intent, `plan ${plan.name} has no stage ${intent.to_index + 1}`);
    if (!byPerson(intent)) {
      const weaker = weakeningReason(plan, domain, intent.to_index, live);
      if (weaker) return stop(ctx, domain, intent, weaker);
    }
    const edit = recordForPlanStage(plan, intent.to_index, live, domain.report_uri);
    if (!edit.ok) {
      return stop(ctx, domain, intent, `the record for ${target.policy}:${target.pct} would be invalid: ${edit.problems.map((p) => `${p.tag ?? 'record'}: ${p.reason}`).join('; ')}`);
    }
    const planned = { status: 'pending' as const, record: edit.record, previous_record: live, previous_ttl: view.ttl };
    // Claims the intent: from 'pending' on, a person's action is refused (409) instead of replacing it.
    if (!(await updateIntent(store.db, intent.id, 'requested', planned))) return superseded(intent);
    intent = { ...intent, ...planned };
  }

  const record = intent.record!;
  if (live !== record) {
    if (live !== intent.previous_record) {
      // Neither what we found before nor what we meant to write: someone else changed it meanwhile.
      return stop(ctx, domain, intent, driftReason(fqdn, intent.previous_record, live));
    }
    const others = view.txt.filter((t) => !isDmarcRecord(t));
    try {
      await provider.writeTxt(fqdn, [...others, record], { ttl: plan.record_ttl });
    } catch (error) {
      return retry(ctx, domain, intent, `writing ${fqdn} through ${provider.name} failed: ${message(error)}`, error);
    }
    if (!(await updateIntent(store.db, intent.id, intent.status, { status: 'written' }))) return superseded(intent);
    intent = { ...intent, status: 'written' };
  }

  let verified = false;
  try {
    verified = await ctx.verify(fqdn, record);
  } catch (error) {
    return retry(ctx, domain, intent, `verifying ${fqdn} failed: ${message(error)}`);
  }
  if (!verified) return retry(ctx, domain, intent, `${fqdn} does not show the new record yet`);

  const windowStart = stageWindowStart(now, intent.previous_ttl ?? plan.record_ttl, plan.window_grace_minutes * 60).toISOString();
  const from = plan.stages[intent.from_index];
  const to = plan.stages[intent.to_index]!;
  const current = await store.db.transaction().execute(async (trx) => {
    if (!(await deleteIntent(trx, intent.id))) return false;
    await updateDomain(trx, domain.domain, {
      stage_index: intent.to_index,
      stage_since: now.toISOString(),
      window_start: windowStart,
      last_record: record,
      // An approval is for one step from one place: used up by that step, and
      // void after any other move (a rollback must not leave the gate open).
      approved_stage_index: null,
      updated_at: now.toISOString(),
    });
    await appendStageChange(trx, {
      domain: domain.domain,
      at: now.toISOString(),
      from_stage: intent.action === 'establish' || !from ? null : `${from.policy}:${from.pct}`,
      to_stage: `${to.policy}:${to.pct}`,
      action: intent.action,
      actor: intent.actor,
      reason: intent.reason,
      record,
    });
    await appendAudit(trx, {
      at: now,
      actor: 'engine',
      domain: domain.domain,
      action: 'verified',
      reason: `${to.policy}:${to.pct} verified in DNS (${intent.action}); judged on mail from ${windowStart}`,
      details: { record, previous_record: intent.previous_record, previous_ttl: intent.previous_ttl, attempts: intent.attempts + 1 },
    });
    return true;
  });
  if (!current) return superseded(intent);
  return { status: 'verified', record, toIndex: intent.to_index, windowStart };
}

async function retry(ctx: ApplyContext, domain: DomainRow, intent: Intent, reason: string, error?: unknown): Promise<ApplyOutcome> {
  if (isPermanentProviderError(error)) {
    return stop(ctx, domain, intent, `${reason} (${error.code}: no retry can fix this); stopped until a person fixes it and resumes the domain`);
  }
  const attempts = intent.attempts + 1;
  const nextAttemptAt = new Date(ctx.now.getTime() + backoffMs(attempts, domain.domain)).toISOString();
  const current = await ctx.store.db.transaction().execute(async (trx) => {
    if (!(await updateIntent(trx, intent.id, intent.status, { attempts, next_attempt_at: nextAttemptAt, last_error: reason }))) return false;
    // One audit line per distinct failure, not one per retry.
    if (intent.last_error !== reason) {
      await appendAudit(trx, {
        at: ctx.now,
        actor: 'engine',
        domain: domain.domain,
        action: 'apply-retry',
        reason: `${reason}; the stage does not move, retrying from ${nextAttemptAt}`,
        details: { attempts, intent: intent.action, to_index: intent.to_index },
      });
    }
    return true;
  });
  if (!current) return superseded(intent);
  return { status: 'retrying', reason, nextAttemptAt };
}

async function stop(ctx: ApplyContext, domain: DomainRow, intent: Intent, reason: string): Promise<ApplyOutcome> {
  const current = await ctx.store.db.transaction().execute(async (trx) => {
    // A stop found while a person's replacement was queued is theirs to meet on the next tick, not a reason to drop it.
    if (!(await deleteIntent(trx, intent.id))) return false;
    await updateDomain(trx, domain.domain, { state: 'halted', state_reason: reason, updated_at: ctx.now.toISOString() });
    await appendAudit(trx, {
      at: ctx.now,
      actor: 'engine',
      domain: domain.domain,
      action: 'halt',
      reason,
      details: { abandoned_intent: { action: intent.action, to_index: intent.to_index, record: intent.record } },
    });
    return true;
  });
  if (!current) return superseded(intent);
  return { status: 'stopped', reason };
}

function superseded(intent: Intent): ApplyOutcome {
  return { status: 'superseded', reason: `the ${intent.action} to stage ${intent.to_index + 1} was replaced by a newer request before it was applied; nothing of the newer one was touched` };
}

export function driftReason(fqdn: string, expected: string | null, live: string | null): string {
  return `drift: ${fqdn} is ${live === null ? 'missing' : `"${live}"`}, not what this program last wrote (${expected === null ? 'nothing' : `"${expected}"`}); stopped until a person resumes it`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
