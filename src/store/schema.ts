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
  /** 1 for the copy the metrics count; a changed copy of the same report identity gets 0. */
  counted: number;
  /** Why this copy is flagged (e.g. it differs from an earlier copy of the same report). */
  flag: string | null;
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

export interface Database {
  domains: DomainsTable;
  stage_history: StageHistoryTable;
  audit_events: AuditEventsTable;
  reports: ReportsTable;
  report_rows: ReportRowsTable;
  rejected_inputs: RejectedInputsTable;
}

export type DomainRow = Selectable<DomainsTable>;
export type NewDomain = Insertable<DomainsTable>;
export type DomainUpdate = Updateable<DomainsTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type NewAuditEvent = Insertable<AuditEventsTable>;
export type StageChange = Selectable<StageHistoryTable>;
export type NewStageChange = Insertable<StageHistoryTable>;
export type ReportRow = Selectable<ReportsTable>;
export type NewReport = Insertable<ReportsTable>;
export type NewReportRecord = Insertable<ReportRowsTable>;
export type NewRejectedInput = Insertable<RejectedInputsTable>;
