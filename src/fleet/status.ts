/**
 * What the fleet looks like now: each domain's plan, stage, state and how long
 * it has been there. Read-only; the CLI, API and web page all show this.
 */
import { loadPlan, PlanError, type Plan } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import { recentAudit } from '../store/audit.js';
import { getDomain, listDomains, stageHistory } from '../store/domains.js';
import type { Store } from '../store/open.js';
import { getIntent, listIntents } from '../store/intents.js';
import type { AuditEvent, DomainRow, DomainState, Intent, StageChange } from '../store/schema.js';
import { stuckOf } from '../engine/planned-change.js';

export interface DomainStatus {
  domain: string;
  plan: string;
  provider: string | null;
  state: DomainState;
  state_reason: string | null;
  /** `policy:pct` of the stage in force, or null when the plan cannot be loaded. */
  stage: string | null;
  /** 1-based position and the plan's length, e.g. 3 of 13. */
  stage_number: number;
  stage_count: number | null;
  /** When the stage took effect (verified in DNS); null before the first verified write. */
  stage_since: string | null;
  /** Whole days since stage_since at `now`, null when not yet in effect. */
  days_in_stage: number | null;
  enrolled_at: string;
  /** The change in flight has failed this many times or more (STUCK_AFTER_ATTEMPTS) and its last error; null when not stuck. */
  stuck: { attempts: number; last_error: string | null } | null;
  /** Why the plan could not be loaded, when it could not. */
  plan_problem?: string;
}

export interface DomainDetail extends DomainStatus {
  record: string | null;
  history: StageChange[];
  audit: AuditEvent[];
}

/** Status of every enrolled domain at `now`. */
export async function fleetStatus(store: Store, now: Date, planLoader: (name: string) => Plan = loadPlan): Promise<DomainStatus[]> {
  const plans = cachedPlanLoader(planLoader);
  const rows = await listDomains(store.db);
  const intents = new Map((await listIntents(store.db)).map((i) => [i.domain, i]));
  return rows.map((row) => statusOf(row, plans(row.plan), now, intents.get(row.domain)));
}

/** Status of one domain with its stage history and recent audit events, or undefined if not enrolled. */
export async function domainDetail(
  store: Store,
  domain: string,
  now: Date,
  planLoader: (name: string) => Plan = loadPlan,
): Promise<DomainDetail | undefined> {
  const row = await getDomain(store.db, domain);
  if (!row) return undefined;
  const status = statusOf(row, cachedPlanLoader(planLoader)(row.plan), now, await getIntent(store.db, domain));
  return {
    ...status,
    record: row.last_record,
    history: await stageHistory(store.db, domain),
    audit: await recentAudit(store.db, { domain, limit: 20 }),
  };
}

const DAY_MS = 86_400_000;

/** A plan, or why it could not be loaded. */
export interface LoadedPlan {
  plan?: Plan;
  problem?: string;
}

/** A domain's status at `now`, given its plan as loaded. */
export function statusOf(row: DomainRow, loaded: LoadedPlan, now: Date, intent?: Intent): DomainStatus {
  const stage = loaded.plan?.stages[row.stage_index];
  const status: DomainStatus = {
    domain: row.domain,
    plan: row.plan,
    provider: row.provider,
    state: row.state,
    state_reason: row.state_reason,
    stage: stage ? stageLabel(stage) : null,
    stage_number: row.stage_index + 1,
    stage_count: loaded.plan?.stages.length ?? null,
    stage_since: row.stage_since,
    days_in_stage: row.stage_since === null ? null : Math.floor((now.getTime() - Date.parse(row.stage_since)) / DAY_MS),
    enrolled_at: row.enrolled_at,
    stuck: stuckOf(intent),
  };
  if (loaded.problem) status.plan_problem = loaded.problem;
  else if (!stage) status.plan_problem = `plan ${row.plan} has no stage ${row.stage_index + 1}`;
  return status;
}

/** Loads each plan once per call, keeping a plan's problem instead of throwing it, so one bad plan is reported, not fatal. */
export function cachedPlanLoader(load: (name: string) => Plan): (name: string) => LoadedPlan {
  const cache = new Map<string, LoadedPlan>();
  return (name) => {
    let entry = cache.get(name);
    if (!entry) {
      try {
        entry = { plan: load(name) };
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        entry = { problem: error.message };
      }
      cache.set(name, entry);
    }
    return entry;
  };
}
