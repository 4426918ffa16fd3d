/**
 * A domain's lifecycle after enrolment: unenroll it, move it to another DNS
 * provider, or to another plan. Each is validated before anything changes,
 * done in one transaction and audited with who and why. Unenrolling keeps the
 * domain's story: its audit events stay, and its stage history is copied into
 * the unenroll event. The live record is left as it is unless the person asks
 * to restore the record found at enrolment, which is then written through the
 * domain's provider and read back.
 */
import type { DnsProvider } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import { PlanError, stageRank, type Plan } from '../plans/index.js';
import { dmarcName, dmarcRecordsOf, isDmarcRecord, stageLabel } from '../record/index.js';
import { appendAudit } from '../store/audit.js';
import { getDomain, updateDomain } from '../store/domains.js';
import { getIntent } from '../store/intents.js';
import type { Store } from '../store/open.js';
import { ActionError, enrolledDomain, type Actor } from './actions.js';
import { providerForEnrolment, type ProviderLookup } from './enroll.js';

/** The first stage of `plan` no weaker than `stage`, never above `cap` (the domain's stage). */
function floorAtOrAbove(plan: Plan, stage: Plan['stages'][number], cap: number): number {
  const i = plan.stages.findIndex((s) => stageRank(s) >= stageRank(stage));
  return i < 0 ? cap : Math.min(i, cap);
}

const needReason = (reason: string, what: string) => {
  if (reason.trim() === '') throw new ActionError(`${what} needs a reason (--reason)`, 'invalid', 'reason');
};

/** Refuses while a change is written to DNS but not verified: the store would no longer match the zone. */
async function noChangeInFlight(store: Store, domain: string, what: string): Promise<void> {
  const intent = await getIntent(store.db, domain);
  if (intent && intent.status !== 'requested') {
    throw new ActionError(`${domain} has a change in flight (${intent.status}, ${intent.attempts} attempt(s)); ${what} waits until it is verified or stopped (pause it, then try again)`);
  }
}

/**
 * Stops managing a domain. With `restore`, the record found at enrolment is
 * written back (none found: the DMARC record is removed) through `provider`.
 */
export async function unenroll(
  store: Store,
  input: string,
  who: Actor,
  opts: { reason: string; restore?: boolean; provider?: DnsProvider },
): Promise<string> {
  needReason(opts.reason, 'unenroll');
  const row = await enrolledDomain(store, input);
  await noChangeInFlight(store, row.domain, 'unenroll');
  let restored: string | null = null;
  if (opts.restore) {
    if (!opts.provider) throw new ActionError(`restoring the record of ${row.domain} needs its provider settings (--providers or --config)`, 'invalid', 'provider');
    const fqdn = dmarcName(row.domain);
    const view = await opts.provider.inspect(fqdn);
    const live = dmarcRecordsOf(view.txt);
    if (row.last_record !== null && (live.length !== 1 || live[0] !== row.last_record)) {
      throw new ActionError(`${fqdn} no longer holds what this program last wrote (${live.join(' | ') || 'nothing'}); restore it by hand, then unenroll without --restore`);
    }
    const others = view.txt.filter((t) => !isDmarcRecord(t));
    await opts.provider.writeTxt(fqdn, row.found_record === null ? others : [...others, row.found_record], { ttl: view.ttl ?? 3600 });
    restored = row.found_record ?? '(no DMARC record)';
  }
  await store.db.transaction().execute(async (trx) => {
    // Checked again inside the transaction: a tick may have claimed the queued change since the check above.
    const claimed = await trx.selectFrom('intents').select('status').where('domain', '=', row.domain).where('status', '!=', 'requested').executeTakeFirst();
    if (claimed) throw new ActionError(`${row.domain} has a change in flight (${claimed.status}); unenroll waits until it is verified or stopped`);
    await trx.deleteFrom('intents').where('domain', '=', row.domain).where('status', '=', 'requested').execute();
    await trx.deleteFrom('reporter_acknowledgements' as never).where('domain' as never, '=', row.domain as never).execute();
    await trx.deleteFrom('domains').where('domain', '=', row.domain).execute();
    await appendAudit(trx, {
      at: who.now,
      actor: who.actor,
      domain: row.domain,
      action: 'unenroll',
      reason: `${opts.reason}; ${restored === null ? `the live record is left as it is (${row.last_record ?? 'never written by this program'})` : `restored the record found at enrolment: ${restored}`}`,
      details: { plan: row.plan, provider: row.provider, state: row.state, stage_index: row.stage_index, last_record: row.last_record, found_record: row.found_record, restored: restored !== null },
    });
  });
  return `${row.domain} unenrolled; ${restored === null ? 'its live record is left as it is' : `the record found at enrolment is back: ${restored}`} (its audit log and stage history are kept)`;
}

/** Moves a domain to another configured provider, after reading its record there: it must hold what this program last wrote. */
export async function setProvider(store: Store, input: string, who: Actor, opts: { provider: string; providers: ProviderLookup; reason: string }): Promise<string> {
  needReason(opts.reason, 'set-provider');
  const row = await enrolledDomain(store, input);
  if (row.provider === opts.provider) return `${row.domain} already uses provider ${opts.provider}`;
  const provider = providerForEnrolment(opts.provider, opts.providers);
  await noChangeInFlight(store, row.domain, 'set-provider');
  const fqdn = dmarcName(row.domain);
  let view;
  try {
    view = await provider.inspect(fqdn);
  } catch (error) {
    throw new ActionError(`reading ${fqdn} through provider ${opts.provider} failed: ${errorMessage(error)}`, 'invalid', 'provider', { cause: error });
  }
  if (view.cname || (view.delegation && view.delegation.length > 0)) {
    throw new ActionError(`${fqdn} is ${view.cname ? `a CNAME to ${view.cname}` : `delegated to ${view.delegation!.join(', ')}`} at provider ${opts.provider}; it cannot manage the record there`, 'invalid', 'provider');
  }
  const live = dmarcRecordsOf(view.txt);
  const expected = row.last_record ?? row.found_record;
  if (!(live.length === (expected === null ? 0 : 1) && (expected === null || live[0] === expected))) {
    throw new ActionError(`${fqdn} at provider ${opts.provider} holds ${live.length === 0 ? 'no DMARC record' : live.map((r) => `"${r}"`).join(', ')}, not ${expected === null ? 'nothing' : `"${expected}"`}: that provider does not serve this domain's record (check the zone is the one receivers see)`, 'invalid', 'provider');
  }
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, row.domain, { provider: opts.provider, updated_at: who.now.toISOString() });
    await appendAudit(trx, { at: who.now, actor: who.actor, domain: row.domain, action: 'set-provider', reason: `provider ${row.provider ?? 'none'} -> ${opts.provider}: ${opts.reason}` });
  });
  return `${row.domain} now uses provider ${opts.provider} (was ${row.provider ?? 'none'})`;
}

/** Moves a domain to another plan, keeping its stage by label; refused when the new plan has no such stage. */
export async function setPlan(store: Store, input: string, who: Actor, opts: { plan: Plan; current: (name: string) => Plan; reason: string }): Promise<string> {
  needReason(opts.reason, 'set-plan');
  const row = await enrolledDomain(store, input);
  if (row.plan === opts.plan.name) return `${row.domain} is already on plan ${opts.plan.name}`;
  await noChangeInFlight(store, row.domain, 'set-plan');
  let old: Plan;
  try {
    old = opts.current(row.plan);
  } catch (error) {
    throw new ActionError(`the current plan ${row.plan} of ${row.domain} cannot be read (${errorMessage(error).split('\n')[0]}); its stage cannot be carried over`, 'conflict', undefined, { cause: error });
  }
  const label = (p: Plan, i: number | null) => (i === null || !p.stages[i] ? null : stageLabel(p.stages[i]!));
  const stage = label(old, row.stage_index);
  const index = opts.plan.stages.findIndex((s) => stageLabel(s) === stage);
  if (stage === null || index < 0) {
    throw new ActionError(`plan ${opts.plan.name} has no stage ${stage ?? `${row.stage_index + 1}`} (${opts.plan.stages.map(stageLabel).join(', ')}); the domain's stage would be lost (force it to a stage both plans share first)`, 'invalid', 'plan');
  }
  const floorLabel = label(old, row.floor_index);
  const floorIndex = floorLabel === null ? null : opts.plan.stages.findIndex((s) => stageLabel(s) === floorLabel);
  const approvedLabel = label(old, row.approved_stage_index);
  const approvedIndex = approvedLabel === null ? -1 : opts.plan.stages.findIndex((s) => stageLabel(s) === approvedLabel);
  const fresh = await getDomain(store.db, row.domain);
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, row.domain, {
      plan: opts.plan.name,
      stage_index: index,
      // The floor keeps its meaning (a stage label); a plan without that stage keeps its first stage at or above it.
      floor_index: floorIndex === null ? null : floorIndex >= 0 ? floorIndex : floorAtOrAbove(opts.plan, old.stages[row.floor_index!]!, index),
      approved_stage_index: approvedIndex >= 0 ? approvedIndex : null,
      updated_at: who.now.toISOString(),
    });
    await appendAudit(trx, {
      at: who.now,
      actor: who.actor,
      domain: row.domain,
      action: 'set-plan',
      reason: `plan ${row.plan} -> ${opts.plan.name} at ${stage}: ${opts.reason}`,
      details: { from_plan: row.plan, to_plan: opts.plan.name, plan_file: opts.plan.file, stage, state: fresh?.state },
    });
  });
  return `${row.domain} now follows plan ${opts.plan.name}, still at ${stage}`;
}

/** What the doors hand the lifecycle besides the store: plans by name and the configured providers. */
export interface LifecycleContext {
  store: Store;
  loadPlan(name: string): Plan;
  providers?: ProviderLookup;
}

/** set-plan by a registered plan's name (the API and the page); an unknown or invalid plan is refused naming the field. */
export async function setPlanByName(ctx: LifecycleContext, input: string, who: Actor, planName: string, reason: string): Promise<string> {
  let plan: Plan;
  try {
    plan = ctx.loadPlan(planName);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    throw new ActionError(`plan ${planName || '(none given)'} cannot be used: ${error.message}`, 'invalid', 'plan', { cause: error });
  }
  return setPlan(ctx.store, input, who, { plan, current: ctx.loadPlan, reason });
}

/** unenroll with the domain's own configured provider for a restore (the API and the page). */
export async function unenrollFromPage(ctx: LifecycleContext, input: string, who: Actor, reason: string, restore: boolean): Promise<string> {
  const row = await enrolledDomain(ctx.store, input);
  const provider = restore && row.provider !== null && (ctx.providers?.names ?? []).includes(row.provider) ? ctx.providers!.get(row.provider) : undefined;
  return unenroll(ctx.store, row.domain, who, { reason, restore, ...(provider ? { provider } : {}) });
}
