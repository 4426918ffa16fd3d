/**
 * The folder source: report files dropped into a directory (by a mail
 * filter, a cron'd fetch, a person). Each file is ingested and then moved to
 * `processed/` or, when it was refused, to `rejected/` beside its reason; a
 * file ingest could not keep stays where it is and is tried again next poll.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, realpath, rename, writeFile } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { z } from 'zod';
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
    /** A file larger than this is left in place and named in the poll's failures (a report file is rarely over a few MiB). */
    max_file_bytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024 * 1024),
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
      const realRoot = await realpath(root);
      // Files already moved aside are the source's own output, not new input.
      const { files, links } = await listFolder(root, (dir) => dir === processed || dir === rejected);
      const summary: PollSummary = { delivered: 0, acknowledged: 0, failed: [] };
      for (const link of links) {
        // Never followed: a link to a provider key or the session secret would otherwise be read, and kept in rejected/.
        const reason = `a symbolic link (to ${await readlink(link).catch(() => '?')}) in the report folder: not followed, moved aside`;
        await setAside(link, rejected, reason);
        summary.failed.push({ source: link, reason });
      }
      for (const file of files) {
        const read = await readInside(file, realRoot, config.max_file_bytes ?? 64 * 1024 * 1024);
        if ('unsafe' in read) {
          await setAside(file, rejected, read.unsafe);
          summary.failed.push({ source: file, reason: read.unsafe });
          continue;
        }
        if ('failed' in read) {
          summary.failed.push({ source: file, reason: read.failed });
          continue;
        }
        summary.delivered++;
        const result = await deliver({ bytes: read.bytes, provenance: { trusted: config.trusted ?? false } }, file);
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

/**
 * Regular files and symbolic links under `root`, recursively, in name order.
 * Only real folders are entered (a linked folder is a link); `skip` names
 * folders left out.
 */
async function listFolder(root: string, skip: (dir: string) => boolean): Promise<{ files: string[]; links: string[] }> {
  const files: string[] = [];
  const links: string[] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skip(full)) await walk(full);
      } else if (entry.isFile()) files.push(full);
      else if (entry.isSymbolicLink()) links.push(full);
      // Sockets, FIFOs and devices are not report files: left alone, never opened (a FIFO would block the poll).
    }
  }
  await walk(root);
  return { files, links };
}

/**
 * Reads one file without following a link put in its place since it was
 * listed (O_NOFOLLOW), only if it is a regular file still inside the folder.
 */
async function readInside(file: string, realRoot: string, maxBytes: number): Promise<{ bytes: Buffer } | { unsafe: string } | { failed: string }> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { unsafe: 'became a symbolic link after it was listed: not followed, moved aside' };
    return { failed: `cannot open: ${code ?? (error as Error).message}` };
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { failed: 'not a regular file any more; left alone' };
    const real = await realpath(file);
    if (real !== realRoot && !real.startsWith(realRoot + sep)) return { unsafe: `resolves outside the report folder (${real}): not read, moved aside` };
    if (info.size > maxBytes) return { failed: `${info.size} bytes, over max_file_bytes (${maxBytes}); left in place` };
    return { bytes: await handle.readFile() };
  } finally {
    await handle.close();
  }
}

/** Moves an unsafe entry (the link itself, never its target) into `dir`, with its reason beside it. */
async function setAside(path: string, dir: string, reason: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const target = join(dir, uniqueName(path));
  const info = await lstat(path).catch(() => null);
  if (!info) return;
  await rename(path, target);
  await writeFile(`${target}.reason.json`, `${JSON.stringify({ source: path, reason, at: new Date().toISOString() }, null, 2)}\n`);
}

/** Keeps the original name (reporters encode org and range in it) and avoids clobbering a same-named earlier file. */
function uniqueName(file: string): string {
  return `${Date.now().toString(36)}-${basename(file)}`;
}
