/**
 * The audit log: one row per decision or action, who or what did it, when and
 * why, with the measurements behind it as JSON. Rows are only ever appended.
 * Appending also writes the notification events the entry announces, in the
 * same transaction (the outbox): a decision is never recorded without its
 * notification, nor announced without being recorded.
 */
import type { Kysely, Transaction } from 'kysely';
import { eventsFromAudit } from './notify-events.js';
import { storeEvents } from './notifications.js';
import type { AuditEvent, Database } from './schema.js';

export interface AuditEntry {
  at: Date;
  actor: string;
  domain: string | null;
  action: string;
  reason: string;
  details?: unknown;
}

/** Appends one audit event and its notification events; pass the transaction that makes the change it describes. */
export async function appendAudit(db: Kysely<Database> | Transaction<Database>, entry: AuditEntry): Promise<void> {
  if (!db.isTransaction) {
    await db.transaction().execute((trx) => appendAudit(trx, entry));
    return;
  }
  const inserted = await db
    .insertInto('audit_events')
    .values({
      at: entry.at.toISOString(),
      actor: entry.actor,
      domain: entry.domain,
      action: entry.action,
      reason: entry.reason,
      details: entry.details === undefined ? null : JSON.stringify(entry.details),
    })
    // RETURNING rather than insertId: Postgres reports no insert id.
    .returning('id')
    .executeTakeFirstOrThrow();
  const stageChange =
    entry.action === 'verified' && entry.domain !== null
      ? await db.selectFrom('stage_history').select(['action', 'from_stage', 'to_stage']).where('domain', '=', entry.domain).orderBy('id', 'desc').executeTakeFirst()
      : undefined;
  const mapping = eventsFromAudit(entry, { stageChange });
  await storeEvents(db, mapping.events, {
    auditId: Number(inserted.id),
    settles: { domain: entry.domain, types: mapping.settles },
  });
}

/** The id of the newest audit event of the whole store (0: none): what a kept view checks nothing audited changed since. */
export async function newestAuditId(db: Kysely<Database> | Transaction<Database>): Promise<number> {
  const row = await db.selectFrom('audit_events').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
  return Number(row?.id ?? 0);
}

/** The newest audit events, newest first, optionally for one domain. */
export async function recentAudit(
  db: Kysely<Database> | Transaction<Database>,
  opts: { domain?: string; limit?: number; actor?: string } = {},
): Promise<AuditEvent[]> {
  let query = db.selectFrom('audit_events').selectAll().orderBy('id', 'desc').limit(opts.limit ?? 50);
  if (opts.domain !== undefined) query = query.where('domain', '=', opts.domain);
  if (opts.actor !== undefined) query = query.where('actor', '=', opts.actor);
  return query.execute();
}
