/**
 * The audit log: one row per decision or action, who or what did it, when and
 * why, with the measurements behind it as JSON. Rows are only ever appended.
 */
import type { Kysely, Transaction } from 'kysely';
import type { AuditEvent, Database } from './schema.js';

export interface AuditEntry {
  at: Date;
  actor: string;
  domain: string | null;
  action: string;
  reason: string;
  details?: unknown;
}

/** Appends one audit event; pass the transaction that makes the change it describes. */
export async function appendAudit(db: Kysely<Database> | Transaction<Database>, entry: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      at: entry.at.toISOString(),
      actor: entry.actor,
      domain: entry.domain,
      action: entry.action,
      reason: entry.reason,
      details: entry.details === undefined ? null : JSON.stringify(entry.details),
    })
    .execute();
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
