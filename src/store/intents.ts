/** Stage-change intents: at most one per domain, written before DNS is touched. */
import type { Kysely, Transaction } from 'kysely';
import type { Database, Intent, NewIntent } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

export async function getIntent(db: Db, domain: string): Promise<Intent | undefined> {
  return db.selectFrom('intents').selectAll().where('domain', '=', domain).executeTakeFirst();
}

export async function insertIntent(db: Db, intent: NewIntent): Promise<void> {
  await db.insertInto('intents').values(intent).execute();
}

export async function updateIntent(db: Db, domain: string, patch: Partial<Omit<Intent, 'domain'>>): Promise<void> {
  await db.updateTable('intents').set(patch).where('domain', '=', domain).execute();
}

export async function deleteIntent(db: Db, domain: string): Promise<void> {
  await db.deleteFrom('intents').where('domain', '=', domain).execute();
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
