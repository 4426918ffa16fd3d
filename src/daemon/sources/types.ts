/**
 * The contract between the daemon and its report sources (folder, IMAP,
 * SMTP, HTTP upload). A source yields raw inputs; the daemon's `deliver`
 * ingests each and resolves with the outcome. A source removes or moves an
 * input at its origin only after `deliver` resolved with a status other than
 * `error` (stored, duplicate, or rejected-and-kept): nothing is lost.
 */
import type { IngestResult, RawInput } from '../../reports/index.js';

/** Ingests one raw input; `source` names it (`imap:INBOX/123`, `smtp:<message-id>`, a path). */
export type Deliver = (input: RawInput, source: string) => Promise<IngestResult>;

export interface PollSummary {
  /** Inputs handed to deliver. */
  delivered: number;
  /** Of those, how many were acknowledged (moved/deleted) at the origin. */
  acknowledged: number;
  /** Inputs left in place because ingest could not keep them, with why. */
  failed: Array<{ source: string; reason: string }>;
}

/** A source the daemon asks on its schedule (a folder, a mailbox). */
export interface PolledSource {
  readonly kind: 'poll';
  readonly name: string;
  poll(deliver: Deliver): Promise<PollSummary>;
  close(): Promise<void>;
}

/** A source that receives on its own (an SMTP listener). */
export interface ListeningSource {
  readonly kind: 'listen';
  readonly name: string;
  start(deliver: Deliver): Promise<void>;
  /** Stops accepting; resolves when what was in flight is delivered. */
  stop(): Promise<void>;
}

export type ReportSource = PolledSource | ListeningSource;
