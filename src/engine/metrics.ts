/**
 * Measuring a domain's current stage from report rows: which mail its record
 * governs, how much of it is authorised, how much of that failed, which
 * reporters went quiet. Pure: rows, rules and the clock in, StageMetrics out.
 */
import { classifySources, dmarcPassed, sourceKey, type SourceRules } from './sources.js';
import type { MailTotals, ObservedRow, ReporterSummary, StageMetrics } from './types.js';
import { DAY_SECONDS, daysCovered, utcDayStart, wholeDaysBetween } from './window.js';

/** How far back sources and reporters are looked at, whatever the stage window. */
export const LOOKBACK_DAYS = 28;
/** A reporter is "regular" when it covered this share of the days between its first and last report... */
export const REGULAR_REPORTER_SHARE = 0.8;
/** ...over at least this many days. */
export const REGULAR_REPORTER_MIN_DAYS = 7;

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
}

/** Which enrolled domain's record governs mail from `headerFrom`: the closest enrolled parent. */
export function governingDomain(headerFrom: string, enrolled: ReadonlySet<string>): string | null {
  let name = headerFrom.toLowerCase().replace(/\.$/, '');
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
  const from = row.headerFrom?.toLowerCase().replace(/\.$/, '') ?? null;
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
  const { domain, windowStart, now } = input;
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const lookbackStart = nowSeconds - LOOKBACK_DAYS * DAY_SECONDS;
  const windowSeconds = windowStart === null ? null : Math.floor(windowStart.getTime() / 1000);

  // A report that straddles the window start was partly judged under the old record: it does not count.
  const inWindow = (row: ObservedRow) => windowSeconds !== null && row.begin >= windowSeconds;
  const attributed: Array<{ row: ObservedRow; part: 'own' | 'subdomain' }> = [];
  for (const row of input.rows) {
    // A stage longer than the look-back is still judged on its whole window.
    if (row.end > nowSeconds || (row.end < lookbackStart && !inWindow(row))) continue;
    const part = attributeRow(row, domain, input.enrolledDomains);
    if (part) attributed.push({ row, part });
  }
  const judged = (part: 'own' | 'subdomain') => part === 'own' || input.subdomainsJudged;

  const sources = classifySources(
    attributed.filter((a) => judged(a.part)).map((a) => a.row),
    inWindow,
    input.rules,
    input.unalignedSourceMinMessages,
  );
  const classOfKey = new Map(sources.map((s) => [s.key, s.class]));

  const all = emptyTotals();
  const own = emptyTotals();
  const subdomains = emptyTotals();
  const authorised = emptyTotals();
  const spoofing = emptyTotals();
  const observedDays = new Set<number>();
  const todayStart = Math.floor(utcDayStart(now).getTime() / 1000 / DAY_SECONDS);
  for (const { row, part } of attributed) {
    if (!inWindow(row)) continue;
    add(all, row);
    add(part === 'own' ? own : subdomains, row);
    if (!judged(part)) continue;
    const cls = classOfKey.get(sourceKey(row));
    if (cls === 'authorised') add(authorised, row);
    if (cls === 'unauthenticated') add(spoofing, row);
    if (row.count > 0) for (const day of daysCovered(row.begin, row.end)) if (day < todayStart) observedDays.add(day);
  }

  return {
    domain,
    windowStart: windowStart?.toISOString() ?? null,
    elapsedDays: windowStart === null ? 0 : wholeDaysBetween(windowStart, now),
    daysObserved: observedDays.size,
    all,
    own,
    subdomains,
    subdomainsJudged: input.subdomainsJudged,
    authorised: { ...authorised, failRate: authorised.messages === 0 ? null : authorised.failed / authorised.messages },
    spoofing,
    sources: sources.sort((a, b) => b.lookbackMessages - a.lookbackMessages || a.key.localeCompare(b.key)),
    reporters: summariseReporters(attributed.map((a) => a.row), now, input.quietReporterDays),
  };
}

function summariseReporters(rows: ObservedRow[], now: Date, quietDays: number): ReporterSummary[] {
  const byReporter = new Map<string, { lastEnd: number; days: Set<number> }>();
  for (const row of rows) {
    const entry = byReporter.get(row.reporter) ?? { lastEnd: 0, days: new Set<number>() };
    entry.lastEnd = Math.max(entry.lastEnd, row.end);
    for (const day of daysCovered(row.begin, row.end)) entry.days.add(day);
    byReporter.set(row.reporter, entry);
  }
  const nowSeconds = now.getTime() / 1000;
  return [...byReporter.entries()]
    .map(([reporter, { lastEnd, days }]) => {
      const sorted = [...days].sort((a, b) => a - b);
      const span = sorted.length === 0 ? 0 : sorted[sorted.length - 1]! - sorted[0]! + 1;
      const regular = sorted.length >= REGULAR_REPORTER_MIN_DAYS && sorted.length / span >= REGULAR_REPORTER_SHARE;
      return {
        reporter,
        lastReportEnd: new Date(lastEnd * 1000).toISOString(),
        daysReported: sorted.length,
        regular,
        quiet: regular && nowSeconds - lastEnd > quietDays * DAY_SECONDS,
      };
    })
    .sort((a, b) => a.reporter.localeCompare(b.reporter));
}
