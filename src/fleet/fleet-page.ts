/**
 * The fleet as the page, the API and the approvals queue list it: each
 * domain's status with the figures and decision the tick stored, filtered,
 * sorted and paged in SQL (src/store/assessments.ts). Only the domains on
 * the page whose stored figures are stale (never measured, moved, changed by
 * a person, a report or an allowlist entry since) are measured again, a few
 * at most per request and within a budget of work (rollup entries read),
 * with a turn of the event loop after each so health checks and other
 * requests are answered meanwhile; the result is stored. The rest show what
 * the tick stored, with its assessed_at, until the next request or tick.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { decide } from '../engine/decide.js';
import { assessDomain, rollupRange } from '../engine/tick.js';
import { headlineFigures } from '../engine/figures.js';
import type { Decision, SourceRule, StageMetrics } from '../engine/types.js';
import { loadPlan as defaultLoadPlan, type Plan } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import { enrolledPlans, fleetRows, latestReportId, saveAssessment, staleActiveDomains, staleAssessments, type FleetRow, type FleetSort } from '../store/assessments.js';
import { getDomain } from '../store/domains.js';
import { countRollupEntries } from '../store/rollups.js';
import type { Store } from '../store/open.js';
import type { DomainRow, Intent, StoredAssessment } from '../store/schema.js';
import { cachedPlanLoader, statusOf, type LoadedPlan } from './status.js';
import type { DomainOverview, FleetFilter, ViewContext } from './views.js';

export const FLEET_SORTS: readonly FleetSort[] = ['domain', 'state', 'stage', 'days_in_stage', 'authorised_fail_rate', 'authorised_messages', 'spoofing_messages', 'blocking_sources'];

/**
 * Stale domains a request looks at at most, measured again or passed over
 * for the budget of work below (each some 5 to 10 ms of CPU from its
 * rollups): a page answers in a fraction of a second however stale. The
 * rest of the page shows the stored figures with their assessed_at; the next
 * request or the tick measures them.
 */
export const REMEASURE_PER_REQUEST = 25;

/**
 * Rollup entries a request may read measuring stale domains again, in all:
 * a budget of work (measuring costs some 20 to 30 us of CPU an entry, read
 * and classed), so 0.1 to 0.15 s on a quiet machine. An ordinary domain has
 * a few hundred entries in its look-back; one a 400 MB report filled has
 * 100,000 and took seconds alone. Before measuring a stale domain its
 * entries are counted (on an index, at most what is left of the budget
 * plus one): one that does not fit what is left is not measured for this
 * request (it counts among the REMEASURE_PER_REQUEST domains looked at) and
 * shows the figures the tick stored, with their assessed_at, as every stale
 * domain past the budget does; the tick measures it. The count is the same
 * on every machine, so what a page measures does not depend on how loaded
 * the machine is.
 */
export const REMEASURE_ENTRIES_PER_REQUEST = 5_000;

export interface FleetPageQuery extends FleetFilter {
  /** Awaiting approval, or approved and not yet moved. */
  approvals?: boolean;
  sort?: FleetSort;
  order?: 'asc' | 'desc';
  /** Domains per page; null for all of them. */
  limit?: number | null;
  offset?: number;
  /** Stale domains to measure again in this call (default REMEASURE_PER_REQUEST). */
  remeasure?: number;
  /** Rollup entries this call may read measuring them (default REMEASURE_ENTRIES_PER_REQUEST). */
  remeasureEntries?: number;
}

export interface FleetPage {
  domains: DomainOverview[];
  /** Domains matching the filter, on every page. */
  total: number;
  /** The offset of the next page; null on the last. */
  next_offset: number | null;
}

/** The headline figures and decision of a domain, measured now or stored by a tick. */
export interface JudgedFigures {
  assessed_at: string;
  authorised_fail_rate: number | null;
  authorised_messages: number;
  spoofing_messages: number;
  blocking_sources: number;
  decision: { action: Decision['action']; to: string | null; summary: string } | null;
}

export function figuresOf(metrics: StageMetrics, decision: Decision, at: Date): JudgedFigures {
  return storedFigures({ ...headlineFigures(metrics, decision), assessed_at: at.toISOString() })!;
}

function storedFigures(a: Omit<StoredAssessment, 'domain' | 'plan' | 'stage_index' | 'last_report_id' | 'rollup_changes' | 'inputs' | 'recheck_at' | 'decision'>): JudgedFigures | null {
  if (a.decision_action === null) return null;
  return {
    assessed_at: a.assessed_at,
    authorised_fail_rate: a.authorised_fail_rate,
    authorised_messages: a.authorised_messages,
    spoofing_messages: a.spoofing_messages,
    blocking_sources: a.blocking_sources,
    decision: { action: a.decision_action as Decision['action'], to: a.decision_to, summary: a.decision_summary ?? '' },
  };
}

/** One row of the fleet table from the domain, its plan, its change in flight and its judged figures (null: not judged), stale or not. */
export function overviewFrom(row: DomainRow, loaded: LoadedPlan, now: Date, intent: Intent | undefined, judged: JudgedFigures | null, stale = false): DomainOverview {
  const plan = loaded.plan;
  const label = (index: number) => {
    const s = plan?.stages[index];
    return s ? stageLabel(s) : `stage ${index + 1}`;
  };
  // decide() judges any state; only an active domain with nothing in flight acts on it.
  const acts = row.state === 'active' && intent === undefined && judged !== null && judged.decision !== null;
  return {
    ...statusOf(row, loaded, now, intent),
    authorised_fail_rate: judged?.authorised_fail_rate ?? null,
    authorised_messages: judged?.authorised_messages ?? 0,
    spoofing_messages: judged?.spoofing_messages ?? 0,
    blocking_sources: judged?.blocking_sources ?? 0,
    assessed_at: judged?.assessed_at ?? null,
    figures_stale: stale,
    next_decision: acts ? judged!.decision : null,
    change_in_flight: intent
      ? {
          action: intent.action,
          to: label(intent.to_index),
          status: intent.status,
          attempts: intent.attempts,
          next_attempt_at: intent.next_attempt_at,
          last_error: intent.last_error,
          actor: intent.actor,
          reason: intent.reason,
        }
      : null,
    awaiting_approval: acts && judged!.decision!.action === 'await-approval',
    approved_stage: row.approved_stage_index !== null && row.approved_stage_index > row.stage_index ? label(row.approved_stage_index) : null,
  };
}

/**
 * Measures a domain at `now` as a tick would (assessDomain, decide) and
 * stores the figures. A domain whose plan cannot be loaded is stored with no
 * figures, so it is not measured again until something changes.
 */
export async function remeasure(
  store: Store,
  row: DomainRow,
  plan: Plan | undefined,
  now: Date,
  opts: { enrolled?: ReadonlySet<string>; configRules?: readonly SourceRule[] } = {},
): Promise<void> {
  const lastReportId = await latestReportId(store.db, row.domain);
  if (!plan || !plan.stages[row.stage_index]) {
    await saveAssessment(store.db, { domain: row.domain, plan: row.plan, stageIndex: row.stage_index, assessedAt: now, lastReportId, figures: null });
    return;
  }
  const assessment = await assessDomain(store, row, plan, now, opts);
  const decision = decide(assessment.snapshot, plan, assessment.metrics, now);
  await saveAssessment(store.db, { domain: row.domain, plan: row.plan, stageIndex: row.stage_index, assessedAt: now, lastReportId, figures: headlineFigures(assessment.metrics, decision) });
}

/** A page of the fleet table, filtered and sorted (default: by domain name, 100 a page). */
export async function fleetPage(store: Store, now: Date, ctx: ViewContext, q: FleetPageQuery = {}): Promise<FleetPage> {
  const load = cachedPlanLoader(ctx.loadPlan ?? defaultLoadPlan);
  const limit = q.limit === null ? Number.MAX_SAFE_INTEGER : (q.limit ?? 100);
  const offset = q.offset ?? 0;
  let stageIn: Array<{ plan: string; indices: number[] }> | undefined;
  if (q.stage !== undefined) {
    stageIn = (await enrolledPlans(store.db)).map((name) => ({
      plan: name,
      indices: (load(name).plan?.stages ?? []).flatMap((s, i) => (stageLabel(s) === q.stage ? [i] : [])),
    }));
  }
  const query = {
    ...(q.state !== undefined ? { state: q.state } : {}),
    ...(stageIn !== undefined ? { stageIn } : {}),
    ...(q.plan !== undefined ? { plan: q.plan } : {}),
    ...(q.provider !== undefined ? { provider: q.provider } : {}),
    ...(q.q !== undefined ? { q: q.q.toLowerCase() } : {}),
    ...(q.awaitingApproval !== undefined ? { awaitingApproval: q.awaitingApproval } : {}),
    ...(q.approvals ? { approvals: true } : {}),
    sort: q.sort ?? 'domain',
    order: q.order ?? 'asc',
    limit,
    offset,
  };
  let budget = q.remeasure ?? REMEASURE_PER_REQUEST;
  let entriesLeft = q.remeasureEntries ?? REMEASURE_ENTRIES_PER_REQUEST;
  const configRules = ctx.sourceRules ?? [];
  const measure = async (row: DomainRow) => {
    const entries = await countRollupEntries(store.db, row.domain, rollupRange(row, now), entriesLeft);
    // A domain passed over takes its place among the 25 too: once the entries run out, a request does not go on
    // counting every stale domain of the fleet (the approvals queue looks through all of them).
    budget -= 1;
    if (entries > entriesLeft) return;
    entriesLeft -= entries;
    // Without the fleet's names: attribution reads the few enrolled names its rows need (store/domains.ts enrolledBetween).
    await remeasure(store, row, load(row.plan).plan, now, { configRules });
    await nextTurn();
  };
  if ((q.awaitingApproval === true || q.approvals) && budget > 0) {
    // Whether a domain waits for approval is a stored figure: a domain that became ready since the last tick
    // would not match the filter, so the stale ones among those that could are measured first.
    // Only a domain at the stage before a gated one can come to wait (decide()), so only those are looked at,
    // a stage at a time, 500 a read, with a turn of the event loop between reads.
    const gatedNext = (await enrolledPlans(store.db)).flatMap((plan) =>
      (load(plan).plan?.stages ?? []).flatMap((_, stageIndex, stages) => (stages[stageIndex + 1]?.requires_approval ? [{ plan, stageIndex }] : [])),
    );
    for (const at of gatedNext) {
      let after: string | null = null;
      do {
        const chunk = await staleActiveDomains(store.db, { limit: budget, after, scan: 500, at });
        for (const name of chunk.stale) {
          const row = await getDomain(store.db, name);
          if (row) await measure(row);
        }
        after = chunk.last;
        await nextTurn();
      } while (budget > 0 && after !== null);
      if (budget <= 0) break;
    }
  }
  let { rows, total } = await fleetRows(store.db, query);
  let stale = await staleAssessments(store.db, rows);
  if (stale.size > 0 && budget > 0) {
    for (const { row } of rows) {
      if (budget <= 0) break;
      if (stale.has(row.domain)) await measure(row);
    }
    // Read the page again: the new figures may move domains across the filter or the order.
    ({ rows, total } = await fleetRows(store.db, query));
    // What is still stale (past the budget) says so: its figures are the tick's, from before the change.
    stale = await staleAssessments(store.db, rows);
  }
  const intents = await intentsOf(store, rows);
  return {
    domains: rows.map(({ row, assessment }) =>
      overviewFrom(row, load(row.plan), now, intents.get(row.domain), assessment ? storedFigures(assessment) : null, stale.has(row.domain)),
    ),
    total,
    next_offset: offset + rows.length < total && rows.length > 0 ? offset + rows.length : null,
  };
}

async function intentsOf(store: Store, rows: readonly FleetRow[]): Promise<Map<string, Intent>> {
  const out = new Map<string, Intent>();
  const names = rows.map((r) => r.row.domain);
  for (let i = 0; i < names.length; i += 500) {
    const found = await store.db.selectFrom('intents').selectAll().where('domain', 'in', names.slice(i, i + 500)).execute();
    for (const intent of found) out.set(intent.domain, intent);
  }
  return out;
}
