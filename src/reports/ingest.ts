/**
 * Ingest: one raw input (a file, or bytes from a mailbox or an upload) to an
 * outcome: stored, duplicate, or rejected and kept with its reason. A folder
 * is walked recursively and every file goes through the same door; one bad
 * file never stops the rest. Sources call ingestInput(); the CLI calls
 * ingestPaths().
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
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
  try {
    const outcome = await storeReport(db, input, {
      source,
      now,
      ...(options.limits ? { limits: options.limits } : {}),
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

/** Every regular file under `paths` (folders recursively, in name order); unreadable paths are reported, not thrown. */
export async function listInputFiles(paths: string[]): Promise<{ files: string[]; errors: { source: string; reason: string }[] }> {
  const files: string[] = [];
  const errors: { source: string; reason: string }[] = [];
  async function walk(p: string, top: boolean): Promise<void> {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      errors.push({ source: p, reason: `cannot read: ${(e as Error).message}` });
      return;
    }
    if (st.isFile()) {
      files.push(p);
      return;
    }
    if (!st.isDirectory()) {
      if (top) errors.push({ source: p, reason: 'not a file or folder' });
      return;
    }
    let entries;
    try {
      entries = await readdir(p, { withFileTypes: true });
    } catch (e) {
      errors.push({ source: p, reason: `cannot read folder: ${(e as Error).message}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      // Folders are followed only when they are real folders: a symlink loop cannot trap the walk.
      if (entry.isDirectory()) await walk(join(p, entry.name), false);
      else if (entry.isFile() || entry.isSymbolicLink()) {
        const full = join(p, entry.name);
        if (entry.isSymbolicLink()) {
          const target = await stat(full).catch(() => null);
          if (!target?.isFile()) continue;
        }
        files.push(full);
      }
    }
  }
  for (const p of paths) await walk(p, true);
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
  results: IngestResult[];
}

export function summarise(results: IngestResult[]): IngestSummary {
  const reasons = new Map<string, number>();
  const s: IngestSummary = { files: results.length, stored: 0, changed: 0, duplicates: 0, rejected: 0, rejected_reasons: [], errors: 0, results };
  for (const r of results) {
    if (r.status === 'stored') {
      s.stored++;
      if (!r.counted) s.changed++;
    } else if (r.status === 'duplicate') s.duplicates++;
    else if (r.status === 'rejected') {
      s.rejected++;
      const key = r.field ? `${r.field}: ${r.reason}` : r.reason;
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    } else s.errors++;
  }
  s.rejected_reasons = [...reasons.entries()].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count);
  return s;
}

/** Ingests files and folders; `onResult` sees each result as it lands (for a progress bar). */
export async function ingestPaths(
  db: Kysely<Database>,
  paths: string[],
  options: IngestOptions & { onStart?: (total: number) => void; onResult?: (result: IngestResult, done: number, total: number) => void },
): Promise<IngestSummary> {
  const { files, errors } = await listInputFiles(paths);
  const results: IngestResult[] = errors.map((e) => ({ source: e.source, status: 'error' as const, reason: e.reason }));
  for (const r of results) options.onResult?.(r, 0, files.length);
  options.onStart?.(files.length);
  let done = 0;
  for (const file of files) {
    const result = await ingestInput(db, { path: file }, file, options);
    results.push(result);
    options.onResult?.(result, ++done, files.length);
  }
  return summarise(results);
}
