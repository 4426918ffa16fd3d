/**
 * Measuring a domain's current stage from report rows: which mail its record
 * governs, how much of it is authorised, how much of that failed, over the
 * whole window (alarms), its complete days (advancing) and its latest reported
 * day (a sharp regression), and where each reporter stands (reporters.ts).
 * Pure: rows, arrivals, rules and the clock in, StageMetrics out.
 */
import { canonicalName } from '../names.js';
import { assessCompleteness, type ReportArrival, type ReporterAcknowledgement } from './reporters.js';
import { classifyRowsInSteps, dmarcPassed, type SourceRules } from './sources.js';
import { pacer, runSteps, sortInSteps, type Steps } from './steps.js';
import type { DaysSummary, JudgedTotals, MailTotals, ObservedRow, StageMetrics } from './types.js';
import { DAY_SECONDS, daysCovered, epochDayToIso, wholeDaysBetween } from './window.js';

/** How far back sources and reporters are looked at, whatever the stage window. */
export const LOOKBACK_DAYS = 28;
export { REGULAR_REPORTER_MIN_DAYS, REGULAR_REPORTER_SHARE } from './reporters.js';

export interface MeasureInput {
  domain: string;
  /** Rows from reports in the look-back (see LOOKBACK_DAYS), counted copies only. */
  rows: ObservedRow[];
  /** Start of the stage window, or null when the stage is not in effect yet. */
  windowStart: Date | null;
  now: Date;
  /** Every enrolled domain: a subdomain enrolled on its own is measured on its own. */
  enrolledDomains: ReadonlySet<string>;
  /** True when subdomain mail moves with this record (no sp, or the plan manages sp). */
  subdomainsJudged: boolean;
  rules: SourceRules;
  unalignedSourceMinMessages: number;
  quietReporterDays: number;
  /**
   * The domain's stored reports with their arrival (ingest) time, over the
   * reporter history; when absent they are taken from `rows`, arrived at their end.
   */
  arrivals?: ReportArrival[];
  acknowledgements?: ReporterAcknowledgement[];
  /** Hours past its usual delay before a reporter is late (default 12). */
  lateSlackHours?: number;
  /** How many of the latest complete days are judged on their own as well (default 1). */
  recentDays?: number;
}

/** Which enrolled domain's record governs mail from `headerFrom`: the closest enrolled parent. */
export function governingDomain(headerFrom: string, enrolled: ReadonlySet<string>): string | null {
  let name = canonicalName(headerFrom);
  for (;;) {
    if (enrolled.has(name)) return name;
    const dot = name.indexOf('.');
    if (dot < 0) return null;
    name = name.slice(dot + 1);
  }
}

/**
 * Whether a row is this domain's mail, and whose: its own (header_from is the
 * domain) or a subdomain's that follows its record. A subdomain is ours only
 * when the receiver applied our record (policy_published names us): when it
 * names the subdomain, the subdomain has a record of its own.
 */
export function attributeRow(row: ObservedRow, domain: string, enrolled: ReadonlySet<string>): 'own' | 'subdomain' | null {
  const from = row.headerFrom == null ? null : canonicalName(row.headerFrom);
  if (from === null || from === '') return row.policyDomain === domain ? 'own' : null;
  if (from === domain) return 'own';
  if (!from.endsWith(`.${domain}`)) return null;
  if (governingDomain(from, enrolled) !== domain) return null;
  return row.policyDomain === domain ? 'subdomain' : null;
}

const emptyTotals = (): MailTotals => ({ messages: 0, passed: 0, failed: 0 });

function add(totals: MailTotals, row: ObservedRow): void {
  totals.messages += row.count;
  if (dmarcPassed(row)) totals.passed += row.count;
  else totals.failed += row.count;
}

export function measureStage(input: MeasureInput): StageMetrics {
  return runSteps(measureStageInSteps(input));
}

/**
 * measureStage() with a pause every STEP_ROWS rows of each pass over the
 * rows (src/engine/steps.ts): the tick and the views run it in turns of the
 * event loop, so a domain with 100,000 rollup entries does not hold the
 * daemon for the seconds its measuring takes.
 */
export function* measureStageInSteps(input: MeasureInput): Steps<StageMetrics> {
  const { domain, windowStart, now } = input;
  const pause = pacer();
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const lookbackStart = nowSeconds - LOOKBACK_DAYS * DAY_SECONDS;
  const windowSeconds = windowStart === null ? null : Math.floor(windowStart.getTime() / 1000);

  // A report that straddles the window start was partly judged under the old record: it does not count.
  const inWindow = (row: ObservedRow) => windowSeconds !== null && row.begin >= windowSeconds;
  const attributed: Array<{ row: ObservedRow; part: 'own' | 'subdomain' }> = [];
  // When the clock alone changes what is read: a report ending later enters, one older than the look-back leaves.
  let stableUntil = (Math.floor(nowSeconds / DAY_SECONDS) + 1) * DAY_SECONDS;
  for (const row of input.rows) {
    if (pause()) yield;
    if (row.end > nowSeconds) stableUntil = Math.min(stableUntil, row.end);
    else if (!inWindow(row) && row.end >= lookbackStart) stableUntil = Math.min(stableUntil, row.end + LOOKBACK_DAYS * DAY_SECONDS + 1);
    // A stage longer than the look-back is still judged on its whole window.
    if (row.end > nowSeconds || (row.end < lookbackStart && !inWindow(row))) continue;
    const part = attributeRow(row, domain, input.enrolledDomains);
    if (part) attributed.push({ row, part });
  }
  const judged = (part: 'own' | 'subdomain') => part === 'own' || input.subdomainsJudged;

  const { sources, sourceOf } = yield* classifyRowsInSteps(
    attributed.filter((a) => judged(a.part)).map((a) => a.row),
    inWindow,
    input.rules,
    input.unalignedSourceMinMessages,
  );

  const completeness = assessCompleteness({
    arrivals: input.arrivals ?? arrivalsOf(input.rows),
    windowStart,
    now,
    lateSlackSeconds: (input.lateSlackHours ?? 12) * 3600,
    quietAfterSeconds: input.quietReporterDays * DAY_SECONDS,
    ...(input.acknowledgements ? { acknowledgements: input.acknowledgements } : {}),
  });

  const all = emptyTotals();
  const own = emptyTotals();
  const subdomains = emptyTotals();
  const authorised = emptyTotals();
  const spoofing = emptyTotals();
  const authorisedByDay = new Map<number, MailTotals>();
  const multiDay: ObservedRow[] = [];
  const withData = new Set<number>();
  for (const { row, part } of attributed) {
    if (pause()) yield;
    if (!inWindow(row)) continue;
    add(all, row);
    add(part === 'own' ? own : subdomains, row);
    if (!judged(part)) continue;
    const cls = sourceOf(row)?.class;
    if (cls === 'unauthenticated') add(spoofing, row);
    const covered = daysCovered(row.begin, row.end);
    if (row.count > 0) for (const day of covered) withData.add(day);
    if (cls !== 'authorised') continue;
    add(authorised, row);
    if (covered.length === 1) {
      const totals = authorisedByDay.get(covered[0]!) ?? emptyTotals();
      add(totals, row);
      authorisedByDay.set(covered[0]!, totals);
    } else {
      multiDay.push(row);
    }
  }

  // A day counts when it is complete and some report covered it with mail: a
  // day nobody reported is not evidence of clean mail.
  const counted = completeness.days.filter((d) => d.state === 'complete' && withData.has(d.day)).map((d) => d.day);
  // A generator too: every report in multiDay may be one row of a 100,000-row domain.
  const totalsOver = function* (days: number[]): Steps<JudgedTotals> {
    const totals = emptyTotals();
    const set = new Set(days);
    for (const day of days) {
      const t = authorisedByDay.get(day);
      if (!t) continue;
      totals.messages += t.messages;
      totals.passed += t.passed;
      totals.failed += t.failed;
    }
    // A report over several days counts only when every day it covers is in the set.
    for (const row of multiDay) {
      if (daysCovered(row.begin, row.end).every((d) => set.has(d))) add(totals, row);
      if (pause()) yield;
    }
    return { ...totals, failRate: totals.messages === 0 ? null : totals.failed / totals.messages, days: days.map(epochDayToIso) };
  };
  const recentCount = input.recentDays ?? 1;
  const todayNumber = Math.floor(nowSeconds / DAY_SECONDS);
  const reportedDays = [...authorisedByDay.keys()].filter((d) => d < todayNumber).sort((a, b) => a - b);
  const days: DaysSummary = {
    complete: counted.map(epochDayToIso),
    pending: completeness.days.filter((d) => d.state === 'waiting' || d.state === 'late').map((d) => epochDayToIso(d.day)),
    missed: completeness.days.filter((d) => d.state === 'missed').map((d) => epochDayToIso(d.day)),
    firstPending: ((first) => (first ? { day: epochDayToIso(first.day), reporters: first.missing.map((m) => m.reporter).sort() } : null))(
      completeness.days.find((d) => d.state === 'waiting' || d.state === 'late'),
    ),
  };

  yield* sortInSteps(sources, (a, b) => b.lookbackMessages - a.lookbackMessages || a.key.localeCompare(b.key));
  const complete = yield* totalsOver(counted);
  // The latest reported days, complete or not: an alarm may sound on the first reports of a bad day.
  const recent = yield* totalsOver(reportedDays.slice(-recentCount));
  return {
    domain,
    windowStart: windowStart?.toISOString() ?? null,
    elapsedDays: windowStart === null ? 0 : wholeDaysBetween(windowStart, now),
    daysObserved: counted.length,
    days,
    all,
    own,
    subdomains,
    subdomainsJudged: input.subdomainsJudged,
    authorised: { ...authorised, failRate: authorised.messages === 0 ? null : authorised.failed / authorised.messages },
    complete,
    recent,
    spoofing,
    sources,
    reporters: completeness.reporters,
    stableUntil: new Date(Math.min(stableUntil, completeness.nextChangeAt ?? Infinity) * 1000).toISOString(),
  };
}

/** Without stored arrival times, each report counts as arrived when its period ended. */
export function arrivalsOf(rows: ObservedRow[]): ReportArrival[] {
  const seen = new Map<string, ReportArrival>();
  for (const row of rows) {
    const key = `${row.reporter}|${row.begin}|${row.end}`;
    if (!seen.has(key)) seen.set(key, { reporter: row.reporter, begin: row.begin, end: row.end, arrivedAt: row.end });
  }
  return [...seen.values()];
}
