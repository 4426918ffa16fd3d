/**
 * Rejected inputs are kept, never dropped: the raw bytes go to the rejected
 * folder under their sha256 (so the same bad file is kept once), with a
 * `<sha256>.reason.json` beside them, and a row in `rejected_inputs` names
 * the source, the field at fault and the reason.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { defaultRejectedDir } from '../paths.js';
import type { Database } from '../store/schema.js';
import { isFileInput, type RawInput } from './streams.js';

/** Where rejected inputs go by default (src/paths.ts decides). */
export { defaultRejectedDir };

export async function sha256Of(input: RawInput): Promise<string> {
  const h = createHash('sha256');
  if (isFileInput(input)) {
    for await (const chunk of createReadStream(input.path)) h.update(chunk as Buffer);
  } else {
    h.update(input.bytes);
  }
  return h.digest('hex');
}

export interface Rejection {
  source: string;
  field: string | null;
  reason: string;
  /** ReportError kind (`failure-report`, `xml`, `limit` ...). */
  kind: string;
}

export interface KeptRejection extends Rejection {
  contentHash: string;
  keptAt: string;
  /** The same bytes had been rejected before (kept once). */
  seenBefore: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Keeps the input's bytes and reason in `dir` and records it in rejected_inputs. */
export async function keepRejected(
  db: Kysely<Database>,
  input: RawInput,
  rejection: Rejection,
  dir: string,
  now: Date = new Date(),
): Promise<KeptRejection> {
  const contentHash = await sha256Of(input);
  await mkdir(dir, { recursive: true });
  const keptAt = join(dir, contentHash);
  if (!(await exists(keptAt))) {
    // Write under a temporary name and rename, so a crash never leaves a partial file under the final name.
    const tmp = `${keptAt}.${process.pid}.tmp`;
    if (isFileInput(input)) await copyFile(input.path, tmp);
    else await writeFile(tmp, input.bytes);
    await rename(tmp, keptAt);
  }
  if (!(await exists(`${keptAt}.reason.json`))) {
    await writeFile(
      `${keptAt}.reason.json`,
      `${JSON.stringify({ ...rejection, content_hash: contentHash, at: now.toISOString() }, null, 2)}\n`,
    );
  }
  const inserted = await db
    .insertInto('rejected_inputs')
    .values({
      at: now.toISOString(),
      source: rejection.source,
      field: rejection.field,
      reason: rejection.reason,
      content_hash: contentHash,
      kept_at: keptAt,
    })
    .onConflict((oc) => oc.column('content_hash').doNothing())
    .executeTakeFirst();
  const seenBefore = Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0;
  return { ...rejection, contentHash, keptAt, seenBefore };
}
