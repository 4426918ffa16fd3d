/**
 * Queries on the notification outbox: events (written in the transaction of
 * what caused them), announced conditions (so an unchanged one is not
 * announced again), per-channel messages and their delivery state, and the
 * domain tags channels filter on. Functions take the kysely handle or a
 * transaction, so callers decide the transaction bounds.
 */
import type { Kysely, Transaction } from 'kysely';
import type { EventType, NotifyEvent } from './notify-events.js';
import type { Database, NotificationConditionRow, NotificationEventRow, NotificationMessageRow } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** A domain's tags (none for an unknown domain or a fleet-wide event). */
export async function domainTags(db: Db, domain: string | null): Promise<string[]> {
  if (domain === null) return [];
  const row = await db.selectFrom('domains').select('tags').where('domain', '=', domain).executeTakeFirst();
  return row ? parseTags(row.tags) : [];
}

export function parseTags(text: string | null | undefined): string[] {
  if (!text) return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

export async function setDomainTags(db: Db, domain: string, tags: readonly string[], at: Date): Promise<void> {
  await db.updateTable('domains').set({ tags: JSON.stringify(tags), updated_at: at.toISOString() }).where('domain', '=', domain).execute();
}

/**
 * Stores events in the outbox. An event announcing a condition already
 * announced with the same fingerprint is dropped (Argo's oncePer); `settles`
 * ends this domain's conditions of those types that the events do not
 * re-state, so they are announced again when they come back.
 */
export async function storeEvents(
  db: Db,
  events: readonly NotifyEvent[],
  opts: { auditId?: number | null; settles?: { domain: string | null; types: readonly EventType[] } } = {},
): Promise<number> {
  let stored = 0;
  const tagsByDomain = new Map<string | null, string[]>();
  const stated = new Set<string>();
  for (const event of events) {
    if (event.condition) {
      stated.add(event.condition.key);
      const known = await db.selectFrom('notification_conditions').selectAll().where('key', '=', event.condition.key).executeTakeFirst();
      if (known && known.fingerprint === event.condition.fingerprint) continue;
      const data = JSON.stringify({ title: event.title, detail: event.detail, severity: event.severity, data: event.data ?? null });
      if (known) {
        await db
          .updateTable('notification_conditions')
          .set({ fingerprint: event.condition.fingerprint, announced_at: event.at, reminders: 0, data })
          .where('key', '=', event.condition.key)
          .execute();
      } else {
        await db
          .insertInto('notification_conditions')
          .values({ key: event.condition.key, type: event.type, domain: event.domain, fingerprint: event.condition.fingerprint, since: event.at, announced_at: event.at, reminders: 0, data })
          .execute();
      }
    }
    if (!tagsByDomain.has(event.domain)) tagsByDomain.set(event.domain, await domainTags(db, event.domain));
    await insertEvent(db, event, tagsByDomain.get(event.domain)!, opts.auditId ?? null);
    stored += 1;
  }
  if (opts.settles && opts.settles.types.length > 0) {
    let query = db.deleteFrom('notification_conditions').where('type', 'in', [...opts.settles.types]);
    query = opts.settles.domain === null ? query.where('domain', 'is', null) : query.where('domain', '=', opts.settles.domain);
    if (stated.size > 0) query = query.where('key', 'not in', [...stated]);
    await query.execute();
  }
  return stored;
}

export async function insertEvent(db: Db, event: NotifyEvent, tags: readonly string[], auditId: number | null = null): Promise<void> {
  await db
    .insertInto('notification_events')
    .values({
      at: event.at,
      type: event.type,
      severity: event.severity,
      domain: event.domain,
      tags: JSON.stringify(tags),
      title: event.title,
      detail: event.detail,
      data: event.data === undefined ? null : JSON.stringify(event.data),
      condition_key: event.condition?.key ?? null,
      audit_id: auditId,
      dispatched_at: null,
    })
    .execute();
}

export async function getCondition(db: Db, key: string): Promise<NotificationConditionRow | undefined> {
  return db.selectFrom('notification_conditions').selectAll().where('key', '=', key).executeTakeFirst();
}

export async function conditionsOfType(db: Db, type: string): Promise<NotificationConditionRow[]> {
  return db.selectFrom('notification_conditions').selectAll().where('type', '=', type).orderBy('key').execute();
}

export async function deleteCondition(db: Db, key: string): Promise<void> {
  await db.deleteFrom('notification_conditions').where('key', '=', key).execute();
}

export async function markReminded(db: Db, key: string, at: string): Promise<void> {
  await db
    .updateTable('notification_conditions')
    .set((eb) => ({ announced_at: at, reminders: eb('reminders', '+', 1) }))
    .where('key', '=', key)
    .execute();
}

/** Events not yet put into messages, oldest first. */
export async function undispatchedEvents(db: Db, limit = 5000): Promise<NotificationEventRow[]> {
  return db.selectFrom('notification_events').selectAll().where('dispatched_at', 'is', null).orderBy('id').limit(limit).execute();
}

export async function markDispatched(db: Db, ids: readonly number[], at: string): Promise<void> {
  for (let i = 0; i < ids.length; i += 500) {
    await db.updateTable('notification_events').set({ dispatched_at: at }).where('id', 'in', ids.slice(i, i + 500)).execute();
  }
}

export async function recentEvents(db: Db, opts: { since?: string; domain?: string; limit?: number } = {}): Promise<NotificationEventRow[]> {
  let query = db.selectFrom('notification_events').selectAll().orderBy('id', 'desc').limit(opts.limit ?? 200);
  if (opts.since) query = query.where('at', '>=', opts.since);
  if (opts.domain) query = query.where('domain', '=', opts.domain);
  return query.execute();
}

export interface NewMessage {
  key: string;
  channel: string;
  kind: NotificationMessageRow['kind'];
  createdAt: string;
  content: unknown;
  eventCount: number;
}

export async function insertMessage(db: Db, m: NewMessage): Promise<void> {
  await db
    .insertInto('notification_messages')
    .values({
      key: m.key,
      channel: m.channel,
      kind: m.kind,
      created_at: m.createdAt,
      content: JSON.stringify(m.content),
      event_count: m.eventCount,
      status: 'pending',
      attempts: 0,
      next_attempt_at: m.createdAt,
      last_attempt_at: null,
      last_error: null,
      delivered_at: null,
    })
    .execute();
}

/** The oldest pending message of a channel; due or not (a channel delivers in order). */
export async function nextPending(db: Db, channel: string): Promise<NotificationMessageRow | undefined> {
  return db
    .selectFrom('notification_messages')
    .selectAll()
    .where('channel', '=', channel)
    .where('status', '=', 'pending')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
}

/** A delivered attempt: counted, the message done and any sender's claim on it ended. */
export async function markDelivered(db: Db, id: number, at: string): Promise<void> {
  await db
    .updateTable('notification_messages')
    .set((eb) => ({ status: 'delivered', delivered_at: at, last_attempt_at: at, last_error: null, attempts: eb('attempts', '+', 1), claimed_by: null, claimed_until: null }))
    .where('id', '=', id)
    .execute();
}

/**
 * A failed attempt: counted with its error, the message pending again from
 * `nextAttemptAt` or given up, and the claim on it ended. With `holder`, only
 * while that sender still holds its claim on the pending message.
 * @returns whether the message was written.
 */
export async function markAttemptFailed(db: Db, id: number, opts: { at: string; error: string; nextAttemptAt: string; giveUp: boolean; holder?: string }): Promise<boolean> {
  let update = db
    .updateTable('notification_messages')
    .set((eb) => ({
      status: opts.giveUp ? 'failed' : 'pending',
      attempts: eb('attempts', '+', 1),
      last_attempt_at: opts.at,
      last_error: opts.error,
      next_attempt_at: opts.nextAttemptAt,
      claimed_by: null,
      claimed_until: null,
    }))
    .where('id', '=', id);
  if (opts.holder !== undefined) update = update.where('claimed_by', '=', opts.holder).where('status', '=', 'pending');
  return Number((await update.executeTakeFirst()).numUpdatedRows) === 1;
}

/** Puts undeliverable messages back in the queue (a person fixed the receiver). */
export async function requeueFailed(db: Db, opts: { channel?: string; at: string }): Promise<number> {
  let query = db.updateTable('notification_messages').set({ status: 'pending', next_attempt_at: opts.at, attempts: 0 }).where('status', '=', 'failed');
  if (opts.channel) query = query.where('channel', '=', opts.channel);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function recentMessages(
  db: Db,
  opts: { status?: NotificationMessageRow['status']; channel?: string; limit?: number; before?: number } = {},
): Promise<NotificationMessageRow[]> {
  let query = db.selectFrom('notification_messages').selectAll().orderBy('id', 'desc').limit(opts.limit ?? 50);
  if (opts.status) query = query.where('status', '=', opts.status);
  if (opts.channel) query = query.where('channel', '=', opts.channel);
  if (opts.before !== undefined) query = query.where('id', '<', opts.before);
  return query.execute();
}

/**
 * Forgets what is done and old: events dispatched and messages delivered
 * before `before`. Undeliverable and pending messages are kept whatever
 * their age, until delivered or queued again.
 */
export async function pruneNotifications(db: Db, before: string): Promise<{ events: number; messages: number }> {
  const events = await db.deleteFrom('notification_events').where('dispatched_at', '<', before).executeTakeFirst();
  const messages = await db.deleteFrom('notification_messages').where('status', '=', 'delivered').where('delivered_at', '<', before).executeTakeFirst();
  return { events: Number(events.numDeletedRows), messages: Number(messages.numDeletedRows) };
}

/** Messages per channel and status, for the page and /metrics. */
export async function messageCounts(db: Db): Promise<Array<{ channel: string; status: string; n: number }>> {
  const rows = await db
    .selectFrom('notification_messages')
    .select(['channel', 'status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy(['channel', 'status'])
    .execute();
  return rows.map((r) => ({ channel: r.channel, status: r.status, n: Number(r.n) }));
}
