/**
 * From outbox events to channel messages: after each tick (and ingest) the
 * daemon dispatches every event not yet dispatched as one digest per
 * channel, in one transaction with marking the events, so a crash leaves
 * either the events waiting or the messages queued, never both or neither.
 * Daemons sharing a store dispatch at once: each locks the events it takes
 * (SKIP LOCKED on Postgres), so an event goes into one digest, never two.
 * Test messages and summaries are queued here too; the sender delivers them.
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/open.js';
import { markDispatched } from '../store/notifications.js';
import { claimUndispatchedEvents } from '../store/outbox-claims.js';
import { AppError, errorMessage } from '../errors.js';
import { insertMessage, markAttemptFailed, markDelivered } from '../store/notifications.js';
import { deliver } from './channels.js';
import type { NotifySettings, ResolvedChannel } from './config.js';
import { channelWants, contentEventOf, digestContent, MAX_EVENTS_PER_MESSAGE, summaryContent, testContent } from './content.js';
import type { FleetSummary } from './summary.js';

export interface DispatchResult {
  events: number;
  messages: Array<{ channel: string; key: string; events: number }>;
}

/** Turns the waiting events into one digest per channel that wants any of them. */
export async function dispatchEvents(store: Store, settings: Pick<NotifySettings, 'channels' | 'baseUrl'>, now: Date): Promise<DispatchResult> {
  return store.db.transaction().execute(async (trx) => {
    const rows = await claimUndispatchedEvents(trx, store.dialect);
    if (rows.length === 0) return { events: 0, messages: [] };
    const events = rows.map(contentEventOf);
    const messages: DispatchResult['messages'] = [];
    for (const channel of settings.channels) {
      const wanted = events.filter((e) => channelWants(channel.filter, e));
      const parts = Math.ceil(wanted.length / MAX_EVENTS_PER_MESSAGE);
      for (let i = 0; i < parts; i++) {
        const slice = wanted.slice(i * MAX_EVENTS_PER_MESSAGE, (i + 1) * MAX_EVENTS_PER_MESSAGE);
        const key = randomUUID();
        const content = digestContent(slice, settings.baseUrl, parts > 1 ? { index: i + 1, of: parts } : undefined);
        await insertMessage(trx, { key, channel: channel.name, kind: 'digest', createdAt: now.toISOString(), content, eventCount: slice.length });
        messages.push({ channel: channel.name, key, events: slice.length });
      }
    }
    // Marked even when no channel wants them: a channel added later starts from
    // then on instead of receiving the backlog; the page still lists them.
    await markDispatched(
      trx,
      rows.map((r) => r.id),
      now.toISOString(),
    );
    return { events: rows.length, messages };
  });
}

export function findChannel(settings: Pick<NotifySettings, 'channels'>, name: string): ResolvedChannel {
  const channel = settings.channels.find((c) => c.name === name);
  if (!channel) {
    const known = settings.channels.map((c) => c.name);
    throw new AppError('not-found', `no notification channel named "${name}"${known.length > 0 ? `; the config has ${known.join(', ')}` : '; the config has none (notifications.channels)'}`);
  }
  return channel;
}

/**
 * Sends a test message to one channel now, then records it with its outcome
 * (so the page shows it). Sent directly rather than queued: a running
 * daemon's sender must not race this command for the same message.
 */
export async function sendTestMessage(
  store: Store,
  settings: Pick<NotifySettings, 'channels' | 'baseUrl' | 'timeoutMs'>,
  channelName: string,
  now: () => Date,
): Promise<{ key: string; delivered: boolean; error: string | null }> {
  const channel = findChannel(settings, channelName);
  const key = randomUUID();
  const createdAt = now();
  const content = testContent(channel.name, createdAt, settings.baseUrl);
  let error: string | null = null;
  try {
    await deliver(channel, content, { key, channel: channel.name, createdAt: createdAt.toISOString() }, { now: createdAt, timeoutMs: settings.timeoutMs });
  } catch (e) {
    error = errorMessage(e);
  }
  await store.db.transaction().execute(async (trx) => {
    await insertMessage(trx, { key, channel: channel.name, kind: 'test', createdAt: createdAt.toISOString(), content, eventCount: 0 });
    const row = await trx.selectFrom('notification_messages').select('id').where('key', '=', key).executeTakeFirstOrThrow();
    const at = now().toISOString();
    if (error === null) await markDelivered(trx, row.id, at);
    else await markAttemptFailed(trx, row.id, { at, error, nextAttemptAt: at, giveUp: true });
  });
  return { key, delivered: error === null, error };
}

/** Queues a test message for one channel (the daemon's sender delivers it). @returns its idempotency key. */
export async function queueTestMessage(store: Store, settings: Pick<NotifySettings, 'channels' | 'baseUrl'>, channelName: string, now: Date): Promise<string> {
  const channel = findChannel(settings, channelName);
  const key = randomUUID();
  await insertMessage(store.db, { key, channel: channel.name, kind: 'test', createdAt: now.toISOString(), content: testContent(channel.name, now, settings.baseUrl), eventCount: 0 });
  return key;
}

/** Queues the summary for each named channel (one message each, the same content). */
export async function queueSummary(store: Store, settings: Pick<NotifySettings, 'channels' | 'baseUrl'>, channels: readonly string[], summary: FleetSummary, now: Date): Promise<string[]> {
  const content = summaryContent(summary, settings.baseUrl);
  const targets = channels.map((name) => findChannel(settings, name));
  return store.db.transaction().execute(async (trx) => {
    const keys: string[] = [];
    for (const channel of targets) {
      const key = randomUUID();
      await insertMessage(trx, { key, channel: channel.name, kind: 'summary', createdAt: now.toISOString(), content, eventCount: 0 });
      keys.push(key);
    }
    return keys;
  });
}
