/**
 * The folder source: report files dropped into a directory (by a mail
 * filter, a cron'd fetch, a person). Each file is ingested and then moved to
 * `processed/` or, when it was refused, to `rejected/` beside its reason; a
 * file ingest could not keep stays where it is and is tried again next poll.
 */
import { mkdir, rename } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { listInputFiles } from '../../reports/ingest.js';
import type { Deliver, PolledSource, PollSummary } from './types.js';

export const folderSourceConfigSchema = z
  .object({
    type: z.literal('folder'),
    path: z.string().min(1),
    /** Where ingested files go; default `<path>/processed`. */
    processed_dir: z.string().min(1).optional(),
    /** Where refused files go; default `<path>/rejected`. */
    rejected_dir: z.string().min(1).optional(),
    /**
     * Only you (a mail filter, a cron'd fetch you run) write to this folder:
     * its reports are believed as they are. When false (the default), a report
     * counts only from a mail (.eml) that authenticates as its reporter; a bare
     * XML, gzip or zip file is kept as rejected.
     */
    trusted: z.boolean().default(false),
  })
  .strict();
export type FolderSourceConfig = z.infer<typeof folderSourceConfigSchema>;

export function createFolderSource(config: z.input<typeof folderSourceConfigSchema>): PolledSource {
  const root = resolve(config.path);
  const processed = resolve(config.processed_dir ?? join(root, 'processed'));
  const rejected = resolve(config.rejected_dir ?? join(root, 'rejected'));
  return {
    kind: 'poll',
    name: `folder:${root}`,
    async poll(deliver: Deliver): Promise<PollSummary> {
      await mkdir(root, { recursive: true });
      const { files } = await listInputFiles([root]);
      const summary: PollSummary = { delivered: 0, acknowledged: 0, failed: [] };
      for (const file of files) {
        // Files already moved aside are the source's own output, not new input.
        if (isInside(file, processed) || isInside(file, rejected)) continue;
        summary.delivered++;
        const result = await deliver({ path: file, provenance: { trusted: config.trusted ?? false } }, file);
        if (result.status === 'error') {
          summary.failed.push({ source: file, reason: result.reason });
          continue;
        }
        const target = result.status === 'rejected' ? rejected : processed;
        await mkdir(target, { recursive: true });
        await rename(file, join(target, uniqueName(file)));
        summary.acknowledged++;
      }
      return summary;
    },
    async close() {},
  };
}

function isInside(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..');
}

/** Keeps the original name (reporters encode org and range in it) and avoids clobbering a same-named earlier file. */
function uniqueName(file: string): string {
  return `${Date.now().toString(36)}-${basename(file)}`;
}
