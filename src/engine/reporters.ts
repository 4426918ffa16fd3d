/**
 * Complete data before a judgement. Receivers send their daily reports hours
 * to days after the day ends, each at its own usual delay, so "the reports
 * stored so far" is not "the day's mail". This module learns each reporter's
 * usual delay (arrival, i.e. ingest time, minus the report's end) and cadence
 * from its history, and says for every UTC day of a stage window whether it is
 * complete: every regular reporter's report for it has arrived. A reporter
 * past its usual delay plus a slack is late and holds the domain, naming the
 * day awaited; silent past the plan's limit it is quiet and needs a person
 * (acknowledge it, or wait). A day a regular reporter missed never counts
 * towards min_days unless a person acknowledged that reporter's silence.
 * Pure: arrivals, acknowledgements and the clock in, a verdict per day out.
 */
import type { ReportArrival, ReporterAcknowledgement } from '../store/observed.js';
import type { ReporterSummary } from './types.js';
import { DAY_SECONDS, daysCovered, epochDayToIso } from './window.js';

export type { ReportArrival, ReporterAcknowledgement } from '../store/observed.js';

/** A reporter is regular when it covered at least this many days of its history... */
export const REGULAR_REPORTER_MIN_DAYS = 7;
/** ...and this share of the days between its first and last report (a silence after that does not unmake it). */
export const REGULAR_REPORTER_SHARE = 0.8;
/** How much history the usual delay and cadence are learned from. */
export const REPORTER_HISTORY_DAYS = 60;

export interface CompletenessInput {
  arrivals: ReportArrival[];
  /** First UTC day judged (a midnight), or null when the stage is not in effect. */
  windowStart: Date | null;
  now: Date;
  /** Past its usual delay by more than this, a reporter is late. */
  lateSlackSeconds: number;
  /** Silent this long past when its next report was due, a regular reporter is quiet and needs a person. */
  quietAfterSeconds: number;
  acknowledgements?: ReporterAcknowledgement[];
}

export type DayState = 'complete' | 'waiting' | 'late' | 'missed';

export interface DayCompleteness {
  /** Epoch day number (days since 1970-01-01 UTC). */
  day: number;
  state: DayState;
  /** Reporters whose report for the day has not arrived, with why. */
  missing: Array<{ reporter: string; state: 'waiting' | 'late' | 'missed'; dueAt: number }>;
}

export interface Completeness {
  days: DayCompleteness[];
  reporters: ReporterSummary[];
  /** The next time (epoch seconds) a waiting reporter turns late or a late one quiet or missed, before the next UTC midnight; null: none. */
  nextChangeAt: number | null;
}

interface Profile {
  reporter: string;
  days: Set<number>;
  firstDay: number;
  lastDay: number;
  lastEnd: number;
  lastArrival: number;
  delaySeconds: number;
  cadenceDays: number;
  regular: boolean;
}

const median = (values: number[]): number => {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** What each reporter's history says about it: usual delay, cadence, regularity. */
export function learnReporters(arrivals: ReportArrival[]): Map<string, Profile> {
  const byReporter = new Map<string, ReportArrival[]>();
  for (const a of arrivals) {
    const list = byReporter.get(a.reporter) ?? [];
    list.push(a);
    byReporter.set(a.reporter, list);
  }
  const profiles = new Map<string, Profile>();
  for (const [reporter, list] of byReporter) {
    const days = new Set<number>();
    for (const a of list) for (const d of daysCovered(a.begin, a.end)) days.add(d);
    const sorted = [...days].sort((a, b) => a - b);
    const firstDay = sorted[0]!;
    const lastDay = sorted[sorted.length - 1]!;
    const span = lastDay - firstDay + 1;
    profiles.set(reporter, {
      reporter,
      days,
      firstDay,
      lastDay,
      lastEnd: Math.max(...list.map((a) => a.end)),
      lastArrival: Math.max(...list.map((a) => a.arrivedAt)),
      delaySeconds: Math.max(0, median(list.map((a) => a.arrivedAt - a.end))),
      // A report's length in days: a CET day touches two UTC days but is one day of reporting.
      cadenceDays: Math.max(1, Math.round(median(list.map((a) => (a.end - a.begin + 1) / DAY_SECONDS)))),
      regular: days.size >= REGULAR_REPORTER_MIN_DAYS && days.size / span >= REGULAR_REPORTER_SHARE,
    });
  }
  return profiles;
}

/** "1 day", "6 hours": how late a reporter usually is, in the words a person uses. */
export function describeDelay(seconds: number): string {
  if (seconds < DAY_SECONDS) {
    const hours = Math.max(1, Math.round(seconds / 3600));
    return `${hours} hour${hours === 1 ? '' : 's'}`;
  }
  const days = Math.round((seconds / DAY_SECONDS) * 10) / 10;
  return `${days} day${days === 1 ? '' : 's'}`;
}

/** Whether each day of the window is complete, and where each reporter stands. */
export function assessCompleteness(input: CompletenessInput): Completeness {
  const nowSeconds = Math.floor(input.now.getTime() / 1000);
  const today = Math.floor(nowSeconds / DAY_SECONDS);
  const profiles = learnReporters(input.arrivals);
  const acks = new Map<string, ReporterAcknowledgement>();
  for (const ack of input.acknowledgements ?? []) {
    const previous = acks.get(ack.reporter);
    if (!previous || previous.at < ack.at) acks.set(ack.reporter, ack);
  }
  // An acknowledgement covers the silence it was given for: a report arriving after it makes the reporter awaited again.
  const acknowledged = (p: Profile) => {
    const ack = acks.get(p.reporter);
    return ack !== undefined && p.lastArrival <= ack.at ? ack : null;
  };
  /** When the report covering `day` was due: the end of its period (a cadence of several days ends later) plus the usual delay. */
  const dueAt = (p: Profile, day: number) => (day + p.cadenceDays) * DAY_SECONDS + p.delaySeconds;
  /**
   * Silence is counted from when its last report was due, as a person counts
   * it ("nothing from them for three days"), but past its usual delay: a
   * reporter usually four days late is not quiet after three.
   */
  const quietAt = (p: Profile, day: number) => dueAt(p, day) - p.cadenceDays * DAY_SECONDS + input.quietAfterSeconds;

  // Each state below turns on `nowSeconds` passing a threshold: the nearest one still ahead is when a stored verdict goes stale.
  let nextChangeAt: number | null = null;
  const ahead = (threshold: number) => {
    if (threshold >= nowSeconds && (nextChangeAt === null || threshold + 1 < nextChangeAt)) nextChangeAt = threshold + 1;
  };
  const days: DayCompleteness[] = [];
  if (input.windowStart !== null) {
    const first = Math.floor(input.windowStart.getTime() / 1000 / DAY_SECONDS);
    for (let day = first; day < today; day++) {
      const missing: DayCompleteness['missing'] = [];
      for (const p of profiles.values()) {
        if (!p.regular || p.firstDay > day || p.days.has(day) || acknowledged(p)) continue;
        const due = dueAt(p, day);
        ahead(due + input.lateSlackSeconds);
        if (day >= p.lastDay) ahead(quietAt(p, day));
        // A hole before a later report is a day the reporter skipped; silence since its last report is a wait, then lateness.
        const state = nowSeconds <= due + input.lateSlackSeconds ? 'waiting' : day < p.lastDay || nowSeconds > quietAt(p, day) ? 'missed' : 'late';
        missing.push({ reporter: p.reporter, state, dueAt: due });
      }
      const state: DayState =
        missing.length === 0 ? 'complete' : missing.some((m) => m.state === 'missed') ? 'missed' : missing.some((m) => m.state === 'late') ? 'late' : 'waiting';
      days.push({ day, state, missing });
    }
  }

  const reporters: ReporterSummary[] = [...profiles.values()]
    .map((p) => {
      const ack = acknowledged(p);
      const awaitedDay = p.lastDay + 1 < today ? p.lastDay + 1 : null;
      const due = awaitedDay === null ? null : dueAt(p, awaitedDay);
      const quietNow = p.regular && awaitedDay !== null && nowSeconds > quietAt(p, awaitedDay);
      const lateNow = p.regular && due !== null && !quietNow && nowSeconds > due + input.lateSlackSeconds;
      if (p.regular && awaitedDay !== null && due !== null) {
        ahead(quietAt(p, awaitedDay));
        ahead(due + input.lateSlackSeconds);
      }
      const summary: ReporterSummary = {
        reporter: p.reporter,
        lastReportEnd: new Date(p.lastEnd * 1000).toISOString(),
        daysReported: p.days.size,
        regular: p.regular,
        quiet: quietNow && !ack,
        late: lateNow && !ack,
        usualDelaySeconds: Math.round(p.delaySeconds),
        awaitedDay: p.regular && awaitedDay !== null && !ack ? epochDayToIso(awaitedDay) : null,
        acknowledgedBy: ack ? ack.actor : null,
      };
      return summary;
    })
    .sort((a, b) => a.reporter.localeCompare(b.reporter));
  return { days, reporters, nextChangeAt };
}

/** "google.com's report for 2026-03-02, usually 1 day late" (what a hold is waiting for). */
export function awaitingText(reporter: string, day: string, usualDelaySeconds: number): string {
  return `${reporter}'s report for ${day}, usually ${describeDelay(usualDelaySeconds)} late`;
}
