/**
 * The one error type of report ingest: every refusal names the field (or the
 * container part) at fault and a reason a person can act on. Anything that is
 * not a ReportError is a bug or an I/O failure, not a verdict on the input.
 */
import { AppError, type ErrorCode } from '../errors.js';

/** Why an input is refused as aggregate report data. */
export type RejectKind =
  | 'empty'
  | 'unrecognised'
  | 'container'
  | 'limit'
  | 'xml'
  | 'schema'
  | 'failure-report'
  | 'not-a-report'
  /** The mail does not authenticate as the reporter the report names (src/reports/provenance.ts). */
  | 'provenance'
  /** Over a budget of work per sender and hour: kept, not counted. */
  | 'budget'
  /** Cannot be judged now (a DNS lookup failed): left where it is and tried again, not kept as rejected. */
  | 'temporary';

/** The family's code for each kind: over a budget is too-large, not judged now is unavailable, the rest is invalid input. */
const CODE_OF_KIND: Readonly<Record<RejectKind, ErrorCode>> = {
  empty: 'invalid',
  unrecognised: 'invalid',
  container: 'invalid',
  limit: 'too-large',
  xml: 'invalid',
  schema: 'invalid',
  'failure-report': 'invalid',
  'not-a-report': 'invalid',
  provenance: 'invalid',
  budget: 'too-large',
  temporary: 'unavailable',
};

export class ReportError extends AppError {
  constructor(
    readonly kind: RejectKind,
    message: string,
    /** Element path (`report_metadata/org_name`) or container part; null for the whole input. */
    field: string | null = null,
    options: { cause?: unknown } = {},
  ) {
    // A reason is stored, logged and sent back to SMTP clients: one line, bounded, whatever of the input it quotes.
    const line = message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
    super(CODE_OF_KIND[kind], line.length > 500 ? `${line.slice(0, 497)}...` : line, { ...options, ...(field === null ? {} : { field }) });
    this.name = 'ReportError';
  }
}

/** The reason given for failure (ruf) reports, which are set aside, not parsed. */
export const FAILURE_REPORT_REASON = 'failure (ruf) report, not aggregate data';
