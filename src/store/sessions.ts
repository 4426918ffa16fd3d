/** Page sessions by the hash of their id, each with its expiry; expired ones are never returned and are swept on write. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

export async function readSession(db: Kysely<Database>, idHash: string, now: Date): Promise<string | undefined> {
  const row = await db
    .selectFrom('web_sessions')
    .select('data')
    .where('id_hash', '=', idHash)
    .where('expires_at', '>', now.toISOString())
    .executeTakeFirst();
  return row?.data;
}

export async function writeSession(db: Kysely<Database>, idHash: string, data: string, expiresAt: Date, now: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('web_sessions').where('expires_at', '<=', now.toISOString()).execute();
    await trx
      .insertInto('web_sessions')
      .values({ id_hash: idHash, data, expires_at: expiresAt.toISOString() })
      .onConflict((oc) => oc.column('id_hash').doUpdateSet({ data, expires_at: expiresAt.toISOString() }))
      .execute();
  });
}

export async function deleteSession(db: Kysely<Database>, idHash: string): Promise<void> {
  await db.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
}
