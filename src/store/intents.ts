/**
 * Stage-change intents: at most one per domain, written before DNS is
 * touched. Each has an id; every update and delete names it (and the status
 * it expects), and says whether it found it. A tick still working on a move a
 * person has since replaced changes nothing of the replacement: it learns the
 * intent is gone and stops.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { AppError } from '../errors.js';
import type { Database, Intent, NewIntent } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export async function getIntent(db: Db, domain: string): Promise<Intent | undefined> {
  return db.selectFrom('intents').selectAll().where('domain', '=', domain).executeTakeFirst();
}

export async function insertIntent(db: Db, intent: NewIntent): Promise<void> {
  await db.insertInto('intents').values(intent).execute();
}

/**
 * Patches intent `id` if it is still in status `expected`; false when it is
 * gone, replaced, or moved on (then nothing was written).
 */
export async function updateIntent(
  db: Db,
  id: string,
  expected: Intent['status'],
  patch: Partial<Omit<Intent, 'domain' | 'id'>>,
): Promise<boolean> {
  const result = await db.updateTable('intents').set(patch).where('id', '=', id).where('status', '=', expected).executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Deletes intent `id` (in status `expected`, when given); false when it was no longer there. */
export async function deleteIntent(db: Db, id: string, expected?: Intent['status']): Promise<boolean> {
  let query = db.deleteFrom('intents').where('id', '=', id);
  if (expected !== undefined) query = query.where('status', '=', expected);
  const result = await query.executeTakeFirst();
  return Number(result.numDeletedRows) === 1;
}

/**
 * Replaces a domain's queued intent by `next`, in the caller's transaction:
 * only an intent still `requested` (nothing read or written for it yet) may be
 * replaced. Returns the intent that was in the way otherwise, so the caller
 * refuses with its reason instead of answering "queued" and losing the command.
 */
export async function replaceRequestedIntent(trx: Transaction<Database>, next: NewIntent): Promise<{ replaced: Intent | null } | { blockedBy: Intent }> {
  // SQLite runs one transaction at a time: the first pass always settles it.
  // On Postgres (read committed) two commands for a domain can overlap: both
  // find no intent and the second insert waits for the first to commit, or
  // both find the same one and the second delete finds it gone. Either way
  // the second reads again and replaces what the first queued, as it would
  // had it come a moment later.
  for (let pass = 0; pass < 3; pass++) {
    const existing = await getIntent(trx, next.domain);
    if (existing && existing.status !== 'requested') return { blockedBy: existing };
    if (existing && !(await deleteIntent(trx, existing.id, 'requested'))) continue;
    const inserted = await trx
      .insertInto('intents')
      .values(next)
      .onConflict((oc) => oc.column('domain').doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return { replaced: existing ?? null };
  }
  // Still contended after three passes: refuse with what is there now rather than answer "queued".
  const now = await getIntent(trx, next.domain);
  if (now) return { blockedBy: now };
  throw new AppError('conflict', `${next.domain}: other commands for it kept replacing each other; try again`);
}

/** Domains with an intent in progress, whatever their state. */
export async function listIntents(db: Db): Promise<Intent[]> {
  return db.selectFrom('intents').selectAll().orderBy('domain').execute();
}

/** A stage change as first recorded: only its target is known; the record is computed from the live one when applied. */
export function requestedIntent(fields: {
  domain: string;
  action: string;
  fromIndex: number;
  toIndex: number;
  ttl: number;
  actor: string;
  reason: string;
  at: Date;
  decision?: unknown;
}): NewIntent {
  return {
    id: randomUUID(),
    domain: fields.domain,
    created_at: fields.at.toISOString(),
    action: fields.action,
    from_index: fields.fromIndex,
    to_index: fields.toIndex,
    record: null,
    previous_record: null,
    previous_ttl: null,
    ttl: fields.ttl,
    status: 'requested',
    attempts: 0,
    next_attempt_at: fields.at.toISOString(),
    last_error: null,
    actor: fields.actor,
    reason: fields.reason,
    decision: fields.decision === undefined ? null : JSON.stringify(fields.decision),
  };
}
