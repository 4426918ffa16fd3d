/**
 * Ingest: one raw input (a file, or bytes from a mailbox or an upload) to an
 * outcome: stored, duplicate, or rejected and kept with its reason. A folder
 * is walked recursively and every file goes through the same door; one bad
 * file never stops the rest. Sources call ingestInput(); the CLI calls
 * ingestPaths().
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import type { Limits } from './limits.js';
import { describeError } from './parse.js';
import { keepRejected } from './rejected.js';
import { storeReport } from './store.js';
import type { RawInput } from './streams.js';

export interface IngestOptions {
  /** Folder where rejected inputs are kept (see defaultRejectedDir()). */
  rejectedDir: string;
  limits?: Partial<Limits>;
  now?: () => Date;
  /** See StoreOptions.rollupEntriesHeld. */
  rollupEntriesHeld?: number;
}

export type IngestResult =
  | {
      source: string;
      status: 'stored';
      id: number;
      /** false for a changed or re-sent copy of an already stored report (kept, flagged, not counted). */
      counted: boolean;
      flag: string | null;
      org: string;
      report_id: string;
      domain: string;
      begin: number;
      end: number;
      records: number;
      messages: number;
      container: string | null;
      repaired: string | null;
    }
  | { source: string; status: 'duplicate'; id: number; org: string; report_id: string; domain: string }
  | {
      source: string;
      status: 'rejected';
      field: string | null;
      reason: string;
      kind: string;
      kept_at: string;
      content_hash: string;
      seen_before: boolean;
    }
  | { source: string; status: 'error'; reason: string };

/**
 * Ingests one input. `source` names it in the store and in messages (a path,
 * `imap:<mailbox>/<uid>`, `upload:<id>`). Resolves for every input; only an
 * input that could not even be read or kept ends as `error`. A source may
 * delete or move the original once the result is not `error`.
 */
export async function ingestInput(
  db: Kysely<Database>,
  input: RawInput,
  source: string,
  options: IngestOptions,
): Promise<IngestResult> {
  const now = options.now ?? (() => new Date());
  // A turn of the event loop before each input: on SQLite a small report in memory is stored without real I/O,
  // so a caller ingesting many in a row (a mailbox fetched, a backfill) would otherwise never let a timer or a
  // request run (1,000 reports held the loop 2.5 s at 100,000 domains).
  await new Promise((resolve) => setImmediate(resolve));
  try {
    const outcome = await storeReport(db, input, {
      source,
      now,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.rollupEntriesHeld ? { rollupEntriesHeld: options.rollupEntriesHeld } : {}),
    });
    const { metadata, policy } = outcome.report.header;
    if (outcome.status === 'duplicate') {
      return { source, status: 'duplicate', id: outcome.id, org: metadata.org, report_id: metadata.report_id, domain: policy.domain };
    }
    return {
      source,
      status: 'stored',
      id: outcome.id,
      counted: outcome.counted,
      flag: outcome.flag,
      org: metadata.org,
      report_id: metadata.report_id,
      domain: policy.domain,
      begin: metadata.begin,
      end: metadata.end,
      records: outcome.report.figures.records,
      messages: outcome.report.figures.messages,
      container: outcome.report.container,
      repaired: outcome.report.repaired,
    };
  } catch (e) {
    const d = describeError(e);
    if (d.kind === 'io' || d.kind === 'internal' || d.kind === 'temporary') return { source, status: 'error', reason: d.reason };
    try {
      const kept = await keepRejected(db, input, { source, field: d.field, reason: d.reason, kind: d.kind }, options.rejectedDir, now());
      return {
        source,
        status: 'rejected',
        field: kept.field,
        reason: kept.reason,
        kind: kept.kind,
        kept_at: kept.keptAt,
        content_hash: kept.contentHash,
        seen_before: kept.seenBefore,
      };
    } catch (keepError) {
      return { source, status: 'error', reason: `rejected (${d.reason}) but could not be kept: ${describeError(keepError).reason}` };
    }
  }
}

type WalkEntry = { file: string } | { error: { source: string; reason: string } };

/**
 * Every regular file under `paths` (folders recursively, in name order), one
 * at a time: only the names of the folder being walked are held, never the
 * whole list, so a backfill of a million files costs no more memory than
 * one of ten. Unreadable paths come out as errors, not thrown.
 */
export async function* walkInputFiles(paths: string[]): AsyncGenerator<WalkEntry> {
  async function* walk(p: string, top: boolean): AsyncGenerator<WalkEntry> {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      yield { error: { source: p, reason: `cannot read: ${errorMessage(e)}` } };
      return;
    }
    if (st.isFile()) {
      yield { file: p };
      return;
    }
    if (!st.isDirectory()) {
      if (top) yield { error: { source: p, reason: 'not a file or folder' } };
      return;
    }
    let entries;
    try {
      entries = await readdir(p, { withFileTypes: true });
    } catch (e) {
      yield { error: { source: p, reason: `cannot read folder: ${errorMessage(e)}` } };
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      // Folders are followed only when they are real folders: a symlink loop cannot trap the walk.
      if (entry.isDirectory()) yield* walk(join(p, entry.name), false);
      else if (entry.isFile() || entry.isSymbolicLink()) {
        const full = join(p, entry.name);
        if (entry.isSymbolicLink()) {
          const target = await stat(full).catch(() => null);
          if (!target?.isFile()) continue;
        }
        yield { file: full };
      }
    }
  }
  for (const p of paths) yield* walk(p, true);
}

/** Every regular file under `paths` as one list (walkInputFiles() without holding it is what ingest uses). */
export async function listInputFiles(paths: string[]): Promise<{ files: string[]; errors: { source: string; reason: string }[] }> {
  const files: string[] = [];
  const errors: { source: string; reason: string }[] = [];
  for await (const e of walkInputFiles(paths)) {
    if ('file' in e) files.push(e.file);
    else errors.push(e.error);
  }
  return { files, errors };
}

export interface IngestSummary {
  files: number;
  stored: number;
  /** Of the stored: changed copies of a report stored before (kept, flagged, not counted). */
  changed: number;
  duplicates: number;
  rejected: number;
  /** Rejected inputs grouped by reason (field included), with how many. */
  rejected_reasons: { reason: string; count: number }[];
  errors: number;
  /**
   * Per-input results: every one when asked for (`keepResults`), otherwise
   * only the rejected and failed inputs, at most KEPT_PROBLEMS of them (the
   * counts above cover all). Stored and duplicate inputs are counted, not
   * kept: a backfill's memory does not grow with its size.
   */
  results: IngestResult[];
  /** Rejected or failed inputs left out of `results` past the cap (their reasons are in rejected_reasons). */
  results_omitted: number;
}

/** Rejected or failed inputs whose results a summary keeps when not every result is asked for. */
export const KEPT_PROBLEMS = 1000;

/** A summary built one result at a time. */
export class IngestTally {
  readonly #reasons = new Map<string, number>();
  readonly #summary: IngestSummary = { files: 0, stored: 0, changed: 0, duplicates: 0, rejected: 0, rejected_reasons: [], errors: 0, results: [], results_omitted: 0 };
  constructor(private readonly keepResults: boolean) {}

  add(r: IngestResult): void {
    const s = this.#summary;
    s.files++;
    if (r.status === 'stored') {
      s.stored++;
      if (!r.counted) s.changed++;
    } else if (r.status === 'duplicate') s.duplicates++;
    else if (r.status === 'rejected') {
      s.rejected++;
      const key = r.field ? `${r.field}: ${r.reason}` : r.reason;
      this.#reasons.set(key, (this.#reasons.get(key) ?? 0) + 1);
    } else s.errors++;
    const problem = r.status === 'rejected' || r.status === 'error';
    if (this.keepResults || (problem && s.results.length < KEPT_PROBLEMS)) s.results.push(r);
    else if (problem) s.results_omitted++;
  }

  summary(): IngestSummary {
    const s = this.#summary;
    s.rejected_reasons = [...this.#reasons.entries()].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count);
    return s;
  }
}

/** The summary of results already at hand (all of them kept). */
export function summarise(results: IngestResult[]): IngestSummary {
  const tally = new IngestTally(true);
  for (const r of results) tally.add(r);
  return tally.summary();
}

async function countInputFiles(paths: string[]): Promise<number> {
  let n = 0;
  for await (const e of walkInputFiles(paths)) if ('file' in e) n++;
  return n;
}

/**
 * Ingests files and folders one at a time, walking the folders as it goes;
 * `onResult` sees each result as it lands (for a progress bar). `onStart`
 * gets the number of files, counted by a first walk (only when asked for).
 */
export async function ingestPaths(
  db: Kysely<Database>,
  paths: string[],
  options: IngestOptions & {
    onStart?: (total: number) => void;
    onResult?: (result: IngestResult, done: number, total: number) => void;
    /** Keep every input's result in the summary (the CLI's --json and --verbose); default: only the rejected and failed. */
    keepResults?: boolean;
  },
): Promise<IngestSummary> {
  const total = options.onStart || options.onResult ? await countInputFiles(paths) : 0;
  options.onStart?.(total);
  const tally = new IngestTally(options.keepResults ?? false);
  let done = 0;
  for await (const entry of walkInputFiles(paths)) {
    if ('error' in entry) {
      const result: IngestResult = { source: entry.error.source, status: 'error', reason: entry.error.reason };
      tally.add(result);
      options.onResult?.(result, done, total);
      continue;
    }
    const result = await ingestInput(db, { path: entry.file }, entry.file, options);
    tally.add(result);
    options.onResult?.(result, ++done, Math.max(total, done));
  }
  return tally.summary();
}
