/**
 * The normalised aggregate report: what every container, namespace and
 * reporter quirk is reduced to before anything is counted or stored. Values
 * are trimmed; the ones receivers spell differently (`Pass`, `pass`) are
 * lowercased; empty elements become null; report_id is always a string.
 * Below both the ingest (src/reports/), which produces it, and the store,
 * which keeps reports in this shape and, in a data migration, recomputes
 * their rows digest (digest.ts).
 */

/** report_metadata and the document's envelope (namespace, version). */
export interface ReportMetadata {
  /** report_metadata/org_name, trimmed (may be empty: some reporters send `<org_name/>`). */
  org: string;
  email: string | null;
  extra_contact_info: string | null;
  /** report_metadata/report_id, trimmed, always a string (ids exceed JS number precision). */
  report_id: string;
  /** date_range, epoch seconds. */
  begin: number;
  end: number;
  /** report_metadata/error, every one. */
  errors: string[];
  /** RFC 9990 report_metadata/generator. */
  generator: string | null;
  /** feedback/version. */
  version: string | null;
  /** Default namespace of <feedback>, null when there is none. */
  namespace: string | null;
}

/** policy_published: the record the receiver saw. */
export interface PolicyPublished {
  /** Lowercase, no trailing dot. */
  domain: string;
  p: string | null;
  sp: string | null;
  np: string | null;
  /** 0..100, null when absent (RFC 9990 dropped pct) or not a number. */
  pct: number | null;
  /** RFC 9990 `testing` (t=y/n), lowercase. */
  t: string | null;
  adkim: string | null;
  aspf: string | null;
  fo: string | null;
  /** RFC 9990 discovery_method (psl, treewalk). */
  discovery_method: string | null;
}

export interface PolicyOverrideReason {
  type: string | null;
  comment: string | null;
}

export interface DkimAuthResult {
  domain: string | null;
  selector: string | null;
  result: string | null;
  human_result: string | null;
}

export interface SpfAuthResult {
  domain: string | null;
  scope: string | null;
  result: string | null;
  human_result: string | null;
}

/** One <record>: a row of policy evaluation, its identifiers and auth results. */
export interface ReportRecord {
  /** As given (may be empty in broken reports); not validated as an address. */
  source_ip: string;
  count: number;
  disposition: string | null;
  /** policy_evaluated/dkim and /spf, lowercase; null when the reporter left them out. */
  dkim: string | null;
  spf: string | null;
  reasons: PolicyOverrideReason[];
  header_from: string | null;
  envelope_from: string | null;
  envelope_to: string | null;
  auth_dkim: DkimAuthResult[];
  auth_spf: SpfAuthResult[];
}

/** Everything in a report except its records, known before the first record. */
export interface ReportHeader {
  metadata: ReportMetadata;
  policy: PolicyPublished;
}

/** The identity of a report: the same five values are the same report. */
export interface ReportIdentity {
  org: string;
  report_id: string;
  domain: string;
  begin: number;
  end: number;
}

/** Running figures of a report (see corpus SOURCES.md for their definitions). */
export interface ReportFigures {
  records: number;
  messages: number;
  dmarc_pass: number;
  dmarc_fail: number;
}

export function identityOf(header: ReportHeader): ReportIdentity {
  return {
    org: header.metadata.org,
    report_id: header.metadata.report_id,
    domain: header.policy.domain,
    begin: header.metadata.begin,
    end: header.metadata.end,
  };
}
