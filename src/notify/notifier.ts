/**
 * The daemon's notifier: watches the tick and ingest jobs (their success,
 * failure and timing), and after each one evaluates the daemon's own
 * conditions, turns the outbox into one digest per channel and wakes the
 * sender; it also runs the summary schedule. The tick's decisions never wait
 * for a delivery: dispatching is a local transaction, delivering happens in
 * the sender, beside the schedules.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { ViewContext } from '../fleet/views.js';
import type { Store } from '../store/open.js';
import { evaluateConditions, type DaemonHealth } from './conditions.js';
import type { NotifySettings } from './config.js';
import { pruneNotifications } from '../store/notifications.js';
import { claimLease } from '../store/leases.js';
import { dispatchEvents, queueSummary } from './outbox.js';
import { NotificationSender } from './sender.js';
import { buildSummary } from './summary.js';

export interface NotifierOptions {
  store: Store;
  settings: NotifySettings;
  logger: Logger;
  now: () => Date;
  /** The tick's cron expression, to know its interval. */
  tickSchedule: string;
  viewContext: ViewContext;
  /** This daemon's instance id: it claims outbox messages, and the conditions lease, under it. */
  holder?: string;
  /** How long its claim on a message outlives an instance that died mid-delivery (the sender's default when absent). */
  claimMs?: number;
  /** How long the conditions lease outlives an instance that died (the daemon's heartbeat renews it meanwhile). */
  leaseMs?: number;
  onAttempt?: (channel: string, outcome: 'delivered' | 'retrying' | 'failed') => void;
}

export interface Notifier {
  readonly sender: NotificationSender;
  /** Wraps the tick job: records its outcome, then announces and dispatches. */
  watchTick(job: () => Promise<void>): () => Promise<void>;
  /** Wraps the ingest job: after it, evaluates conditions (a stalled tick too) and dispatches unless a tick is running. */
  watchIngest(job: () => Promise<void>): () => Promise<void>;
  /** Queues the summary for its channels now. */
  sendSummary(): Promise<string[]>;
  start(): void;
  stop(): Promise<void>;
}

/** The largest gap between the next runs of a cron expression (UTC). */
export function cronIntervalMs(expression: string): number {
  const task = cron.createTask(expression, () => undefined, { timezone: 'UTC' });
  try {
    const runs = task.getNextRuns(48).map((d) => d.getTime());
    let gap = 0;
    for (let i = 1; i < runs.length; i++) gap = Math.max(gap, runs[i]! - runs[i - 1]!);
    return gap || 3_600_000;
  } finally {
    void task.destroy();
  }
}

export function createNotifier(opts: NotifierOptions): Notifier {
  const { store, settings, logger, now } = opts;
  const holder = opts.holder ?? `notifier-${process.pid}`;
  const sender = new NotificationSender({ store, settings, logger, now, holder, ...(opts.claimMs ? { claimMs: opts.claimMs } : {}), ...(opts.onAttempt ? { onAttempt: opts.onAttempt } : {}) });
  const health: DaemonHealth = { startedAt: now(), lastTickOkAt: null, lastTickError: null, tickIntervalMs: cronIntervalMs(opts.tickSchedule) };
  let tickRunning = false;
  let prunedAt = 0;
  let summaryTask: ScheduledTask | null = null;

  const announce = async (dispatch: boolean) => {
    try {
      // Daemons sharing a store: one of them evaluates the conditions, for as long as it lives (the lease is
      // kept, renewed by its heartbeat). Two at once would both announce a new condition, and taking turns
      // would flap one replica's stalled tick between announced and resolved.
      if (await claimLease(store.db, 'notify:conditions', holder, new Date(), opts.leaseMs ?? 60_000)) {
        await evaluateConditions(store, settings, now(), health);
      }
      if (dispatch) {
        const result = await dispatchEvents(store, settings, now());
        if (result.events > 0) logger.info({ events: result.events, messages: result.messages.map((m) => `${m.channel}:${m.events}`) }, 'notifications queued');
        // Once a day: what was delivered long ago goes, so the outbox does not grow without end.
        if (now().getTime() - prunedAt >= 86_400_000) {
          prunedAt = now().getTime();
          const pruned = await pruneNotifications(store.db, new Date(prunedAt - settings.keepMs).toISOString());
          if (pruned.events + pruned.messages > 0) logger.info(pruned, 'old notifications forgotten');
        }
      }
    } catch (error) {
      // Notifying must never take the schedules down; the events stay in the outbox.
      logger.error({ err: error }, 'notifications could not be queued; they stay in the outbox');
    }
    if (dispatch) void sender.runOnce();
  };

  const sendSummary = async () => {
    if (!settings.summary) return [];
    const summary = await buildSummary(store, now(), settings.summary.sinceDays * 86_400_000, opts.viewContext);
    const keys = await queueSummary(store, settings, settings.summary.channels, summary, now());
    logger.info({ channels: settings.summary.channels }, 'summary queued');
    void sender.runOnce();
    return keys;
  };

  return {
    sender,
    watchTick: (job) => async () => {
      tickRunning = true;
      try {
        await job();
        health.lastTickOkAt = now();
        health.lastTickError = null;
      } catch (error) {
        health.lastTickError = errorMessage(error);
        throw error;
      } finally {
        tickRunning = false;
        await announce(true);
      }
    },
    watchIngest: (job) => async () => {
      try {
        await job();
      } finally {
        await announce(!tickRunning);
      }
    },
    sendSummary,
    start() {
      logger.info(
        { channels: settings.channels.map((c) => `${c.name} (${c.type})`), summary: settings.summary ? `${settings.summary.schedule} to ${settings.summary.channels.join(', ')}` : null },
        settings.channels.length > 0 ? 'notifications on' : 'no notification channels configured',
      );
      sender.start();
      if (settings.summary) {
        summaryTask = cron.schedule(
          settings.summary.schedule,
          () => {
            sendSummary().catch((error: unknown) => logger.error({ err: error }, 'summary failed'));
          },
          { name: 'summary', timezone: 'UTC' },
        );
      }
    },
    async stop() {
      await summaryTask?.destroy();
      await sender.stop();
    },
  };
}
