/**
 * The conditions no audit event records: the tick failing or not finishing
 * for several intervals, a change stuck in flight, ingest rejecting more than
 * usual, and reminders of approvals still waiting. The daemon runs this after each tick and ingest,
 * with the clock passed in; each condition is announced once when it starts
 * (and once more when it is over), keyed so an unchanged one is not repeated.
 */
import type { Store } from '../store/open.js';
import { conditionsOfType, deleteCondition, domainTags, getCondition, insertEvent, markReminded, storeEvents } from '../store/notifications.js';
import type { NotifySettings } from './config.js';
import { EVENT_TYPES, type EventType, type NotifyEvent } from '../store/notify-events.js';

/** What the daemon knows about its own schedules. */
export interface DaemonHealth {
  startedAt: Date;
  /** When a tick last finished without failing; null since the start. */
  lastTickOkAt: Date | null;
  /** The last tick's failure, null when it succeeded (or none ran yet). */
  lastTickError: string | null;
  /** The gap between two scheduled ticks. */
  tickIntervalMs: number;
}

const DAY_MS = 86_400_000;

export async function evaluateConditions(
  store: Store,
  settings: Pick<NotifySettings, 'tickStaleIntervals' | 'ingestRejected' | 'approvalReminderMs' | 'changeStuckMs'>,
  now: Date,
  health: DaemonHealth,
): Promise<NotifyEvent[]> {
  const announced: NotifyEvent[] = [];
  const at = now.toISOString();
  const fleetEvent = (type: EventType, title: string, detail: string, data?: Record<string, unknown>): NotifyEvent => ({
    type,
    severity: EVENT_TYPES[type].severity,
    domain: null,
    at,
    title,
    detail,
    ...(data ? { data } : {}),
    condition: { key: type, fingerprint: '' },
  });

  const set = async (on: boolean, event: NotifyEvent, over: string) => {
    const key = event.condition!.key;
    await store.db.transaction().execute(async (trx) => {
      const known = await getCondition(trx, key);
      if (on && !known) {
        await storeEvents(trx, [event]);
        announced.push(event);
      } else if (!on && known) {
        await deleteCondition(trx, key);
        const resolved: NotifyEvent = { type: 'resolved', severity: 'info', domain: null, at, title: `resolved: ${over}`, detail: `${over} (since ${known.since})`, data: { condition: key } };
        await storeEvents(trx, [resolved]);
        announced.push(resolved);
      }
    });
  };

  await set(
    health.lastTickError !== null,
    fleetEvent('tick-failing', 'the tick is failing', `the last tick failed: ${health.lastTickError}; domains are not being judged or moved`),
    'the tick runs again',
  );

  const since = health.lastTickOkAt ?? health.startedAt;
  const staleMs = health.tickIntervalMs * settings.tickStaleIntervals;
  const stale = now.getTime() - since.getTime() > staleMs;
  await set(
    stale,
    fleetEvent(
      'tick-stale',
      'no tick has finished for too long',
      `no tick has finished since ${since.toISOString()} (${settings.tickStaleIntervals} intervals of ${Math.round(health.tickIntervalMs / 60_000)} min have passed)`,
      { since: since.toISOString() },
    ),
    'ticks finish again',
  );

  const recent = await rejectedBetween(store, new Date(now.getTime() - DAY_MS), new Date(now.getTime() + 1));
  const before = await rejectedBetween(store, new Date(now.getTime() - 8 * DAY_MS), new Date(now.getTime() - DAY_MS));
  const usual = before / 7;
  const { min, factor } = settings.ingestRejected;
  const rejecting = recent >= min && recent >= factor * usual;
  await set(
    rejecting,
    fleetEvent(
      'ingest-rejecting',
      `ingest rejected ${recent} inputs in 24 hours`,
      `ingest rejected ${recent} input(s) in the last 24 hours against ${usual.toFixed(1)} a day over the week before; each is kept with its reason (dmarc-rollout ingest --json, the rejected/ folder)`,
      { last_24h: recent, usual_per_day: usual },
    ),
    'ingest rejects no more than usual',
  );

  // Changes stuck in flight: a paused or halted domain's queued change waits on purpose and is not stuck.
  const stuck = await store.db
    .selectFrom('intents')
    .innerJoin('domains', 'domains.domain', 'intents.domain')
    .select(['intents.id', 'intents.domain', 'intents.created_at', 'intents.action', 'intents.status', 'intents.attempts', 'intents.last_error', 'domains.state'])
    .where('intents.created_at', '<=', new Date(now.getTime() - settings.changeStuckMs).toISOString())
    .execute();
  const stuckKeys = new Set<string>();
  for (const intent of stuck) {
    if (intent.state !== 'active' && intent.status !== 'written') continue;
    const key = `change-stuck:${intent.domain}:intent:${intent.id}`;
    stuckKeys.add(key);
    const hours = Math.floor((now.getTime() - Date.parse(intent.created_at)) / 3_600_000);
    const event: NotifyEvent = {
      type: 'change-stuck',
      severity: EVENT_TYPES['change-stuck'].severity,
      domain: intent.domain,
      at,
      title: `${intent.domain}: ${intent.action} change in flight for ${hours} h`,
      detail: `the ${intent.action} change queued at ${intent.created_at} is still ${intent.status} after ${intent.attempts} attempt(s)${intent.last_error ? `; last error: ${intent.last_error}` : ''}; the stage does not move until it is verified`,
      data: { intent: intent.id, action: intent.action, status: intent.status, attempts: intent.attempts, last_error: intent.last_error },
      condition: { key, fingerprint: '' },
    };
    await store.db.transaction().execute(async (trx) => {
      if (await getCondition(trx, key)) return;
      await storeEvents(trx, [event]);
      announced.push(event);
    });
  }
  // A change that was verified, stopped or replaced is no longer stuck; announced again if it gets stuck again.
  for (const condition of await conditionsOfType(store.db, 'change-stuck')) {
    if (condition.key.includes(':intent:') && !stuckKeys.has(condition.key)) await deleteCondition(store.db, condition.key);
  }

  // Approval reminders: the condition is settled by the next decision, so one still here still waits.
  for (const condition of await conditionsOfType(store.db, 'approval-waiting')) {
    if (Date.parse(condition.announced_at) + settings.approvalReminderMs > now.getTime()) continue;
    const stored = condition.data ? (JSON.parse(condition.data) as { title?: string; detail?: string }) : {};
    const hours = Math.round((now.getTime() - Date.parse(condition.since)) / 3_600_000);
    const event: NotifyEvent = {
      type: 'approval-waiting',
      severity: EVENT_TYPES['approval-waiting'].severity,
      domain: condition.domain,
      at,
      title: `reminder: ${stored.title ?? condition.key} (waiting ${hours} h)`,
      detail: stored.detail ?? condition.key,
      data: { reminder: condition.reminders + 1, waiting_since: condition.since },
    };
    await store.db.transaction().execute(async (trx) => {
      await insertEvent(trx, event, await domainTags(trx, condition.domain));
      await markReminded(trx, condition.key, at);
    });
    announced.push(event);
  }
  return announced;
}

async function rejectedBetween(store: Store, from: Date, to: Date): Promise<number> {
  const row = await store.db
    .selectFrom('rejected_inputs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('at', '>=', from.toISOString())
    .where('at', '<', to.toISOString())
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}
