/**
 * One input to one parsed report, storing nothing: unpack the containers,
 * stream the XML, hand records to an optional sink. This is the whole read
 * path; the store and the `report parse` command both sit on top of it.
 */
import { errorMessage } from '../errors.js';
import { ReportError } from './errors.js';
import { resolveLimits, type Limits } from './limits.js';
import type { RawInput } from './streams.js';
import { budgetSubject } from './budget.js';
import { checkProvenance } from './provenance.js';
import { unpack } from './unpack.js';
import { parseReportXml, type ParsedReport, type ReportSink } from './xml.js';

export interface ParseOptions {
  limits?: Partial<Limits>;
  /** Where records go as they are parsed; without one they are counted and dropped. */
  sink?: ReportSink;
  batchSize?: number;
}

export interface ReadReport extends ParsedReport {
  /** Unpacking chain joined with `+` (`eml+zip`), null for plain XML. */
  container: string | null;
  /** Mail attachment or zip member name the report came from. */
  member: string | null;
  /** Repairs of the XML and what the unpacker tolerated, joined with `; `, or null. */
  repaired: string | null;
}

/** Reads one report from a file or bytes. Throws ReportError when the input is not a usable aggregate report. */
export async function readReport(input: RawInput, options: ParseOptions = {}): Promise<ReadReport> {
  const limits = resolveLimits(options.limits);
  const unpacked = await unpack(input, limits);
  const policy = input.provenance;
  const budget = input.budget;
  let reporter = '';
  let records = 0;
  // Provenance and the reporter's budget are judged on the header, before the sink sees anything:
  // a forged report writes no row; a flood stops at its budget, inside the store's transaction.
  const sink: ReportSink | undefined =
    policy || budget
      ? {
          ...options.sink,
          header: async (header) => {
            if (policy) checkProvenance(header.metadata, unpacked.mail, policy);
            reporter = budgetSubject(header.metadata);
            await budget?.refresh(reporter);
            budget?.check(reporter, 0);
            await options.sink?.header?.(header);
          },
          records: async (batch) => {
            records += batch.length;
            budget?.check(reporter, records);
            await options.sink?.records?.(batch);
          },
        }
      : options.sink;
  let parsed: ParsedReport;
  try {
    parsed = await parseReportXml(unpacked.xml, limits, sink, options.batchSize);
  } catch (e) {
    await unpacked.xml.return(undefined).catch(() => undefined);
    throw e;
  }
  // The records are spent by the store, in the transaction that stores the report (src/reports/store.ts).
  const repairs = [...parsed.repairs, ...unpacked.notes];
  return {
    ...parsed,
    container: unpacked.chain.length ? unpacked.chain.join('+') : null,
    member: unpacked.member,
    repaired: repairs.length ? repairs.join('; ') : null,
  };
}

/** A one-line reason for any error thrown while reading an input. */
export function describeError(e: unknown): { field: string | null; reason: string; kind: string } {
  if (e instanceof ReportError) return { field: e.field ?? null, reason: e.message, kind: e.kind };
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && err.syscall) return { field: null, reason: `cannot read: ${err.message}`, kind: 'io' };
  return { field: null, reason: errorMessage(e), kind: 'internal' };
}
