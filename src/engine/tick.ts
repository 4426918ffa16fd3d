/**
 * One tick of the rollout: for each domain, resume a change in flight, or
 * measure its stage, decide, and apply the decision through its DNS provider.
 * Every decision is audited once (a tick that decides the same thing again
 * writes nothing), so two ticks at the same instant change nothing the second
 * time. The daemon schedules this; the CLI and simulate call it directly.
 */
import type { DnsProvider } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import { loadPlan, type Plan } from '../plans/index.js';
import { dmarcName, dmarcRecordsOf, parseRecord, stageLabel, tagValue } from '../record/index.js';
import { appendAudit, recentAudit } from '../store/audit.js';
import { domainsInChunks, enrolledBetween, findDomains, getDomain, stageHistory, updateDomain } from '../store/domains.js';
import { getIntent, insertIntent, requestedIntent } from '../store/intents.js';
import { loadRollupRows } from '../store/rollups.js';
import { enrolledNames, saveAssessment, type AssessmentMarks } from '../store/assessments.js';
import { claimLease, releaseLease } from '../store/leases.js';
import { listReporterAcknowledgements, loadReportArrivals } from '../store/report-arrivals.js';
import type { Store } from '../store/open.js';
import type { DomainRow } from '../store/schema.js';
import { sourceRulesFor } from '../store/source-rules.js';
import { applyIntent, driftReason, providerVerifier, type ApplyOutcome, type Verifier } from './apply.js';
import { decide } from './decide.js';
import { headlineFigures } from './figures.js';
import { LOOKBACK_DAYS, measureStageInSteps, type MeasureInput } from './metrics.js';
import { REPORTER_HISTORY_DAYS } from './reporters.js';
import { checkReuse, indexEnrolled, marksReader, reuseRecord } from './reuse.js';
import { SourceRules } from './sources.js';
import { runInTurns } from './steps.js';
import type { Decision, DomainSnapshot, SourceRule, StageMetrics } from './types.js';
import { DAY_SECONDS } from './window.js';

export interface TickOptions {
  store: Store;
  now: Date;
  /** The provider that hosts a domain's zone; throws with a reason when there is none. */
  providerFor(domain: DomainRow): DnsProvider;
  /** How a written change is verified; defaults to reading it back through the provider. */
  verifierFor?(provider: DnsProvider): Verifier;
  loadPlan?(name: string): Plan;
  /** Only these domains (A-labels); all when absent. */
  domains?: string[];
  /** Decide and report, but write nothing: no intents, no DNS, no audit. */
  dryRun?: boolean;
  /** Allowlist and abuse rules from the config (the store's own rules always apply). */
  sourceRules?: readonly SourceRule[];
  /**
   * Take each domain's lease before working on it (src/store/leases.ts), so
   * another instance ticking the same store skips it meanwhile: `holder`
   * names this instance, `ttlMs` is how long a lease outlives a holder that
   * died, `now` is the wall clock the instances share (not a simulated one).
   */
  lease?: { holder: string; ttlMs: number; now: () => Date };
  /**
   * Each domain's result as soon as it is done. Given, the results are not
   * also collected (runTick returns an empty list): a tick over a large
   * fleet then holds one domain's decision at a time, not one per domain
   * (a few kilobytes each: hundreds of megabytes at 100,000 domains).
   */
  onResult?: (result: DomainTickResult) => void | Promise<void>;
}

export interface DomainTickResult {
  domain: string;
  decision?: Decision;
  apply?: ApplyOutcome;
  /** Why the domain could not be handled this tick (bad plan, no provider). */
  error?: string;
  /** Left alone this tick: another instance holds its lease. */
  skipped?: string;
  /** Nothing new since its stored assessment: `decision` is the stored one, not measured again (src/engine/reuse.ts). */
  unchanged?: true;
}

/** What the engine knows about a domain at `now`: its plan, stage metrics and snapshot. */
export interface DomainAssessment {
  row: DomainRow;
  plan: Plan;
  metrics: StageMetrics;
  snapshot: DomainSnapshot;
}

export async function runTick(opts: TickOptions): Promise<DomainTickResult[]> {
  const plans = planCache(opts.loadPlan ?? loadPlan);
  // The names a chunk at a time with turns of the event loop between (one read of a large fleet would hold it);
  // the rows below a chunk at a time as the tick goes (holding every row of 100,000 domains costs memory and GC).
  const enrolled = await enrolledNames(opts.store.db);
  await indexEnrolled(enrolled);
  const wanted = opts.domains ? new Set(opts.domains) : null;
  const results: DomainTickResult[] = [];
  const done = async (result: DomainTickResult) => {
    if (opts.onResult) await opts.onResult(result);
    else results.push(result);
  };
  // What each stored assessment is checked against, read a chunk of the fleet at a time (src/engine/reuse.ts).
  const marks = marksReader(opts.store, [...enrolled].filter((d) => !wanted || wanted.has(d)));
  const chunks = wanted ? [[...(await findDomains(opts.store.db, [...wanted])).values()].sort((a, b) => (a.domain < b.domain ? -1 : 1))] : domainsInChunks(opts.store.db);
  for await (const chunk of chunks) for (const listed of chunk) {
    // Enrolled since the tick read the names: the next tick judges it, with the subdomain index that includes it.
    if (!enrolled.has(listed.domain)) continue;
    const lease = opts.lease && !opts.dryRun ? { ...opts.lease, name: `domain:${listed.domain}` } : null;
    if (lease && !(await claimLease(opts.store.db, lease.name, lease.holder, lease.now(), lease.ttlMs))) {
      await done({ domain: listed.domain, skipped: 'another instance holds its lease' });
      continue;
    }
    let result: DomainTickResult | null = null;
    try {
      // Read again under the lease: another instance may have moved it since the list was read.
      const row = lease ? await getDomain(opts.store.db, listed.domain) : listed;
      if (row) result = await tickDomain(opts, row, plans(row.plan), enrolled, marks);
    } catch (error) {
      // One broken domain (bad plan, unknown provider) must not stop the fleet.
      const message = errorMessage(error);
      result = { domain: listed.domain, error: message };
      if (!opts.dryRun) await auditUnhandled(opts.store, listed.domain, message, opts.now);
    } finally {
      if (lease) await releaseLease(opts.store.db, lease.name, lease.holder);
    }
    if (result) await done(result);
    // A turn of the event loop between domains: SQLite answers synchronously, so without it a
    // tick over a large fleet would hold off /healthz and every request until it ends.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return results;
}

/**
 * A domain the tick cannot handle at all (its plan or provider is gone from
 * the config) is audited, so it reaches the audit log, the page and the
 * notifications instead of only the tick's log; once per distinct reason, so
 * an hourly tick does not repeat it while nothing changes.
 */
async function auditUnhandled(store: Store, domain: string, reason: string, now: Date): Promise<void> {
  const [latest] = await recentAudit(store.db, { domain, limit: 1 });
  if (latest?.action === UNHANDLED_ACTION && latest.reason === reason) return;
  await appendAudit(store.db, { at: now, actor: 'engine', domain, action: UNHANDLED_ACTION, reason });
}

/** The audit action of a domain the tick refused to handle (notifications announce it as a refused change). */
export const UNHANDLED_ACTION = 'tick-refused';

async function tickDomain(
  opts: TickOptions,
  row: DomainRow,
  plan: Plan,
  enrolled: ReadonlySet<string>,
  marks: (domain: string) => Promise<AssessmentMarks>,
): Promise<DomainTickResult> {
  const { store, now } = opts;
  const intent = await getIntent(store.db, row.domain);
  // A paused or halted domain keeps a queued change queued; only a change
  // already written to DNS is still verified, so the store matches the zone.
  if (intent && (row.state === 'active' || intent.status === 'written')) {
    if (opts.dryRun) return { domain: row.domain };
    const provider = opts.providerFor(row);
    const verify = (opts.verifierFor ?? providerVerifier)(provider);
    const apply = await applyIntent({ store, provider, verify, plan, now }, row, intent);
    await haltAfterRollback(store, row.domain, intent, apply, plan, now);
    return { domain: row.domain, apply };
  }
  if (row.state !== 'active' || intent) return { domain: row.domain };
  if (!opts.dryRun) {
    const drift = await driftOf(opts, row);
    if (drift) {
      await store.db.transaction().execute(async (trx) => {
        await updateDomain(trx, row.domain, { state: 'halted', state_reason: drift, updated_at: now.toISOString() });
        await appendAudit(trx, { at: now, actor: 'engine', domain: row.domain, action: 'halt', reason: drift });
      });
      return { domain: row.domain, error: drift };
    }
  }

  // Read before measuring: a report stored meanwhile then marks the stored figures stale.
  // Nothing new since the stored assessment: its decision stands (src/engine/reuse.ts).
  const reuse = opts.dryRun ? null : await checkReuse(store, row, plan, { enrolled, ...(opts.sourceRules ? { configRules: opts.sourceRules } : {}), now, marks });
  if (reuse?.decision) return { domain: row.domain, decision: reuse.decision, unchanged: true };
  const lastReportId = reuse?.lastReportId ?? 0;
  const assessment = await assessDomain(store, row, plan, now, {
    enrolled,
    ...(opts.sourceRules ? { configRules: opts.sourceRules } : {}),
  });
  const decision = decide(assessment.snapshot, plan, assessment.metrics, now);
  if (opts.dryRun) return { domain: row.domain, decision };
  // The fleet page and the API read this instead of judging every domain per request.
  await saveAssessment(store.db, { domain: row.domain, plan: row.plan, stageIndex: row.stage_index, assessedAt: now, lastReportId, figures: headlineFigures(assessment.metrics, decision), reuse: reuseRecord(reuse!, assessment.metrics, decision) });

  const moves = decision.action === 'establish' || decision.action === 'advance' || decision.action === 'rollback';
  await store.db.transaction().execute(async (trx) => {
    // A person queued a move since this tick looked: theirs is applied below, the engine's is not queued over it.
    if (moves && (await getIntent(trx, row.domain))) return;
    const last = (await recentAudit(trx, { domain: row.domain, limit: 1, actor: 'engine' }))[0];
    const repeat = last !== undefined && last.action === decision.action && last.reason === decision.summary;
    if (!repeat || moves) {
      await appendAudit(trx, {
        at: now,
        actor: 'engine',
        domain: row.domain,
        action: decision.action,
        reason: decision.summary,
        details: { checks: decision.checks, metrics: metricsDigest(assessment.metrics) },
      });
    }
    if (moves) {
      await insertIntent(
        trx,
        requestedIntent({
          domain: row.domain,
          action: decision.action,
          fromIndex: row.stage_index,
          toIndex: decision.toIndex!,
          ttl: plan.record_ttl,
          actor: 'engine',
          reason: decision.summary,
          at: now,
          decision,
        }),
      );
    } else if (decision.action === 'halt') {
      await updateDomain(trx, row.domain, { state: 'halted', state_reason: decision.summary, updated_at: now.toISOString() });
    } else if (decision.action === 'complete') {
      await updateDomain(trx, row.domain, { state: 'completed', state_reason: decision.summary, updated_at: now.toISOString() });
    }
  });
  if (!moves) return { domain: row.domain, decision };

  const provider = opts.providerFor(row);
  const verify = (opts.verifierFor ?? providerVerifier)(provider);
  const fresh = (await getDomain(store.db, row.domain))!;
  const newIntent = (await getIntent(store.db, row.domain))!;
  const apply = await applyIntent({ store, provider, verify, plan, now }, fresh, newIntent);
  await haltAfterRollback(store, row.domain, newIntent, apply, plan, now);
  return { domain: row.domain, decision, apply };
}

/**
 * A rollback the engine decided ends in one verified change, then the domain
 * halts for a person: stepping back again and again on the same broken
 * sender would only hide it. A person's own rollback does not halt.
 */
async function haltAfterRollback(store: Store, domain: string, intent: { action: string; actor: string }, apply: ApplyOutcome, plan: Plan, now: Date): Promise<void> {
  if (apply.status !== 'verified' || intent.action !== 'rollback' || intent.actor !== 'engine') return;
  const stage = plan.stages[apply.toIndex]!;
  const reason = `rolled back to ${stageLabel(stage)} and halted for a person: find the failing sender (explain ${domain}), then resume; resume judges on a fresh window`;
  await store.db.transaction().execute(async (trx) => {
    await updateDomain(trx, domain, { state: 'halted', state_reason: reason, updated_at: now.toISOString() });
    await appendAudit(trx, { at: now, actor: 'engine', domain, action: 'halt', reason });
  });
}

/**
 * Compare-and-set between moves too: a record changed by hand while the
 * domain holds would otherwise be judged as the stage we think is live. The
 * check asks DNS (the verifier), which costs no provider API quota; when DNS
 * cannot answer, the tick goes on and the next one asks again.
 */
async function driftOf(opts: TickOptions, row: DomainRow): Promise<string | null> {
  if (row.last_record === null) return null;
  let provider: DnsProvider;
  try {
    provider = opts.providerFor(row);
  } catch {
    return null;
  }
  const fqdn = dmarcName(row.domain);
  try {
    if (await (opts.verifierFor ?? providerVerifier)(provider)(fqdn, row.last_record)) return null;
    const live = dmarcRecordsOf(await provider.readTxt(fqdn));
    if (live.length === 1 && live[0] === row.last_record) return null;
    return driftReason(fqdn, row.last_record, live.length === 0 ? null : live.join(' | '));
  } catch {
    return null;
  }
}

/** Measures a domain's current stage at `now`: the figures explain and decide() work from. */
export interface AssessOptions {
  /** Every enrolled domain; read from the store when absent. */
  enrolled?: ReadonlySet<string>;
  /** Allowlist and abuse rules from the config, added to the store's. */
  configRules?: readonly SourceRule[];
  /** Rollup entries read a statement (default rollupPageSize(); a benchmark's baseline reads them in one). */
  rollupPageSize?: number;
}

/**
 * The span of rollups measuring `row` at `now` reads: the look-back, or the
 * stage window when it began earlier. What is stored has arrived (the daemon
 * ingests as reports come, and simulate stores each one on the day it
 * arrives); through the next midnight, since a report ending before it
 * enters the figures then and stableUntil must see it.
 */
export function rollupRange(row: Pick<DomainRow, 'window_start'>, now: Date): { fromEpoch: number; toEpoch: number } {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const windowStart = row.window_start === null ? null : new Date(row.window_start);
  const fromEpoch = Math.min(nowSeconds - LOOKBACK_DAYS * DAY_SECONDS, windowStart ? windowStart.getTime() / 1000 : Infinity);
  return { fromEpoch, toEpoch: (Math.floor(nowSeconds / DAY_SECONDS) + 1) * DAY_SECONDS };
}

/** What the engine measures `row`'s stage from: what was read for it, with the plan's settings. */
export function measureInputOf(
  row: DomainRow,
  plan: Plan,
  now: Date,
  read: Pick<MeasureInput, 'rows' | 'rules' | 'arrivals' | 'acknowledgements'> & { enrolled: ReadonlySet<string> },
): MeasureInput {
  return {
    domain: row.domain,
    rows: read.rows,
    windowStart: row.window_start === null ? null : new Date(row.window_start),
    now,
    enrolledDomains: read.enrolled,
    subdomainsJudged: subdomainsFollowRecord(plan, row.last_record),
    rules: read.rules,
    unalignedSourceMinMessages: plan.unaligned_source_min_messages,
    quietReporterDays: plan.quiet_reporter_days,
    arrivals: read.arrivals,
    acknowledgements: read.acknowledgements,
    lateSlackHours: plan.late_reporter_slack_hours,
    recentDays: plan.recent_days,
  };
}

export async function assessDomain(store: Store, row: DomainRow, plan: Plan, now: Date, opts: AssessOptions = {}): Promise<DomainAssessment> {
  const { enrolled } = opts;
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const range = rollupRange(row, now);
  const { fromEpoch } = range;
  // A page of rollups at a time, and the engine below in steps, each with turns of the event loop between:
  // a domain with 100,000 entries takes seconds to read and measure, which would otherwise hold every request.
  const rows = await loadRollupRows(store.db, row.domain, range, opts.rollupPageSize !== undefined ? { pageSize: opts.rollupPageSize } : {});
  const arrivals = await loadReportArrivals(store.db, row.domain, {
    fromEpoch: Math.min(fromEpoch, nowSeconds - REPORTER_HISTORY_DAYS * DAY_SECONDS),
    toEpoch: nowSeconds,
  });
  const acknowledgements = await listReporterAcknowledgements(store.db, row.domain);
  const configRules = (opts.configRules ?? []).filter((r) => r.domain === null || r.domain === row.domain);
  const rules = new SourceRules([...(await sourceRulesFor(store.db, row.domain)), ...configRules]);
  // Judging one domain on its own (a page, explain): the enrolled names its rows' attribution looks at, not the fleet's.
  const enrolledSet = enrolled ?? (await enrolledBetween(store.db, rows.map((r) => r.headerFrom), row.domain));
  const metrics = await runInTurns(measureStageInSteps(measureInputOf(row, plan, now, { rows, enrolled: enrolledSet, rules, arrivals, acknowledgements })));
  const snapshot: DomainSnapshot = {
    domain: row.domain,
    state: row.state,
    stageIndex: row.stage_index,
    stageSince: row.stage_since,
    approvedStageIndex: row.approved_stage_index,
    lastCleanStageIndex: lastCleanStage(plan, row.stage_index, await stageHistory(store.db, row.domain)),
  };
  // The reporter history slides too: an arrival leaves it when its end (or its begin, 31 days more) falls behind.
  const historySpan = nowSeconds - Math.min(fromEpoch, nowSeconds - REPORTER_HISTORY_DAYS * DAY_SECONDS);
  const leaves = arrivals.map((a) => Math.min(a.end + historySpan, a.begin + historySpan + 31 * DAY_SECONDS) + 1).filter((t) => t > nowSeconds);
  if (metrics.stableUntil !== undefined && leaves.length > 0) {
    metrics.stableUntil = new Date(Math.min(Date.parse(metrics.stableUntil), Math.min(...leaves) * 1000)).toISOString();
  }
  return { row, plan, metrics, snapshot };
}

/**
 * The stage the domain last advanced from below `current`: it held cleanly
 * there (an advance needs every check passed), so a rollback returns to it.
 */
export function lastCleanStage(plan: Plan, current: number, history: Array<{ action: string; from_stage: string | null }>): number | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const change = history[i]!;
    if (change.action !== 'advance' || change.from_stage === null) continue;
    const index = plan.stages.findIndex((s) => stageLabel(s) === change.from_stage);
    if (index >= 0 && index < current) return index;
  }
  return null;
}

/** Subdomain mail moves with this record when the plan writes sp, or when the record has no sp (subdomains then follow p). */
export function subdomainsFollowRecord(plan: Plan, record: string | null): boolean {
  if (plan.manage.sp) return true;
  if (record === null) return true;
  return tagValue(parseRecord(record).tags, 'sp') === undefined;
}

function metricsDigest(m: StageMetrics) {
  const blocking = m.sources.filter((s) => s.blocking);
  return {
    window_start: m.windowStart,
    days_observed: m.daysObserved,
    days_pending: m.days?.pending ?? [],
    days_missed: m.days?.missed ?? [],
    late_reporters: m.reporters.filter((r) => r.late).map((r) => ({ reporter: r.reporter, awaited_day: r.awaitedDay })),
    authorised: m.authorised,
    spoofing: m.spoofing,
    all: m.all,
    // The first hundred (most mail first) and how many in all: an audit entry per decision need not carry thousands.
    blocking_sources: blocking.slice(0, 100).map((s) => s.key),
    blocking_sources_count: blocking.length,
    quiet_reporters: m.reporters.filter((r) => r.quiet).map((r) => r.reporter),
  };
}

function planCache(load: (name: string) => Plan): (name: string) => Plan {
  const cache = new Map<string, Plan>();
  return (name) => {
    let plan = cache.get(name);
    if (!plan) cache.set(name, (plan = load(name)));
    return plan;
  };
}
