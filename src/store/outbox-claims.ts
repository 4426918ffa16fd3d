/**
 * Claims on the notification outbox, so daemons sharing one store send each
 * message once and turn each event into a message once. On Postgres the row
 * is locked with FOR UPDATE SKIP LOCKED while it is claimed (an instance
 * claiming at the same moment skips it instead of waiting or taking it too);
 * the claim itself is a column with a lease time, held through the delivery
 * without a transaction open over the network; a claim whose instance died
 * runs out and is taken over. On SQLite (one daemon per store, held by its
 * lock file, one writer at a time) the same statements run without the lock
 * clause, and a claim left by an earlier daemon is taken over at once.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Dialect } from './migrations.js';
import { markAttemptFailed, markDelivered } from './notifications.js';
import type { Database, NotificationEventRow, NotificationMessageRow } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export type ClaimAnswer =
  /** Deliver it: claimed for `holder` until the lease time; `takenOverFrom` names a holder whose claim ran out. */
  | { claimed: NotificationMessageRow; takenOverFrom: string | null }
  /** Nothing to do on this channel now: no pending message, or the oldest is not due. */
  | { idle: true; nextAttemptAt: string | null }
  /** Another instance is delivering this channel's oldest message (or claiming it this instant). */
  | { busy: string };

/**
 * Claims the oldest pending message of `channel` for `holder`. A channel
 * delivers in order: when its oldest message is someone else's, the channel
 * is theirs for now and nothing later is claimed past it.
 */
export async function claimNextMessage(
  db: Kysely<Database>,
  dialect: Dialect,
  channel: string,
  holder: string,
  now: Date,
  leaseMs: number,
): Promise<ClaimAnswer> {
  return db.transaction().execute(async (trx) => {
    const head = await trx
      .selectFrom('notification_messages')
      .select('id')
      .where('channel', '=', channel)
      .where('status', '=', 'pending')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (!head) return { idle: true as const, nextAttemptAt: null };
    let query = trx.selectFrom('notification_messages').selectAll().where('id', '=', head.id).where('status', '=', 'pending');
    if (dialect === 'postgres') query = query.forUpdate().skipLocked();
    const row = await query.executeTakeFirst();
    // Locked: another instance is claiming it right now. Gone: delivered meanwhile; the next pass looks again.
    if (!row) return { busy: 'another instance' };
    if (Date.parse(row.next_attempt_at) > now.getTime()) return { idle: true as const, nextAttemptAt: row.next_attempt_at };
    const other = row.claimed_by !== null && row.claimed_by !== holder ? row.claimed_by : null;
    // On SQLite the daemon holds the store's lock file, so another claim is a dead daemon's: taken over at once.
    const live = dialect === 'postgres' && row.claimed_until !== null && Date.parse(row.claimed_until) > now.getTime();
    if (other !== null && live) return { busy: other };
    const until = new Date(now.getTime() + leaseMs).toISOString();
    await trx.updateTable('notification_messages').set({ claimed_by: holder, claimed_until: until }).where('id', '=', row.id).execute();
    return { claimed: { ...row, claimed_by: holder, claimed_until: until }, takenOverFrom: other };
  });
}

/**
 * Records a delivery and ends the claim. Marked delivered whoever holds the
 * claim now: the receiver accepted it. @returns false when the claim had
 * been taken over meanwhile (the message may reach the receiver twice, with
 * the same idempotency key).
 */
export async function settleDelivered(db: Db, id: number, holder: string, at: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('notification_messages').select('claimed_by').where('id', '=', id).executeTakeFirst();
    await markDelivered(trx, id, at);
    return row?.claimed_by === holder;
  });
}

/**
 * Records a failed attempt (pending again after the backoff, or given up)
 * and ends the claim, only while `holder` still has it: an instance whose
 * claim was taken over does not push back the new holder's schedule.
 * @returns false when the claim was no longer `holder`'s (nothing written).
 */
export async function settleFailed(db: Db, id: number, holder: string, opts: { at: string; error: string; nextAttemptAt: string; giveUp: boolean }): Promise<boolean> {
  return markAttemptFailed(db, id, { ...opts, holder });
}

/**
 * The events not yet put into messages, oldest first, locked for the
 * caller's transaction on Postgres (SKIP LOCKED: events another instance is
 * dispatching this instant are left to it, never put into two digests).
 */
export async function claimUndispatchedEvents(trx: Transaction<Database>, dialect: Dialect, limit = 5000): Promise<NotificationEventRow[]> {
  let query = trx.selectFrom('notification_events').selectAll().where('dispatched_at', 'is', null).orderBy('id').limit(limit);
  if (dialect === 'postgres') query = query.forUpdate().skipLocked();
  return query.execute();
}
