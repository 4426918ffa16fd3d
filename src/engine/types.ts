/**
 * The engine's values: what it observes (report rows), what it measures for a
 * stage, and what it decides. Every decision carries the checks that produced
 * it, each with the measured value, the threshold and its outcome, so a person
 * can see exactly why a domain moved or did not.
 */
import type { DomainState } from '../store/schema.js';

export type { ObservedRow } from '../store/observed.js';

/** An operator's verdict on a sending source. */
export type SourceVerdict = 'authorised' | 'abuse';

/** What an allowlist (or abuse) entry matches. */
export type SourceMatchKind = 'ip' | 'dkim' | 'spf';

export interface SourceRule {
  /** The enrolled domain the rule is for, or null for every domain. */
  domain: string | null;
  kind: SourceMatchKind;
  /** An IP, a CIDR (for kind ip), or a domain (for dkim and spf; subdomains match too). */
  value: string;
  verdict: SourceVerdict;
}

/**
 * How a source is classed (src/engine/sources.ts says how):
 * - authorised: allowlisted, authenticating as the domain (aligned DKIM or SPF), or failing
 *   with an aligned identity that passed from the same network in the look-back (a sender that broke);
 * - forwarded: relayed by a forwarder or mailing list (the receiver said so, or it passed DKIM with SPF failing);
 * - unaligned: fails DMARC while authenticating as another domain (a forgotten ESP or SaaS sender);
 * - unauthenticated: fails everything (spoofing), or marked as abuse by a person.
 */
export type SourceClass = 'authorised' | 'forwarded' | 'unaligned' | 'unauthenticated';

export interface SourceSummary {
  /** `ip` plus the authenticated DKIM d= and SPF domains, e.g. `192.0.2.1 dkim:esp.example spf:bounce.esp.example`. */
  key: string;
  ip: string;
  dkimDomains: string[];
  spfDomains: string[];
  class: SourceClass;
  /** Why the source is in its class, in plain words. */
  classReason: string;
  /** Messages in the stage window, and of those how many passed DMARC. */
  messages: number;
  passed: number;
  /** Messages over the whole look-back (for classing), and distinct UTC days seen there. */
  lookbackMessages: number;
  lookbackPassed: number;
  daysSeen: number;
  /** True for an unaligned source sending at least the plan's volume (from its first report): it holds the domain until a person classifies it. */
  blocking: boolean;
}

export interface ReporterSummary {
  reporter: string;
  /** End of its newest report for this domain, ISO. */
  lastReportEnd: string;
  /** Distinct UTC days its reports covered in the look-back. */
  daysReported: number;
  /** Sent (nearly) daily in the look-back before it went quiet. */
  regular: boolean;
  /** Regular, and silent longer than the plan's quiet_reporter_days past when its report was due: needs a person. */
  quiet: boolean;
  /** Regular, and past its usual delay plus the plan's slack for `awaitedDay`: the domain holds for it. */
  late?: boolean;
  /** Its usual delay (report end to arrival), learned from its history. */
  usualDelaySeconds?: number;
  /** The first UTC day (YYYY-MM-DD) it has not reported yet, while it is awaited. */
  awaitedDay?: string | null;
  /** A person acknowledged its silence (their name): not awaited until it reports again. */
  acknowledgedBy?: string | null;
}

/** How complete the window's days are (see reporters.ts). */
export interface DaysSummary {
  /** Complete days in the window, as YYYY-MM-DD: every regular reporter's report arrived. */
  complete: string[];
  /** Days still waiting for a report that is not due yet, or late. */
  pending: string[];
  /** Days a regular reporter skipped or never sent: never counted towards min_days. */
  missed: string[];
  /** The oldest pending day and the reporters whose report for it is still awaited. */
  firstPending?: { day: string; reporters: string[] } | null;
}

/** Authorised mail over a set of days, with the days named. */
export interface JudgedTotals extends MailTotals {
  failRate: number | null;
  days: string[];
}

export interface MailTotals {
  messages: number;
  passed: number;
  failed: number;
}

/** Everything decide() needs to judge one domain's current stage. */
export interface StageMetrics {
  domain: string;
  /** Start of the judged window (ISO, a UTC midnight), or null when the stage is not in effect yet. */
  windowStart: string | null;
  /** Whole UTC days from windowStart to the start of today. */
  elapsedDays: number;
  /** Complete whole UTC days in the window with report data (see reporters.ts): what min_days counts. */
  daysObserved: number;
  /** Which days of the window are complete, pending or missed; absent on hand-built metrics. */
  days?: DaysSummary;
  /** All mail governed by this domain's record in the window. */
  all: MailTotals;
  /** Mail from the domain itself, and from subdomains that follow its record. */
  own: MailTotals;
  subdomains: MailTotals;
  /** Whether subdomain mail is judged with the domain (no sp: it follows p; or the plan manages sp). */
  subdomainsJudged: boolean;
  /** Authorised mail in the window, every report arrived so far: alarms (halt, rollback) look at this. */
  authorised: MailTotals & { failRate: number | null };
  /** Authorised mail on complete days only: advancing looks at this (absent: `authorised`). */
  complete?: JudgedTotals;
  /** Authorised mail on the latest reported day(s), as far as reports have arrived: a sharp regression shows here first. */
  recent?: JudgedTotals;
  /** Unauthenticated (spoofing) volume: shown, never blocking. */
  spoofing: MailTotals;
  sources: SourceSummary[];
  reporters: ReporterSummary[];
  /**
   * Until when (ISO) these figures stand unless reports, rules or the domain
   * change: the next UTC midnight, or sooner when a reporter falls due or a
   * report enters or leaves the look-back. Absent on hand-built metrics.
   */
  stableUntil?: string;
}

export type CheckOutcome = 'passed' | 'failed' | 'inconclusive';

/** One rule applied to one measurement. */
export interface Check {
  /** Stable rule id, e.g. `min-messages`, `rollback-rate`. */
  rule: string;
  outcome: CheckOutcome;
  measured: number | string | null;
  threshold: number | string | null;
  /** The rule and its result in plain words. */
  detail: string;
  /** For a rate: its one-sided Wilson bounds at the plan's confidence, and how many messages it stands on. */
  interval?: { low: number; high: number; confidence: number; messages: number };
}

export type DecisionAction = 'establish' | 'advance' | 'hold' | 'await-approval' | 'halt' | 'rollback' | 'complete';

export interface Decision {
  domain: string;
  action: DecisionAction;
  /** Stage label in force when deciding. */
  from: string;
  /** Stage label to move to (advance, rollback) or to write (establish). */
  to: string | null;
  /** Index of `to` in the plan. */
  toIndex: number | null;
  /** The checks, in the order they were applied; the deciding ones are marked by the summary. */
  checks: Check[];
  /** One sentence a person can read. */
  summary: string;
  at: string;
}

/** The part of an enrolled domain decide() reads. */
export interface DomainSnapshot {
  domain: string;
  state: DomainState;
  stageIndex: number;
  /** When the current stage took effect (verified), ISO; null when not written yet. */
  stageSince: string | null;
  /** A person approved the move into the stage at this index. */
  approvedStageIndex: number | null;
  /** The last stage the domain advanced from (it held cleanly there): where a rollback goes unless the plan names one. */
  lastCleanStageIndex?: number | null;
}
