/**
 * What a person can do to a domain: approve a gated step, pause, resume, roll
 * back, force a stage, and classify a sending source. Each is audited with who
 * did it and why. Changes of stage are queued as intents that the next tick
 * applies through the same verified path as the engine's own moves.
 */
import { BlockList } from 'node:net';
import { AppError, errorMessage } from '../errors.js';
import { openFreshWindow } from '../engine/fresh-window.js';
import { addAddressOrSubnet } from '../engine/sources.js';
import type { Plan } from '../plans/index.js';
import { parseStageLabel, stageLabel } from '../record/index.js';
import { appendAudit } from '../store/audit.js';
import { getDomain, updateDomain } from '../store/domains.js';
import { replaceRequestedIntent, requestedIntent } from '../store/intents.js';
import type { Store } from '../store/open.js';
import type { DomainRow, SourceRuleRow } from '../store/schema.js';
import { addSourceRule, deleteSourceRule, getSourceRule } from '../store/source-rules.js';
import { normalizeDomainName } from '../names.js';

export interface Actor {
  actor: string;
  now: Date;
}

/**
 * Why an action cannot be done: `invalid` input (naming the `field`), a thing
 * that is `not-found`, or a `conflict` with the domain's state. The CLI prints
 * the message; the API answers 400, 404 or 409 from the kind.
 */
export type ActionErrorKind = 'invalid' | 'not-found' | 'conflict';

/** An action a person asked for that cannot be done, with the reason. */
export class ActionError extends AppError {
  override name = 'ActionError';
  constructor(
    message: string,
    readonly kind: ActionErrorKind = 'conflict',
    /** The input at fault (`domain`, `to`, `reason`, `source`, `id`), for kind invalid or not-found. */
    field?: string,
    options: { cause?: unknown } = {},
  ) {
    super(kind, message, { ...options, ...(field === undefined ? {} : { field }) });
  }
}

/** The enrolled domain a person named. @throws ActionError invalid (not a domain name) or not-found (not enrolled). */
export async function enrolledDomain(store: Store, input: string, field = 'domain'): Promise<DomainRow> {
  const name = normalizeDomainName(input);
  if (!name.ok) throw new ActionError(`"${input}": ${name.reason}`, 'invalid', field);
  const row = await getDomain(store.db, name.domain);
  if (!row) throw new ActionError(`${name.domain} is not enrolled`, 'not-found', field);
  return row;
}

const labelAt = (plan: Plan, index: number) => {
  const s = plan.stages[index];
  return s ? stageLabel(s) : `stage ${index + 1}`;
};

/** Approves the move into the next stage (the gated one). */
export async function approve(store: Store, input: string, plan: (name: string) => Plan, who: Actor, reason = 'approved'): Promise<string> {
  const row = await enrolledDomain(store, input);
  const p = plan(row.plan);
  const next = row.stage_index + 1;
  if (!p.stages[next]) throw new ActionError(`${row.domain} is at the last stage of plan ${p.name}; there is nothing to approve`);
  // An approval opens one gate the plan set: on a domain that is not moving, or for a step the plan does not gate, it would mean nothing.
  if (row.state !== 'active') throw new ActionError(`${row.domain} is ${row.state}${row.state_reason ? ` (${row.state_reason})` : ''}; resume it before approving its next stage`);
  if (!p.stages[next]!.requires_approval) {
    throw new ActionError(`${labelAt(p, next)}, the next stage of ${row.domain}, is not gated in plan ${p.name}: the engine moves there on the evidence alone, so there is nothing to approve`);
  }
  if (row.approved_stage_index === next) return `${row.domain}: ${labelAt(p, next)} is already approved`;
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, row.domain, { approved_stage_index: next, updated_at: who.now.toISOString() });
    await appendAudit(trx, { at: who.now, actor: who.actor, domain: row.domain, action: 'approve', reason: `${labelAt(p, next)} approved: ${reason}` });
  });
  return `${row.domain}: ${labelAt(p, next)} approved; the next tick advances once ${labelAt(p, row.stage_index)} is clean`;
}

export async function pause(store: Store, input: string, who: Actor, reason: string): Promise<string> {
  if (reason.trim() === '') throw new ActionError('a pause needs a reason (--reason)', 'invalid', 'reason');
  const row = await enrolledDomain(store, input);
  if (row.state === 'paused') return `${row.domain} is already paused`;
  await setState(store, row, 'paused', reason, who, 'pause');
  return `${row.domain} paused: nothing moves until resume`;
}

/** Resumes a paused or halted domain. A halted domain's record is re-read by the next tick before any write. */
export async function resume(store: Store, input: string, who: Actor, reason: string): Promise<string> {
  const row = await enrolledDomain(store, input);
  if (row.state === 'active') return `${row.domain} is already active`;
  if (row.state === 'completed') throw new ActionError(`${row.domain} completed its plan; force a stage to restart it`);
  const fresh = await openFreshWindow(store, row, who.now);
  await setState(store, row, 'active', null, who, 'resume', fresh ? `${reason}; ${fresh}` : reason);
  return `${row.domain} resumed (was ${row.state})${fresh ? `; ${fresh}` : ''}`;
}

/** After a drift stop, the person who fixed the zone says which record is now ours to track. */
export async function adoptLiveRecord(store: Store, input: string, record: string | null, who: Actor): Promise<void> {
  const row = await enrolledDomain(store, input);
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, row.domain, { last_record: record, updated_at: who.now.toISOString() });
    await appendAudit(trx, { at: who.now, actor: who.actor, domain: row.domain, action: 'adopt-record', reason: `now tracking ${record ?? 'no record'}` });
  });
}

async function setState(store: Store, row: DomainRow, state: DomainRow['state'], stateReason: string | null, who: Actor, action: string, reason = stateReason ?? '') {
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, row.domain, { state, state_reason: stateReason, updated_at: who.now.toISOString() });
    await appendAudit(trx, { at: who.now, actor: who.actor, domain: row.domain, action, reason: reason || action });
  });
}

/** Queues a move back: one stage, or to a named earlier stage of the plan. */
export async function rollback(store: Store, input: string, plan: (name: string) => Plan, who: Actor, opts: { to?: string; reason: string }): Promise<string> {
  const row = await enrolledDomain(store, input);
  const p = plan(row.plan);
  const toIndex = opts.to === undefined ? row.stage_index - 1 : stageIndexOf(p, opts.to);
  if (toIndex < 0) throw new ActionError(`${row.domain} is at the first stage; there is nothing to roll back to`);
  if (toIndex >= row.stage_index) throw new ActionError(`${labelAt(p, toIndex)} is not before the current stage ${labelAt(p, row.stage_index)}; use force`);
  await queueMove(store, row, p, toIndex, 'rollback', who, opts.reason);
  return `${row.domain}: rollback to ${labelAt(p, toIndex)} queued; the next tick writes and verifies it`;
}

/** Queues a move to any stage of the plan, forwards or back; a reason is required. */
export async function force(store: Store, input: string, plan: (name: string) => Plan, who: Actor, opts: { to: string; reason: string }): Promise<string> {
  if (opts.reason.trim() === '') throw new ActionError('force needs a reason (--reason)', 'invalid', 'reason');
  const row = await enrolledDomain(store, input);
  const p = plan(row.plan);
  const toIndex = stageIndexOf(p, opts.to);
  await queueMove(store, row, p, toIndex, 'force', who, opts.reason);
  return `${row.domain}: force to ${labelAt(p, toIndex)} queued; the next tick writes and verifies it`;
}

function stageIndexOf(plan: Plan, label: string): number {
  let target;
  try {
    target = parseStageLabel(label);
  } catch (error) {
    throw new ActionError(errorMessage(error), 'invalid', 'to', { cause: error });
  }
  const index = plan.stages.findIndex((s) => s.policy === target.policy && s.pct === target.pct);
  if (index < 0) throw new ActionError(`${stageLabel(target)} is not a stage of plan ${plan.name} (${plan.stages.map(stageLabel).join(', ')})`, 'invalid', 'to');
  return index;
}

async function queueMove(store: Store, row: DomainRow, plan: Plan, toIndex: number, action: string, who: Actor, reason: string) {
  await store.db.transaction().execute(async (trx) => {
    // Checked and replaced in one transaction: a tick that claims the queued
    // move meanwhile makes this a 409 with the reason, never a "queued" that is lost.
    const queued = await replaceRequestedIntent(
      trx,
      requestedIntent({ domain: row.domain, action, fromIndex: row.stage_index, toIndex, ttl: plan.record_ttl, actor: who.actor, reason, at: who.now }),
    );
    if ('blockedBy' in queued) {
      const busy = queued.blockedBy;
      throw new ActionError(
        `${row.domain} has a change to ${labelAt(plan, busy.to_index)} in flight (${busy.status === 'written' ? 'written to DNS, being verified' : 'being written to DNS'}); your ${action} was not queued: try again once it has verified or failed`,
      );
    }
    // A person's move also ends a halt or pause: they have looked.
    await updateDomain(trx, row.domain, { state: 'active', state_reason: null, updated_at: who.now.toISOString() });
    await appendAudit(trx, {
      at: who.now,
      actor: who.actor,
      domain: row.domain,
      action,
      reason: `${labelAt(plan, row.stage_index)} -> ${labelAt(plan, toIndex)}: ${reason}`,
    });
  });
}

export type SourceSpec = { kind: 'ip' | 'dkim' | 'spf'; value: string };

/** Reads `192.0.2.0/24`, `2001:db8::1`, `dkim:esp.example` or `spf:bounce.esp.example`. */
export function parseSourceSpec(text: string): SourceSpec {
  const match = /^(dkim|spf):(.+)$/i.exec(text.trim());
  if (match) {
    const name = normalizeDomainName(match[2]!);
    if (!name.ok) throw new ActionError(`"${text}": ${name.reason}`, 'invalid', 'source');
    return { kind: match[1]!.toLowerCase() as 'dkim' | 'spf', value: name.domain };
  }
  try {
    addAddressOrSubnet(new BlockList(), text.trim());
  } catch (error) {
    throw new ActionError(`"${text}": not an IP, CIDR, dkim:<domain> or spf:<domain>`, 'invalid', 'source');
  }
  return { kind: 'ip', value: text.trim() };
}

/** Allowlists a source (authorised) or marks it as abuse, for one domain or (domain null) all. */
export async function classifySource(
  store: Store,
  domainInput: string | null,
  spec: string,
  verdict: 'authorised' | 'abuse',
  who: Actor,
  note: string | null = null,
): Promise<{ message: string; added: boolean; rule: SourceRuleRow }> {
  const domain = domainInput === null ? null : (await enrolledDomain(store, domainInput)).domain;
  const source = parseSourceSpec(spec);
  const { added, rule } = await addSourceRule(store.db, {
    domain,
    kind: source.kind,
    value: source.value,
    verdict,
    added_by: who.actor,
    added_at: who.now.toISOString(),
    note,
  });
  const scope = domain ?? 'every domain';
  const what = `${source.kind === 'ip' ? '' : `${source.kind}:`}${source.value}`;
  if (!added) return { added, rule, message: `${what} is already ${verdict === 'authorised' ? 'allowlisted' : 'marked as abuse'} for ${scope}` };
  await appendAudit(store.db, {
    at: who.now,
    actor: who.actor,
    domain,
    action: verdict === 'authorised' ? 'allow' : 'mark-abuse',
    reason: `${what} ${verdict === 'authorised' ? 'allowlisted' : 'marked as abuse'} for ${scope}${note ? `: ${note}` : ''}`,
  });
  return { added, rule, message: `${what} ${verdict === 'authorised' ? 'allowlisted' : 'marked as abuse'} for ${scope}` };
}

/** Removes an allowlist or abuse entry made with classifySource (config entries live in the config file). */
export async function removeSourceRule(store: Store, id: number, who: Actor, reason: string): Promise<string> {
  const rule = await getSourceRule(store.db, id);
  if (!rule) throw new ActionError(`there is no allowlist entry ${id}`, 'not-found', 'id');
  const what = `${rule.kind === 'ip' ? '' : `${rule.kind}:`}${rule.value}`;
  const scope = rule.domain ?? 'every domain';
  const text = `${what} is no longer ${rule.verdict === 'authorised' ? 'allowlisted' : 'marked as abuse'} for ${scope}`;
  await store.db.transaction().execute(async (trx) => {
    await deleteSourceRule(trx, id);
    await appendAudit(trx, { at: who.now, actor: who.actor, domain: rule.domain, action: 'remove-source-rule', reason: `${text}: ${reason}` });
  });
  return text;
}
