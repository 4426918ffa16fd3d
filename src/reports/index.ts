/**
 * Aggregate report ingest, public API. Everything a door (CLI, daemon
 * sources, HTTP upload) needs is re-exported here; the modules behind it:
 *  - sniff.ts      container detection by content
 *  - streams.ts    byte-stream plumbing, gzip/zlib inflation that finds stream ends
 *  - unpack.ts     containers (gzip, zip, zlib, mail) to an XML byte stream, with caps
 *  - mime.ts       report mails: the report attachment, failure (ruf) reports recognised
 *  - xml.ts        streaming XML to the normalised model, with recorded repairs
 *  - parse.ts      one input to one parsed report (stores nothing)
 *  - figures.ts    the `report parse --json` contract figures
 *  - store.ts      store once: duplicates, changed and re-sent copies, rows in batches in one transaction
 *  - rejected.ts   rejected inputs kept with their reason
 *  - ingest.ts     inputs and folders to outcomes and a summary
 */

/** Caps against bombs and runaway inputs, and their defaults. */
export { DEFAULT_LIMITS, resolveLimits, type Limits } from './limits.js';
/** The error every refused input carries: kind, field at fault, reason. */
export { FAILURE_REPORT_REASON, ReportError, type RejectKind } from './errors.js';
/** The normalised report model (src/report-model/, below the store, which keeps reports in it). */
export * from '../report-model/model.js';
/** A raw input: `{ path }` (streamed) or `{ bytes }`. */
export type { RawInput } from './streams.js';
/** Read one input without storing: `readReport(input, { sink })`; `describeError(e)` for any failure. */
export { readReport, describeError, type ParseOptions, type ReadReport } from './parse.js';
/** Stream XML bytes to the model directly (already unpacked input). */
export { parseReportXml, REPORT_NAMESPACES, type ParsedReport, type ReportSink } from './xml.js';
/** Contract figures for `report parse --json`. */
export { errorLine, figuresLine, type ReportErrorLine, type ReportFiguresLine } from './figures.js';
/** Store one input once (throws ReportError for a bad input; ingestInput() keeps it instead). */
export { storeReport, type StoredOutcome, type StoreOptions } from './store.js';
/** Keep a rejected input; where rejected inputs go by default. */
export { defaultRejectedDir, keepRejected, type KeptRejection, type Rejection } from './rejected.js';
/** Ingest one input from any source, or files and folders, with a summary. */
export {
  ingestInput,
  ingestPaths,
  listInputFiles,
  summarise,
  type IngestOptions,
  type IngestResult,
  type IngestSummary,
} from './ingest.js';
/** Container detection by content. */
export { sniff, type ContentKind } from './sniff.js';
