/**
 * Running daemons on one store. Each registers a row at start and renews its
 * heartbeat every few seconds; the same statement batch renews every lease it
 * holds (src/store/leases.ts), so a lease lives exactly as long as its holder
 * keeps beating, however long the work under it takes. An instance that
 * stops beating (SIGKILL, a lost node, a partition) has its leases run out a
 * lease time later and its work taken over; its row stays visible as gone
 * until it is pruned, so status shows what happened.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import type { Database, InstanceRow } from './schema.js';

/** A fresh id for this process: host, pid and a random part (a restarted container keeps its host name and pid 1). */
export function newInstanceId(host = hostname(), pid = process.pid): string {
  return `${host}-${pid}-${randomBytes(3).toString('hex')}`;
}

export async function registerInstance(db: Kysely<Database>, instance: { id: string; host: string; pid: number }, now: Date): Promise<void> {
  const at = now.toISOString();
  await db
    .insertInto('instances')
    .values({ ...instance, started_at: at, heartbeat_at: at })
    .onConflict((oc) => oc.column('id').doUpdateSet({ heartbeat_at: at }))
    .execute();
}

/**
 * Renews the instance's heartbeat and every lease it still holds until
 * now + leaseMs, in one transaction. A row pruned meanwhile (another
 * instance took this one for dead) is written again: the process lives, and
 * says so. @returns how many leases were renewed.
 */
export async function beat(db: Kysely<Database>, instance: { id: string; host: string; pid: number }, now: Date, leaseMs: number): Promise<number> {
  const at = now.toISOString();
  return db.transaction().execute(async (trx) => {
    const updated = await trx.updateTable('instances').set({ heartbeat_at: at }).where('id', '=', instance.id).executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) await trx.insertInto('instances').values({ ...instance, started_at: at, heartbeat_at: at }).execute();
    const renewed = await trx
      .updateTable('leases')
      .set({ expires_at: new Date(now.getTime() + leaseMs).toISOString() })
      .where('holder', '=', instance.id)
      .executeTakeFirst();
    return Number(renewed.numUpdatedRows);
  });
}

/** A clean stop: the row and every lease the instance holds go, so nobody waits a lease time for its work. */
export async function deregisterInstance(db: Kysely<Database>, id: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('leases').where('holder', '=', id).execute();
    await trx.deleteFrom('instances').where('id', '=', id).execute();
  });
}

export interface InstanceView extends InstanceRow {
  /** Its heartbeat is within `staleMs` of now. */
  live: boolean;
  /** Leases it holds now (domain:<name>, source:<name>). */
  leases: string[];
}

/** Every registered instance, oldest first, each live or gone and with the leases it holds. */
export async function listInstances(db: Kysely<Database>, now: Date, staleMs: number): Promise<InstanceView[]> {
  const rows = await db.selectFrom('instances').selectAll().orderBy('started_at').orderBy('id').execute();
  const leases = await db.selectFrom('leases').select(['name', 'holder']).where('expires_at', '>', now.toISOString()).orderBy('name').execute();
  const since = now.getTime() - staleMs;
  return rows.map((r) => ({
    ...r,
    live: Date.parse(r.heartbeat_at) > since,
    leases: leases.filter((l) => l.holder === r.id).map((l) => l.name),
  }));
}

/** Forgets instances whose last heartbeat is older than `before` (their leases ran out long ago). */
export async function pruneInstances(db: Kysely<Database>, before: Date): Promise<number> {
  const result = await db.deleteFrom('instances').where('heartbeat_at', '<', before.toISOString()).executeTakeFirst();
  return Number(result.numDeletedRows);
}
