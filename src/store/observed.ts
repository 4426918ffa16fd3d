/**
 * The values the store hands the engine from the reports it holds: report
 * rows (observations.ts, rollups), report arrivals and the acknowledgements
 * people gave for quiet reporters (report-arrivals.ts). Declared here, below
 * the engine, because the store computes them; the engine's modules
 * (engine/types.ts, engine/reporters.ts) re-export them under the same names.
 */

/** One aggregate-report row as the engine sees it, with its report's context. */
export interface ObservedRow {
  /** Reporter organisation (report_metadata/org_name). */
  reporter: string;
  /** The report's date range, epoch seconds. */
  begin: number;
  end: number;
  /** policy_published/domain: whose record the receiver applied. */
  policyDomain: string;
  sourceIp: string;
  count: number;
  headerFrom: string | null;
  /** policy_evaluated dkim/spf, lowercase: `pass` means aligned and authenticated. */
  dkim: string | null;
  spf: string | null;
  disposition: string | null;
  /** policy_published adkim/aspf: `s` strict, `r` relaxed (also when absent). */
  adkim?: 'r' | 's';
  aspf?: 'r' | 's';
  /** policy_evaluated reasons, type lowercase: why the receiver overrode the policy (forwarded, mailing_list, local_policy, ...). */
  reasons?: Array<{ type: string | null; comment: string | null }>;
  /** auth_results: the domains that signed (DKIM d=, with its selector) or were checked (SPF), with their results. */
  authDkim: Array<{ domain: string | null; selector?: string | null; result: string | null }>;
  authSpf: Array<{ domain: string | null; result: string | null }>;
}

/** One stored (counted) report: who sent it, the range it covers and when it arrived. */
export interface ReportArrival {
  reporter: string;
  begin: number;
  end: number;
  /** When it was ingested, epoch seconds. */
  arrivedAt: number;
}

/** A person said "go on without this reporter" at this time; void once it reports again. */
export interface ReporterAcknowledgement {
  reporter: string;
  at: number;
  actor: string;
}
