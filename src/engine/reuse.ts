/**
 * A tick with nothing new does not measure again. A domain's figures stand
 * on its rollups, the plan, the allowlist and abuse rules, the reporter
 * acknowledgements, which of its subdomains are enrolled, the domain row
 * itself, and the clock. The tick stores its assessment with a digest of
 * all but the rollups and the clock, the rollup change count it read
 * before measuring, and until when the clock leaves the figures alone
 * (StageMetrics.stableUntil). While all three hold, the stored decision is
 * the one measuring again would give, and the tick returns it instead; so a
 * tick's cost follows what arrived since the last one. Only a hold or an
 * await-approval is reused: every other decision changes the domain.
 */
import { createHash } from 'node:crypto';
import type { Plan } from '../plans/index.js';
import { assessmentMarks, assessmentMarksOf, type AssessmentMarks } from '../store/assessments.js';
import type { Store } from '../store/open.js';
import type { DomainRow, StoredAssessment } from '../store/schema.js';
import type { Decision, SourceRule, StageMetrics } from './types.js';

const planDigests = new WeakMap<Plan, string>();
const belowCache = new WeakMap<ReadonlySet<string>, Map<string, string[]>>();

/** The enrolled domains under `domain` (they take their mail out of its figures). */
export function enrolledBelow(enrolled: ReadonlySet<string>, domain: string): string[] {
  let below = belowCache.get(enrolled);
  if (!below) {
    below = new Map();
    for (const name of enrolled) addBelow(enrolled, below, name);
    for (const list of below.values()) list.sort();
    belowCache.set(enrolled, below);
  }
  return below.get(domain) ?? [];
}

function addBelow(enrolled: ReadonlySet<string>, below: Map<string, string[]>, name: string): void {
  for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
    const parent = name.slice(dot + 1);
    if (!enrolled.has(parent)) continue;
    const list = below.get(parent) ?? [];
    list.push(name);
    below.set(parent, list);
  }
}

/**
 * Builds what enrolledBelow() reads, 5,000 names at a time with a turn of the
 * event loop between: over 100,000 domains it is some 50 ms of work, which a
 * tick would otherwise do in one piece at its first domain.
 */
export async function indexEnrolled(enrolled: ReadonlySet<string>): Promise<void> {
  if (belowCache.has(enrolled)) return;
  const below = new Map<string, string[]>();
  let n = 0;
  for (const name of enrolled) {
    addBelow(enrolled, below, name);
    if (++n % 5000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  for (const list of below.values()) list.sort();
  belowCache.set(enrolled, below);
}

export interface AssessmentInputs {
  row: DomainRow;
  plan: Plan;
  enrolled: ReadonlySet<string>;
  /** The config's allowlist and abuse rules for the domain. */
  configRules: ReadonlyArray<Pick<SourceRule, 'domain' | 'kind' | 'value' | 'verdict'>>;
  /** The store's rules and acknowledgements, as marks (src/store/assessments.ts assessmentMarks). */
  storeRules: string;
  acknowledgements: string;
}

/** A digest of the plan's settings and stages (computed once per plan object). */
export function planDigest(plan: Plan): string {
  let digest = planDigests.get(plan);
  if (digest === undefined) planDigests.set(plan, (digest = createHash('sha256').update(JSON.stringify(plan)).digest('base64url')));
  return digest;
}

/** A digest of what a domain's figures stand on besides its rollups and the clock. */
export function inputsDigest(i: AssessmentInputs): string {
  const plan = planDigest(i.plan);
  const rules = i.configRules.map((r) => [r.domain, r.kind, r.value, r.verdict]);
  return createHash('sha256')
    .update(JSON.stringify([plan, i.row, enrolledBelow(i.enrolled, i.row.domain), rules, i.storeRules, i.acknowledgements]))
    .digest('base64url');
}

/**
 * The stored decision, when it still stands at `now`: same inputs, no
 * rollup change since, before its recheck time, and a hold or
 * await-approval. Null: measure again.
 */
export function reusableDecision(
  stored: StoredAssessment | null,
  current: { inputs: string; rollupChanges: number; lastReportId: number },
  now: Date,
): Decision | null {
  if (!stored || stored.decision === null || stored.inputs === null || stored.recheck_at === null) return null;
  if (stored.inputs !== current.inputs || Number(stored.rollup_changes) !== current.rollupChanges) return null;
  // A report stored under the domain since (even one not counted) is shown on its page: measure, so the page sees fresh figures.
  if (Number(stored.last_report_id) !== current.lastReportId) return null;
  const at = now.toISOString();
  if (at < stored.assessed_at || at >= stored.recheck_at) return null;
  const decision = JSON.parse(stored.decision) as Decision;
  if (decision.action !== 'hold' && decision.action !== 'await-approval') return null;
  return { ...decision, at };
}

export interface ReuseCheck {
  /** The stored decision when it still stands; null: measure again. */
  decision: Decision | null;
  /** What to store with the new assessment when measuring again. */
  inputs: string;
  rollupChanges: number;
  /** The newest report stored under the domain (latestReportId()). */
  lastReportId: number;
}

/**
 * The marks of the domains a tick goes through, read a chunk (200) at a time
 * as it reaches them, instead of a read per domain. Read before measuring,
 * so a report stored meanwhile is caught by the next tick.
 */
export function marksReader(store: Store, domains: readonly string[]): (domain: string) => Promise<AssessmentMarks> {
  const CHUNK = 200;
  const index = new Map(domains.map((d, i) => [d, i]));
  const chunks = new Map<number, Promise<Map<string, AssessmentMarks>>>();
  return async (domain) => {
    const at = index.get(domain);
    if (at === undefined) return assessmentMarks(store.db, domain);
    const chunk = Math.floor(at / CHUNK);
    let read = chunks.get(chunk);
    if (!read) {
      chunks.clear();
      chunks.set(chunk, (read = assessmentMarksOf(store.db, domains.slice(chunk * CHUNK, (chunk + 1) * CHUNK))));
    }
    return (await read).get(domain) ?? assessmentMarks(store.db, domain);
  };
}

/** Whether the stored assessment still stands, and what to store with a new one. */
export async function checkReuse(
  store: Store,
  row: DomainRow,
  plan: Plan,
  opts: { enrolled: ReadonlySet<string>; configRules?: readonly SourceRule[]; now: Date; marks?: (domain: string) => Promise<AssessmentMarks> },
): Promise<ReuseCheck> {
  const marks = await (opts.marks ?? ((d: string) => assessmentMarks(store.db, d)))(row.domain);
  const inputs = inputsDigest({
    row,
    plan,
    enrolled: opts.enrolled,
    configRules: (opts.configRules ?? []).filter((r) => r.domain === null || r.domain === row.domain),
    storeRules: marks.rules,
    acknowledgements: marks.acknowledgements,
  });
  const current = { inputs, rollupChanges: marks.rollupChanges, lastReportId: marks.lastReportId };
  return { decision: reusableDecision(marks.assessment, current, opts.now), ...current };
}

/** What saveAssessment() keeps so the next tick may reuse this one (only a hold or an await-approval). */
export function reuseRecord(check: ReuseCheck, metrics: StageMetrics, decision: Decision) {
  if (metrics.stableUntil === undefined || (decision.action !== 'hold' && decision.action !== 'await-approval')) return undefined;
  return { rollupChanges: check.rollupChanges, inputs: check.inputs, recheckAt: metrics.stableUntil, decision: JSON.stringify(decision) };
}
