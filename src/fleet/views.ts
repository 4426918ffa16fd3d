/**
 * What a person looks at: the fleet with each domain's figures and next
 * decision, one domain in depth (sources, records now and next, a daily
 * series for the chart), the approvals queue, the audit log and the
 * allowlist. Read-only and computed with the engine's own functions
 * (assessDomain, decide), so the page, the API and `explain` can never
 * disagree with what a tick would do.
 */
import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { decide } from '../engine/decide.js';
import { attributeRow } from '../engine/metrics.js';
import { classifyRowsInSteps, dmarcPassed, SourceRules } from '../engine/sources.js';
import { pacer, runInTurns } from '../engine/steps.js';
import { assessDomain, subdomainsFollowRecord } from '../engine/tick.js';
import type { Check, Decision, DecisionAction, ReporterSummary, SourceClass, SourceRule, SourceSummary, SourceVerdict, StageMetrics } from '../engine/types.js';
import { DAY_SECONDS } from '../engine/window.js';
import { loadPlan as defaultLoadPlan, type Plan } from '../plans/index.js';
import { recordForPlanStage, stageLabel } from '../record/index.js';
import { planDigest } from '../engine/reuse.js';
import { assessmentMarks } from '../store/assessments.js';
import { newestAuditId, recentAudit } from '../store/audit.js';
import { enrolledBetween, getDomain, stageHistory } from '../store/domains.js';
import { getIntent } from '../store/intents.js';
import { loadRollupRows } from '../store/rollups.js';
import type { Store } from '../store/open.js';
import type { AuditEvent, DomainRow, Intent, SourceRuleRow, StageChange } from '../store/schema.js';
import { listSourceRules, sourceRulesFor } from '../store/source-rules.js';
import { ActionError, enrolledDomain } from './actions.js';
import { normalizeDomainName } from '../names.js';
import { cachedPlanLoader, type DomainStatus, type LoadedPlan } from './status.js';
import type { MeasuredDomains } from './measured-cache.js';
import { figuresOf, fleetPage, overviewFrom } from './fleet-page.js';

/** What every view needs besides the store and the clock. */
export interface ViewContext {
  loadPlan?: (name: string) => Plan;
  /** Allowlist and abuse rules from the daemon config (the store's always apply). */
  sourceRules?: readonly SourceRule[];
  /** Measurements kept between requests while what they stand on holds (the API server keeps one; src/fleet/measured-cache.ts). */
  measured?: MeasuredDomains;
}

/** A change written or queued but not yet verified in DNS: the stored intent's columns, with its target as a stage label. */
export type ChangeInFlight = Pick<Intent, 'action' | 'status' | 'attempts' | 'next_attempt_at' | 'last_error' | 'actor' | 'reason'> & { to: string };

/** One row of the fleet table. */
export interface DomainOverview extends DomainStatus {
  /** Authorised mail's DMARC fail rate in the stage window (0..1), null with no authorised mail. */
  authorised_fail_rate: number | null;
  authorised_messages: number;
  /** Unauthenticated (spoofing) messages in the stage window. */
  spoofing_messages: number;
  /** Unaligned sources that hold the domain until a person classifies them. */
  blocking_sources: number;
  /** What the next tick would decide now; null when it would not judge the domain (not active, change in flight, plan unloadable). */
  next_decision: { action: DecisionAction; to: string | null; summary: string } | null;
  change_in_flight: ChangeInFlight | null;
  /** The next stage needs approval and everything else says go. */
  awaiting_approval: boolean;
  /** The stage a person approved and the tick has not moved into yet. */
  approved_stage: string | null;
  /** When the figures and next decision were measured (by the last tick, or for this request); null when never. */
  assessed_at?: string | null;
  /**
   * True when something the figures stand on changed since assessed_at (a
   * report, a rule, the domain itself) and they were not measured again for
   * this request (its budget of work ran out): the next tick measures them.
   */
  figures_stale: boolean;
}

/** One UTC day of a domain's mail, for the chart. */
export interface DailyPoint {
  /** YYYY-MM-DD (UTC), the day the reports' ranges begin; days without reports are present with zeros. */
  day: string;
  messages: number;
  authorised: number;
  authorised_failed: number;
  /** authorised_failed / authorised, null when no authorised mail. */
  authorised_fail_rate: number | null;
  spoofing: number;
  /** The stage in force at the end of the day, null before the first verified write. */
  stage: string | null;
}

/** Everything the domain page and `GET /domains/{domain}` show. */
export interface DomainView extends DomainOverview {
  record_now: string | null;
  /** The record the next stage would publish (the live record edited), null at the last stage. */
  record_next: string | null;
  next_stage: string | null;
  /** The plan's stages in order, for choosing where to roll back to. */
  plan_stages: Array<{ label: string; requires_approval: boolean }>;
  /** Why record_next could not be computed, when it could not. */
  record_next_problem: string | null;
  /** The stage window's figures; null when the plan cannot be loaded. */
  metrics: Omit<StageMetrics, 'sources' | 'reporters'> | null;
  checks: Check[];
  /**
   * Per class, the sources holding the domain first, then those sending the
   * most over the look-back: at most SOURCES_LISTED of each class.
   */
  sources: SourceSummary[];
  /** Per class, the sources past SOURCES_LISTED and their messages in the stage window (all 0 when every source is listed). */
  sources_omitted: Record<SourceClass, { sources: number; messages: number }>;
  reporters: ReporterSummary[];
  daily: DailyPoint[];
  history: StageChange[];
  audit: AuditEntryView[];
}

/** An audit event with its details parsed. */
export type AuditEntryView = Omit<AuditEvent, 'details'> & { details: unknown };

interface Judged {
  metrics: StageMetrics;
  decision: Decision;
}

/**
 * The fleet table: every domain with the figures and next decision the last
 * tick stored (src/fleet/fleet-page.ts; stale ones measured again, a few a
 * call). fleetPage() gives one page of it, filtered and sorted.
 */
export async function fleetOverview(store: Store, now: Date, ctx: ViewContext = {}): Promise<DomainOverview[]> {
  const all: DomainOverview[] = [];
  await forEachOverviewPage(store, now, ctx, (page) => void all.push(...page));
  return all;
}

/**
 * Every enrolled domain's row in name order, handed to `each` a page of
 * OVERVIEW_PAGE at a time with a turn of the event loop between: the whole
 * of a large fleet in one read and one pass would hold the loop (and
 * /healthz) for its length. Only the first page may measure stale domains
 * again (a request's budget); the rest show what the tick stored.
 */
export async function forEachOverviewPage(store: Store, now: Date, ctx: ViewContext, each: (page: DomainOverview[]) => Promise<void> | void): Promise<void> {
  for (let offset: number | null = 0; offset !== null; ) {
    const page = await fleetPage(store, now, ctx, { limit: OVERVIEW_PAGE, offset, ...(offset > 0 ? { remeasure: 0 } : {}) });
    await each(page.domains);
    offset = page.next_offset;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Domains a page of forEachOverviewPage(). */
const OVERVIEW_PAGE = 250;

/** One row of the fleet table, or undefined when the domain is not enrolled. */
export async function domainOverview(store: Store, domain: string, now: Date, ctx: ViewContext = {}): Promise<DomainOverview | undefined> {
  const row = await getDomain(store.db, domain);
  return row ? (await overviewOf(store, row, now, ctx, planLoader(ctx))).overview : undefined;
}

/** What the fleet can be narrowed to; every field given must match. */
export interface FleetFilter {
  state?: DomainOverview['state'];
  stage?: string;
  plan?: string;
  provider?: string;
  /** Part of the domain name, any case. */
  q?: string;
  awaitingApproval?: boolean;
}

export function filterFleet(domains: DomainOverview[], f: FleetFilter): DomainOverview[] {
  const needle = f.q?.toLowerCase();
  return domains.filter(
    (d) =>
      (f.state === undefined || d.state === f.state) &&
      (f.stage === undefined || d.stage === f.stage) &&
      (f.plan === undefined || d.plan === f.plan) &&
      (f.provider === undefined || d.provider === f.provider) &&
      (needle === undefined || d.domain.includes(needle)) &&
      (f.awaitingApproval === undefined || d.awaiting_approval === f.awaitingApproval),
  );
}

/** Domains waiting for a person: the next stage is gated and everything else says go, or approved and not yet moved. */
export async function approvalsQueue(store: Store, now: Date, ctx: ViewContext = {}): Promise<DomainOverview[]> {
  return (await fleetPage(store, now, ctx, { approvals: true, limit: null })).domains.filter((d) => d.awaiting_approval || d.approved_stage !== null);
}

/**
 * Sources listed per class on the domain page and in `GET /domains/{domain}`.
 * A domain a big receiver reports in full can have 100,000 sources; the
 * page, the response and its schema check for those took over a second on
 * the event loop, and nobody reads past the first few hundred. What is left
 * out is counted (sources and messages) per class.
 */
export const SOURCES_LISTED = 200;

const SOURCE_CLASSES: readonly SourceClass[] = ['authorised', 'unaligned', 'forwarded', 'unauthenticated'];

/** `sources` (the engine's order: most look-back mail first) cut to `perClass` a class, the blocking ones first, and what was left out. */
export function listedSources(sources: readonly SourceSummary[], perClass: number = SOURCES_LISTED): Pick<DomainView, 'sources' | 'sources_omitted'> {
  const blocking = new Map<SourceClass, SourceSummary[]>(SOURCE_CLASSES.map((c) => [c, []]));
  const others = new Map<SourceClass, SourceSummary[]>(SOURCE_CLASSES.map((c) => [c, []]));
  const omitted = Object.fromEntries(SOURCE_CLASSES.map((c) => [c, { sources: 0, messages: 0 }])) as DomainView['sources_omitted'];
  // One pass: a class's blocking sources fill its places before the others, whatever their volume.
  const seen = new Map<SourceClass, number>(SOURCE_CLASSES.map((c) => [c, 0]));
  for (const s of sources) {
    seen.set(s.class, (seen.get(s.class) ?? 0) + 1);
    const list = (s.blocking ? blocking : others).get(s.class);
    if (list && list.length < perClass) list.push(s);
  }
  const listed: SourceSummary[] = [];
  for (const c of SOURCE_CLASSES) {
    const kept = [...blocking.get(c)!, ...others.get(c)!].slice(0, perClass);
    listed.push(...kept);
    omitted[c].sources = seen.get(c)! - kept.length;
  }
  if (listed.length < sources.length) {
    const shown = new Set(listed);
    for (const s of sources) if (!shown.has(s)) omitted[s.class].messages += s.messages;
  }
  return { sources: listed, sources_omitted: omitted };
}

/** One domain in depth, or undefined when it is not enrolled. `days` is how far back the daily series goes. */
export async function domainView(
  store: Store,
  domain: string,
  now: Date,
  ctx: ViewContext = {},
  opts: { days?: number; auditLimit?: number } = {},
): Promise<DomainView | undefined> {
  const row = await getDomain(store.db, domain);
  if (!row) return undefined;
  const load = planLoader(ctx);
  const { overview, judged, plan, key } = await overviewOf(store, row, now, ctx, load);
  // Measuring and the daily series each take tens of ms of CPU for a domain with much mail: a turn between.
  await nextTurn();
  const history = await stageHistory(store.db, domain);
  const audit = await recentAudit(store.db, { domain, limit: opts.auditLimit ?? 50 });
  const nextIndex = row.stage_index + 1;
  const nextStage = plan?.stages[nextIndex];
  let recordNext: string | null = null;
  let recordNextProblem: string | null = null;
  if (plan && nextStage) {
    const edit = recordForPlanStage(plan, nextIndex, row.last_record);
    if (edit.ok) recordNext = edit.record;
    else recordNextProblem = edit.problems.map((p) => p.reason).join('; ');
  }
  const { sources = [], reporters = [], ...metrics } = judged?.metrics ?? {};
  return {
    ...overview,
    record_now: row.last_record,
    record_next: recordNext,
    next_stage: nextStage ? stageLabel(nextStage) : null,
    plan_stages: plan?.stages.map((s) => ({ label: stageLabel(s), requires_approval: s.requires_approval })) ?? [],
    record_next_problem: recordNextProblem,
    metrics: judged ? (metrics as DomainView['metrics']) : null,
    checks: judged?.decision.checks ?? [],
    ...listedSources(sources),
    reporters,
    daily: plan ? await keptDailySeries({ store, row, plan, now, history, ctx, days: opts.days ?? 90 }, key) : [],
    history,
    audit: audit.map(parseAuditDetails),
  };
}

export function parseAuditDetails(event: AuditEvent): AuditEntryView {
  let details: unknown = null;
  if (event.details !== null) {
    try {
      details = JSON.parse(event.details);
    } catch {
      details = event.details;
    }
  }
  return { ...event, details };
}

async function overviewOf(
  store: Store,
  row: DomainRow,
  now: Date,
  ctx: ViewContext,
  load: (name: string) => LoadedPlan,
  enrolled?: ReadonlySet<string>,
): Promise<{ overview: DomainOverview; judged: Judged | null; plan: Plan | undefined; key: string | null }> {
  const loaded = load(row.plan);
  const intent = await getIntent(store.db, row.domain);
  const plan = loaded.plan;
  let judged: Judged | null = null;
  let key: string | null = null;
  if (plan && plan.stages[row.stage_index]) {
    const measure = () =>
      assessDomain(store, row, plan, now, {
        ...(enrolled ? { enrolled } : {}),
        ...(ctx.sourceRules ? { configRules: ctx.sourceRules } : {}),
      });
    // With the fleet's names given (a caller judging many), attribution is theirs: measured afresh, not kept.
    key = ctx.measured && !enrolled ? await measuredKey(store, row, plan, ctx) : null;
    const assessment = key !== null ? await ctx.measured!.assessment(row.domain, key, now, measure) : await measure();
    // decide() is cheap and reads the clock: always this request's.
    judged = { metrics: assessment.metrics, decision: decide(assessment.snapshot, plan, assessment.metrics, now) };
  }
  const overview = overviewFrom(row, loaded, now, intent, judged ? figuresOf(judged.metrics, judged.decision, now) : null);
  return { overview, judged, plan, key };
}

/**
 * What a domain's measurement stands on besides its rollups' content and the
 * clock, as one string (MeasuredDomains keeps a measurement while it holds).
 * Read before measuring: a report stored meanwhile changes it for the next request.
 */
async function measuredKey(store: Store, row: DomainRow, plan: Plan, ctx: ViewContext): Promise<string> {
  const marks = await assessmentMarks(store.db, row.domain);
  const configRules = (ctx.sourceRules ?? []).filter((r) => r.domain === null || r.domain === row.domain).map((r) => [r.domain, r.kind, r.value, r.verdict]);
  return createHash('sha256')
    .update(
      JSON.stringify([
        planDigest(plan),
        row,
        configRules,
        marks.rollupChanges,
        marks.lastReportId,
        marks.rules,
        marks.acknowledgements,
        // Enrolling or unenrolling a subdomain moves its mail out of or into the domain's figures; both are audited.
        await newestAuditId(store.db),
      ]),
    )
    .digest('base64url');
}

/** What the daily series is drawn from: `days` is how far back it goes. */
interface SeriesInput {
  store: Store;
  row: DomainRow;
  plan: Plan;
  now: Date;
  history: StageChange[];
  ctx: ViewContext;
  days: number;
}

/** dailySeries(), kept in ctx.measured under the measurement's key with the span and the stage history (its day: the series' `until`). */
async function keptDailySeries(input: SeriesInput, key: string | null): Promise<DailyPoint[]> {
  const { ctx, history } = input;
  if (!ctx.measured || key === null) return (await dailySeries(input)).points;
  const last = history.at(-1);
  const seriesKey = `${key}\n${input.days}\n${history.length}\n${last ? `${last.at}\n${last.to_stage}` : ''}`;
  const { points } = await ctx.measured.series(input.row.domain, seriesKey, input.now, () => dailySeries(input));
  return [...points];
}

/**
 * The domain's mail day by day over the last `days` days. Sources are classed
 * once over the whole span with the same rules as the engine, so a day's
 * "authorised" is the sources the engine would call authorised today.
 */
async function dailySeries({ store, row, plan, now, history, ctx, days }: SeriesInput): Promise<{ points: DailyPoint[]; until: number }> {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const todayStart = nowSeconds - (nowSeconds % DAY_SECONDS);
  const fromEpoch = todayStart - days * DAY_SECONDS;
  const judgedSubdomains = subdomainsFollowRecord(plan, row.last_record);
  // From the daily rollups, as the engine judges: a day whose raw rows retention pruned still shows its mail.
  // Through today's end, so the series knows when an entry stored ahead of its range (a skewed clock) comes in.
  const read = await loadRollupRows(store.db, row.domain, { fromEpoch, toEpoch: todayStart + DAY_SECONDS });
  let until = (todayStart + DAY_SECONDS) * 1000;
  const enrolled = await enrolledBetween(store.db, read.map((r) => r.headerFrom), row.domain);
  // The passes over the rows in steps with turns of the event loop between, as the engine measures
  // (src/engine/steps.ts): a domain with 100,000 rollup entries is seconds of work.
  const pause = pacer();
  const rows: typeof read = [];
  for (const r of read) {
    if (r.begin > nowSeconds) {
      until = Math.min(until, r.begin * 1000);
      continue;
    }
    const part = attributeRow(r, row.domain, enrolled);
    if (r.begin >= fromEpoch && (part === 'own' || (part === 'subdomain' && judgedSubdomains))) rows.push(r);
    if (pause()) await nextTurn();
  }
  const configRules = (ctx.sourceRules ?? []).filter((r) => r.domain === null || r.domain === row.domain);
  const rules = new SourceRules([...(await sourceRulesFor(store.db, row.domain)), ...configRules]);
  const { sourceOf } = await runInTurns(classifyRowsInSteps(rows, () => true, rules, plan.unaligned_source_min_messages));

  const byDay = new Map<number, DailyPoint>();
  for (const r of rows) {
    if (pause()) await nextTurn();
    const day = Math.floor(r.begin / DAY_SECONDS);
    let point = byDay.get(day);
    if (!point) {
      point = { day: isoDay(day), messages: 0, authorised: 0, authorised_failed: 0, authorised_fail_rate: null, spoofing: 0, stage: null };
      byDay.set(day, point);
    }
    point.messages += r.count;
    const cls = sourceOf(r)?.class;
    if (cls === 'authorised') {
      point.authorised += r.count;
      if (!dmarcPassed(r)) point.authorised_failed += r.count;
    } else if (cls === 'unauthenticated') point.spoofing += r.count;
  }
  const verified = history.filter((h) => h.record !== null || h.action !== 'enroll');
  // Every day from the first report or stage change in range through today, days without reports as
  // zeros: the time axis stays true and a stage change after the last report still shows.
  const firstChange = verified.map((h) => Math.floor(Date.parse(h.at) / 1000 / DAY_SECONDS)).find((d) => d >= fromEpoch / DAY_SECONDS);
  const firstDay = Math.min(...byDay.keys(), firstChange ?? Infinity);
  const lastDay = todayStart / DAY_SECONDS;
  if (!Number.isFinite(firstDay)) return { points: [], until };
  const points: DailyPoint[] = [];
  for (let day = firstDay; day <= lastDay; day++) {
    const point = byDay.get(day) ?? { day: isoDay(day), messages: 0, authorised: 0, authorised_failed: 0, authorised_fail_rate: null, spoofing: 0, stage: null };
    const dayEnd = new Date((day + 1) * DAY_SECONDS * 1000).toISOString();
    const inForce = verified.filter((h) => h.at < dayEnd).at(-1);
    points.push({
      ...point,
      authorised_fail_rate: point.authorised > 0 ? point.authorised_failed / point.authorised : null,
      stage: inForce ? inForce.to_stage : null,
    });
  }
  return { points, until };
}

const isoDay = (day: number) => new Date(day * DAY_SECONDS * 1000).toISOString().slice(0, 10);

function planLoader(ctx: ViewContext): (name: string) => LoadedPlan {
  return cachedPlanLoader(ctx.loadPlan ?? defaultLoadPlan);
}

/** A page of the audit log, newest first; `next_before` continues it. */
export async function auditLogPage(
  store: Store,
  q: { domain?: string; actor?: string; action?: string; before?: number; limit: number },
): Promise<{ events: AuditEntryView[]; next_before: number | null }> {
  let query = store.db.selectFrom('audit_events').selectAll().orderBy('id', 'desc').limit(q.limit + 1);
  if (q.domain !== undefined) {
    // The log also names domains no longer (or never) enrolled, so the name is normalised, not looked up.
    const name = normalizeDomainName(q.domain);
    if (!name.ok) throw new ActionError(`"${q.domain}": ${name.reason}`, 'invalid', 'domain');
    query = query.where('domain', '=', name.domain);
  }
  if (q.actor !== undefined) query = query.where('actor', '=', q.actor);
  if (q.action !== undefined) query = query.where('action', '=', q.action);
  if (q.before !== undefined) query = query.where('id', '<', q.before);
  const rows = await query.execute();
  const page = rows.slice(0, q.limit);
  return { events: page.map(parseAuditDetails), next_before: rows.length > q.limit ? page.at(-1)!.id : null };
}

/** An allowlist or abuse entry, from the store (changeable here) or the daemon config (changed in the file). */
export interface AllowlistEntry {
  /** The store's id; null for entries from the config. */
  id: number | null;
  /** The domain it is for; null for every domain. */
  domain: string | null;
  /** `192.0.2.0/24`, `dkim:esp.example`, ... */
  source: string;
  verdict: SourceVerdict;
  from: 'store' | 'config';
  added_by: string | null;
  added_at: string | null;
  note: string | null;
}

export const sourceSpecText = (kind: string, value: string) => (kind === 'ip' ? value : `${kind}:${value}`);

export function allowlistEntryOf(r: SourceRuleRow): AllowlistEntry {
  return { id: r.id, domain: r.domain, source: sourceSpecText(r.kind, r.value), verdict: r.verdict, from: 'store', added_by: r.added_by, added_at: r.added_at, note: r.note };
}

/** Every entry, or (with `domainInput`) the ones that apply to that enrolled domain: its own and the global ones. */
export async function allowlistEntries(store: Store, configRules: readonly SourceRule[], domainInput?: string): Promise<AllowlistEntry[]> {
  const domain = domainInput === undefined ? undefined : (await enrolledDomain(store, domainInput)).domain;
  const stored = (await listSourceRules(store.db, domain)).map(allowlistEntryOf);
  const configured = configRules
    .filter((rule) => domain === undefined || rule.domain === null || rule.domain === domain)
    .map((rule): AllowlistEntry => ({
      id: null,
      domain: rule.domain,
      source: sourceSpecText(rule.kind, rule.value),
      verdict: rule.verdict,
      from: 'config',
      added_by: null,
      added_at: null,
      note: null,
    }));
  return [...stored, ...configured];
}
