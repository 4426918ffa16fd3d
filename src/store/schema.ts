/**
 * The store's tables, as kysely types. This file is the one source of the
 * store's shape: migrations create exactly these columns, queries are typed by
 * them. Timestamps are ISO-8601 UTC text (portable, sortable); report date
 * ranges are epoch seconds as the reports carry them.
 */
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Lifecycle of an enrolled domain. Only `active` domains are moved by a tick. */
export type DomainState = 'active' | 'paused' | 'halted' | 'completed';

export interface DomainsTable {
  /** The domain as an A-label, lowercase, no trailing dot. */
  domain: string;
  /** Name of the plan (a file under data/plans without extension). */
  plan: string;
  /** DNS provider that hosts the zone, or null until one is assigned. */
  provider: string | null;
  /** Index into the plan's stages of the stage in force. */
  stage_index: number;
  state: DomainState;
  /** Why the domain is in its state (set on halt, pause, drift, ...). */
  state_reason: string | null;
  /** When the current stage took effect (verified in DNS); null before the first verified write. */
  stage_since: string | null;
  /** The exact record text this program last verified at _dmarc, for compare-and-set. */
  last_record: string | null;
  /** Start of the current stage's judged window (verified change + old TTL, rounded up to a UTC midnight). */
  window_start: string | null;
  /** A person approved the move into the stage at this index (a gated stage). */
  approved_stage_index: number | null;
  /** The DMARC record live when the domain was enrolled (null: none); `unenroll --restore` puts it back. */
  found_record: string | null;
  /** The stage the record found at enrolment amounts to (or a person's lower choice): the engine never writes below it on its own. */
  floor_index: number | null;
  /** A report URI (mailto:) enrolment adds to the record because the one found had no usable rua; null when none is added. */
  report_uri: string | null;
  /** JSON array of the operator's labels (`prod`, `team-a`); notification channels filter on them. */
  tags: Generated<string>;
  enrolled_at: string;
  updated_at: string;
}

export interface StageHistoryTable {
  id: Generated<number>;
  domain: string;
  at: string;
  /** Stage label before the change, `policy:pct`; null on enrolment. */
  from_stage: string | null;
  to_stage: string;
  /** enroll, advance, rollback, force, ... */
  action: string;
  actor: string;
  reason: string;
  /** The record written for the new stage, when one was written. */
  record: string | null;
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: string;
  /** Who or what acted: `cli:<user>`, `daemon`, `api:<token name>`. */
  actor: string;
  /** The domain concerned, null for fleet-wide events. */
  domain: string | null;
  action: string;
  /** Plain-words reason a person can read. */
  reason: string;
  /** JSON: the measurements and rules behind the event. */
  details: string | null;
}

export interface ReportsTable {
  id: Generated<number>;
  /** report_metadata/org_name, trimmed. */
  org: string;
  /** report_metadata/report_id, always a string. */
  report_id: string;
  /** policy_published/domain, lowercase. */
  domain: string;
  begin: number;
  end: number;
  /** sha256 of the normalised report; the same hash is the same report, stored once. */
  content_hash: string;
  /** 1 for the copy the metrics count; a changed copy of the same report identity, or a re-sent copy under a new report_id, gets 0. */
  counted: number;
  /** Why this copy is flagged (it differs from an earlier copy of the same report, or repeats one under a new report_id). */
  flag: string | null;
  /** Order-independent digest of the report's rows (src/report-model/digest.ts): equal for a report re-sent under a new report_id. */
  rows_digest: string | null;
  /** policy_published adkim and aspf as the receiver saw them (`r`, `s`), null when absent (relaxed). */
  adkim: string | null;
  aspf: string | null;
  /** How many further identical copies arrived after this one was stored. */
  duplicates: number;
  /** Where the report came from (file path, imap:..., upload:...). */
  source: string;
  /** Unpacking chain, e.g. `eml+zip`; null for plain XML. */
  container: string | null;
  /** What the lenient parser repaired, null if nothing. */
  repaired: string | null;
  /** JSON of report metadata extras and policy_published. */
  metadata: string;
  received_at: string;
  /** When this report's raw rows were deleted by retention (null: kept); its rollups, hashes and metadata stay. */
  rows_pruned_at: string | null;
  /** While the report is being stored on SQLite (staged, not counted, not yet under its domain): when it last made progress, epoch ms; null once stored. */
  staged_at: number | null;
}

export interface ReportRowsTable {
  id: Generated<number>;
  report: number;
  source_ip: string;
  count: number;
  disposition: string | null;
  /** policy_evaluated/dkim and /spf, lowercase. */
  dkim: string | null;
  spf: string | null;
  header_from: string | null;
  envelope_from: string | null;
  envelope_to: string | null;
  /** JSON arrays: policy_evaluated reasons, auth_results dkim and spf entries. */
  reasons: string | null;
  auth_dkim: string | null;
  auth_spf: string | null;
}

export interface RejectedInputsTable {
  id: Generated<number>;
  at: string;
  /** Where the input came from, as given. */
  source: string;
  /** The element or part at fault (e.g. `report_metadata/org_name`), or null for the whole file. */
  field: string | null;
  reason: string;
  /** sha256 of the raw bytes, so the same bad file is kept once. */
  content_hash: string;
  /** Where the raw bytes were kept (the rejected/ folder). */
  kept_at: string | null;
}

/**
 * A stage change being applied: written before the provider is called, so a
 * crash at any point is resumed from here on the next tick instead of being
 * repeated blindly or forgotten. One per domain at most.
 */
export interface IntentsTable {
  /** Names this one change: updates and deletes are conditional on it (and on status), so a replaced intent is never touched. */
  id: string;
  domain: string;
  created_at: string;
  /** advance, rollback, establish, force, ... */
  action: string;
  from_index: number;
  to_index: number;
  /** The exact record to be published; null while only requested (computed from the live record when applied). */
  record: string | null;
  /** The record live before the change (null when there was none): what a resumed intent may still find. */
  previous_record: string | null;
  /** TTL of the record before the change: caches may hold it that long, so the new window starts after it. */
  previous_ttl: number | null;
  ttl: number;
  /**
   * requested: a person asked for the change, nothing read or written yet;
   * pending: record computed, provider not yet called or not yet acknowledged;
   * written: the provider accepted it, verification pending.
   */
  status: 'requested' | 'pending' | 'written';
  attempts: number;
  /** Backoff: not retried before this time. */
  next_attempt_at: string;
  last_error: string | null;
  actor: string;
  reason: string;
  /** JSON of the decision (checks and measurements) behind the change. */
  decision: string | null;
}

/** An operator's verdict on a sending source: allowlisted (authorised) or marked as abuse. */
export interface SourceRulesTable {
  id: Generated<number>;
  /** The enrolled domain the rule is for, or null for all domains. */
  domain: string | null;
  kind: 'ip' | 'dkim' | 'spf';
  value: string;
  verdict: 'authorised' | 'abuse';
  added_by: string;
  added_at: string;
  note: string | null;
}

/** A signed-in page session. The id is kept only as its SHA-256: the table holds no usable cookie. */
export interface WebSessionsTable {
  id_hash: string;
  /** JSON of the session: who signed in (token name and hash), the CSRF secret, a pending message. */
  data: string;
  expires_at: string;
}

/**
 * The outbox: one row per notification event, written in the transaction of
 * the audit event (or daemon condition) that caused it, so nothing announced
 * is lost and nothing is announced that did not happen. The dispatcher turns
 * undispatched rows into one message per channel.
 */
export interface NotificationEventsTable {
  id: Generated<number>;
  at: string;
  /** One of the typed list in src/notify/events.ts (halted, drift, approval-waiting, ...). */
  type: string;
  severity: 'info' | 'warning' | 'critical';
  domain: string | null;
  /** JSON array: the domain's tags when the event happened. */
  tags: string;
  title: string;
  detail: string;
  /** JSON: the figures behind the event (checks, stage, reporter, ...). */
  data: string | null;
  /** The condition this event announces, for events that must not repeat while unchanged. */
  condition_key: string | null;
  /** The audit event that caused it, when one did. */
  audit_id: number | null;
  /** When it was put into channel messages; null while waiting for the next digest. */
  dispatched_at: string | null;
}

/** One message for one channel (a digest, a test, a summary) and its delivery state. */
export interface NotificationMessagesTable {
  id: Generated<number>;
  /** Idempotency key sent with every attempt: a receiver seeing it twice has seen the same message. */
  key: string;
  channel: string;
  kind: 'digest' | 'test' | 'summary';
  created_at: string;
  /** JSON of the channel-neutral content; each channel formats it at delivery. */
  content: string;
  event_count: number;
  /** pending: not yet accepted by the receiver; delivered; failed: given up on, kept with its error. */
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string;
  last_attempt_at: string | null;
  last_error: string | null;
  delivered_at: string | null;
  /** The instance delivering it now (src/store/outbox-claims.ts); null when nobody is. */
  claimed_by: string | null;
  /** When that claim runs out: a claim whose instance died is taken over after this. */
  claimed_until: string | null;
}

/** A condition already announced (a domain waiting for approval, a quiet reporter, a failing tick). */
export interface NotificationConditionsTable {
  /** e.g. `approval-waiting:example.com:reject:1`, `tick-failing`. */
  key: string;
  type: string;
  domain: string | null;
  /** What the condition looked like when announced; a different fingerprint is a change and is announced. */
  fingerprint: string;
  since: string;
  /** When it was last announced (first time or reminder). */
  announced_at: string;
  reminders: number;
  /** JSON: what a reminder repeats (title, detail, severity, tags). */
  data: string | null;
}

/** A person acknowledged that a regular reporter went quiet for a domain: the engine stops waiting for it until it reports again. */
export interface ReporterAcknowledgementsTable {
  id: Generated<number>;
  domain: string;
  /** report_metadata/org_name as stored in reports.org. */
  reporter: string;
  at: string;
  actor: string;
  reason: string;
}

/** A domain's latest assessment: the stage window's headline figures and the decision, as of assessed_at. */
export interface DomainAssessmentsTable {
  domain: string;
  assessed_at: string;
  /** The plan and stage the figures were measured for; another stage now means they are stale. */
  plan: string;
  stage_index: number;
  /** The newest report stored under the domain when it was measured (0: none). */
  last_report_id: number;
  authorised_fail_rate: number | null;
  authorised_messages: number;
  spoofing_messages: number;
  blocking_sources: number;
  /** decide()'s answer at assessed_at; null when the plan could not be loaded. */
  decision_action: string | null;
  decision_to: string | null;
  decision_summary: string | null;
  /** rollup_marks.changes for the domain when measured: a higher count means new rows since. */
  rollup_changes: Generated<number>;
  /** Digest of everything else the figures stand on (plan, rules, acknowledgements, enrolled subdomains); null: not reusable. */
  inputs: string | null;
  /** The earliest time the clock alone may change the figures (a new day, a reporter falling due); null: not reusable. */
  recheck_at: string | null;
  /** The whole decision (JSON) a tick may return again while nothing changed; written by the tick only. */
  decision: string | null;
}

/**
 * A domain's daily rollups (src/store/rollups.ts): rows of counted reports
 * summed per report range, reporter and source identity.
 */
export interface DailyRollupsTable {
  /** sha256 (base64url) of the identity: domain, reporter, range, alignment modes and the row's fields below. */
  key: string;
  /** policy_published domain. */
  domain: string;
  /** Epoch day of begin: what the engine's reads and the charts go by. */
  day: number;
  reporter: string;
  begin: number;
  end: number;
  /** `r` or `s`. */
  adkim: string;
  aspf: string;
  source_ip: string;
  header_from: string | null;
  dkim: string | null;
  spf: string | null;
  /** Compact JSON arrays: [[type, comment]], [[d, selector, result]], [[domain, result]]. */
  reasons: string;
  auth_dkim: string;
  auth_spf: string;
  /** Summed count of the rows, and how many rows were summed. */
  messages: number;
  records: number;
}

/** A staged report's rollup entries, summed while it is read (src/store/staged-rollups.ts); merged into daily_rollups when it counts. */
export interface StagedRollupsTable extends DailyRollupsTable {
  report: number;
}

/** How many times the rollups a name's figures read from changed (as policy domain or header_from). */
export interface RollupMarksTable {
  name: string;
  changes: number;
}

/** A lease: `holder` works on `name` (domain:<domain>, source:<name>) until expires_at, or gives it back first. */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: string;
}

/** A running daemon: registered at start, its heartbeat renewed while it lives (src/store/instances.ts). */
export interface InstancesTable {
  /** host-pid-random: also the holder name of its leases and outbox claims. */
  id: string;
  host: string;
  pid: number;
  started_at: string;
  heartbeat_at: string;
}

/** One slice of a shared limit's window (src/store/counters.ts); times in ms since the epoch. */
export interface LimitCountersTable {
  /** The limit: `sign-in`, `smtp-messages`, `reporter-records`. */
  name: string;
  /** Whom it counts: a client IP, a reporter domain (a long one as its SHA-256). */
  subject: string;
  window_start: number;
  count: number;
  /** When the slice no longer counts for any window: pruned after. */
  expires_at: number;
}

export interface Database {
  limit_counters: LimitCountersTable;
  domain_assessments: DomainAssessmentsTable;
  daily_rollups: DailyRollupsTable;
  rollup_marks: RollupMarksTable;
  staged_rollups: StagedRollupsTable;
  leases: LeasesTable;
  instances: InstancesTable;
  reporter_acknowledgements: ReporterAcknowledgementsTable;
  domains: DomainsTable;
  stage_history: StageHistoryTable;
  audit_events: AuditEventsTable;
  reports: ReportsTable;
  report_rows: ReportRowsTable;
  rejected_inputs: RejectedInputsTable;
  intents: IntentsTable;
  source_rules: SourceRulesTable;
  web_sessions: WebSessionsTable;
  notification_events: NotificationEventsTable;
  notification_messages: NotificationMessagesTable;
  notification_conditions: NotificationConditionsTable;
}

export type DomainRow = Selectable<DomainsTable>;
export type StoredAssessment = Selectable<DomainAssessmentsTable>;
export type NewDomain = Insertable<DomainsTable>;
export type DomainUpdate = Updateable<DomainsTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type NewAuditEvent = Insertable<AuditEventsTable>;
export type StageChange = Selectable<StageHistoryTable>;
export type NewStageChange = Insertable<StageHistoryTable>;
export type ReportRow = Selectable<ReportsTable>;
export type NewReport = Insertable<ReportsTable>;
export type NewReportRecord = Insertable<ReportRowsTable>;
export type Intent = Selectable<IntentsTable>;
export type NewIntent = Insertable<IntentsTable>;
export type SourceRuleRow = Selectable<SourceRulesTable>;
export type NewRejectedInput = Insertable<RejectedInputsTable>;
export type NotificationEventRow = Selectable<NotificationEventsTable>;
export type NotificationMessageRow = Selectable<NotificationMessagesTable>;
export type NotificationConditionRow = Selectable<NotificationConditionsTable>;
export type InstanceRow = Selectable<InstancesTable>;
