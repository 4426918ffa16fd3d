/**
 * Leases on named work (a domain's tick, a source's poll): taken by
 * compare-and-set, so two instances asking at once get one yes between them
 * on SQLite (one writer at a time) and on Postgres (an UPDATE re-checks its
 * WHERE against the row a concurrent one just committed). A lease runs out
 * at expires_at: one whose holder died is taken over by the next to ask.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** Takes (or renews) the lease on `name` for `holder` until now + ttlMs; false while another holder's lease runs. */
export async function claimLease(db: Db, name: string, holder: string, now: Date, ttlMs: number): Promise<boolean> {
  const expires = new Date(now.getTime() + ttlMs).toISOString();
  const inserted = await db
    .insertInto('leases')
    .values({ name, holder, expires_at: expires })
    .onConflict((oc) => oc.column('name').doNothing())
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 1) return true;
  const taken = await db
    .updateTable('leases')
    .set({ holder, expires_at: expires })
    .where('name', '=', name)
    .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<=', now.toISOString())]))
    .executeTakeFirst();
  return Number(taken.numUpdatedRows) === 1;
}

/** Gives the lease back (only when `holder` still has it). */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
}

/** Who holds `name` and until when, if anyone. */
export async function leaseOf(db: Db, name: string): Promise<{ holder: string; expires_at: string } | undefined> {
  return db.selectFrom('leases').select(['holder', 'expires_at']).where('name', '=', name).executeTakeFirst();
}
