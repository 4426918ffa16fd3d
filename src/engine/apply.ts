/**
 * Applying a stage change to DNS, the only place the engine touches a zone.
 * The intent is written first; then the live record set is read and checked
 * (a CNAME, several DMARC records, or a record that is not what we last
 * verified stop the domain: compare-and-set); then the provider writes; then
 * the change is verified by reading it back. Only a verified change moves the
 * stage and opens its window. A crash anywhere leaves the intent, and the next
 * tick resumes it from what the zone shows, never repeating a write blindly.
 */
import type { DnsProvider } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import type { Plan } from '../plans/index.js';
import { dmarcName, dmarcRecordsOf, isDmarcRecord, stageLabel } from '../record/index.js';
import { appendAudit } from '../store/audit.js';
import { appendStageChange, updateDomain } from '../store/domains.js';
import { deleteIntent, updateIntent } from '../store/intents.js';
import type { Store } from '../store/open.js';
import type { DomainRow, Intent } from '../store/schema.js';
import { byPerson, checkLive, driftReason, isPermanentProviderError } from './planned-change.js';
import { stageWindowStart } from './window.js';

// Where these lived before the planned change shared them; callers outside the engine still import them from here.
export { byPerson, driftReason, isPermanentProviderError, PERMANENT_PROVIDER_CODES, weakeningReason } from './planned-change.js';

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


/** Verifies through the provider's own read (the in-memory zone, or a provider without DNS access). */
export function providerVerifier(provider: DnsProvider): Verifier {
  return async (fqdn, expected) => dmarcRecordsOf(await provider.readTxt(fqdn)).join('\n') === expected;
}

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
  const checked = checkLive(view, domain, plan, {
    toIndex: intent.to_index,
    byPerson: byPerson(intent),
    status: intent.status,
    record: intent.record,
    previousRecord: intent.previous_record,
  });
  if ('refusal' in checked) return stop(ctx, domain, intent, checked.refusal);
  const live = checked.live;

  if (intent.status === 'requested') {
    const planned = { status: 'pending' as const, record: checked.next, previous_record: live, previous_ttl: view.ttl };
    // Claims the intent: from 'pending' on, a person's action is refused (409) instead of replacing it.
    if (!(await updateIntent(store.db, intent.id, 'requested', planned))) return superseded(intent);
    intent = { ...intent, ...planned };
  }

  const record = intent.record!;
  if (live !== record) {
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
      from_stage: intent.action === 'establish' || !from ? null : stageLabel(from),
      to_stage: stageLabel(to),
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
      reason: `${stageLabel(to)} verified in DNS (${intent.action}); judged on mail from ${windowStart}`,
      details: { record, previous_record: intent.previous_record, previous_ttl: intent.previous_ttl, attempts: intent.attempts + 1 },
    });
    return true;
  });
  if (!current) return superseded(intent);
  return { status: 'verified', record, toIndex: intent.to_index, windowStart };
}

async function retry(ctx: ApplyContext, domain: DomainRow, intent: Intent, reason: string, error?: unknown): Promise<ApplyOutcome> {
  if (isPermanentProviderError(error)) {
    return stop(ctx, domain, intent, `${reason} (${error.kind}: no retry can fix this); stopped until a person fixes it and resumes the domain`);
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

function message(error: unknown): string {
  return errorMessage(error);
}
