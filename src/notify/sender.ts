/**
 * The durable sender: delivers queued messages, each channel on its own and
 * in order, with capped exponential backoff, and records every attempt in
 * the store. It runs beside the schedules and never inside them: a slow or
 * failing receiver delays nothing but its own channel's messages. A message
 * is marked delivered only after the receiver accepted it, so a crash in
 * between sends it again after the restart, with the same idempotency key.
 * A message not delivered within the give-up time is kept as failed, with
 * its last error, for the page and /metrics. Daemons sharing a store each run
 * a sender: a message is claimed before it is sent (src/store/outbox-claims.ts),
 * so one instance sends it, and a claim left by an instance that died is
 * taken over once its lease time has passed.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { Store } from '../store/open.js';
import { claimNextMessage, settleDelivered, settleFailed } from '../store/outbox-claims.js';
import type { NotificationMessageRow } from '../store/schema.js';
import { deliver, DeliveryError } from './channels.js';
import type { NotifySettings, ResolvedChannel } from './config.js';
import type { MessageContent } from './content.js';

/** First retry after 30 s, doubling, capped. */
const FIRST_BACKOFF_MS = 30_000;

/** How long to wait after the `attempts`-th failed attempt. */
export function backoffMs(attempts: number, maxBackoffMs: number, retryAfterMs: number | null = null): number {
  const exponential = FIRST_BACKOFF_MS * 2 ** Math.min(Math.max(attempts - 1, 0), 20);
  return Math.min(maxBackoffMs, Math.max(exponential, retryAfterMs ?? 0));
}

export interface SenderOptions {
  store: Store;
  settings: NotifySettings;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  now?: () => Date;
  /** Who claims messages: the daemon's instance id (a name of its own when absent). */
  holder?: string;
  /** How long a claim outlives a sender that died mid-delivery; by default four delivery timeouts, two minutes at least. */
  claimMs?: number;
  /** Called after every attempt (for metrics). */
  onAttempt?: (channel: string, outcome: 'delivered' | 'retrying' | 'failed') => void;
}

export interface AttemptOutcome {
  channel: string;
  key: string;
  outcome: 'delivered' | 'retrying' | 'failed';
  error?: string;
}

export class NotificationSender {
  readonly #opts: SenderOptions;
  readonly #now: () => Date;
  readonly #holder: string;
  readonly #claimMs: number;
  readonly #busy = new Map<string, Promise<AttemptOutcome[]>>();
  #timer: NodeJS.Timeout | null = null;
  /** Stopping: no new poll is scheduled. */
  #closing = false;
  /** Stopped: nothing more is attempted. */
  #stopped = false;

  constructor(opts: SenderOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => new Date());
    this.#holder = opts.holder ?? `sender-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    this.#claimMs = opts.claimMs ?? Math.max(120_000, 4 * opts.settings.timeoutMs);
  }

  /** Starts polling for due messages every poll interval. */
  start(): void {
    if (this.#timer || this.#closing) return;
    const loop = () => {
      this.#timer = setTimeout(() => {
        void this.runOnce().finally(() => {
          if (!this.#closing) loop();
        });
      }, this.#opts.settings.pollMs);
      this.#timer.unref?.();
    };
    void this.runOnce();
    loop();
  }

  /**
   * One pass over every channel: each delivers its due messages in order
   * until one fails or none is due. Channels run concurrently; a channel
   * still busy from the last pass is left to finish.
   */
  async runOnce(): Promise<AttemptOutcome[]> {
    const passes = this.#opts.settings.channels.map((channel) => {
      const running = this.#busy.get(channel.name);
      if (running) return running;
      const pass = this.#drain(channel).finally(() => this.#busy.delete(channel.name));
      this.#busy.set(channel.name, pass);
      return pass;
    });
    return (await Promise.all(passes)).flat();
  }

  /**
   * Stops polling, waits for attempts in flight, then gives every due
   * message one last attempt (each bounded by the timeout), so `daemon
   * --once` run from cron delivers what its tick announced. Whatever is
   * still pending waits in the store for the next start.
   */
  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#closing = true;
    await Promise.all(this.#busy.values());
    await this.runOnce();
    this.#stopped = true;
  }

  async #drain(channel: ResolvedChannel): Promise<AttemptOutcome[]> {
    const outcomes: AttemptOutcome[] = [];
    const { store, logger } = this.#opts;
    while (!this.#stopped) {
      const answer = await claimNextMessage(store.db, store.dialect, channel.name, this.#holder, this.#now(), this.#claimMs);
      // Nothing due, or another instance is sending this channel's oldest message: the channel is theirs for now.
      if (!('claimed' in answer)) break;
      const message = answer.claimed;
      if (answer.takenOverFrom !== null) {
        logger.warn({ channel: channel.name, message: message.key, from: answer.takenOverFrom }, 'notification claim taken over from an instance that stopped; sending it again with the same idempotency key');
      }
      const outcome = await this.#attempt(channel, message);
      outcomes.push(outcome);
      this.#opts.onAttempt?.(channel.name, outcome.outcome);
      // After a failure the channel waits for its backoff; a given-up message lets the next one go.
      if (outcome.outcome === 'retrying') break;
    }
    return outcomes;
  }

  async #attempt(channel: ResolvedChannel, message: NotificationMessageRow): Promise<AttemptOutcome> {
    const { store, settings, logger } = this.#opts;
    const started = this.#now();
    try {
      const content = JSON.parse(message.content) as MessageContent;
      await deliver(channel, content, { key: message.key, channel: channel.name, createdAt: message.created_at }, { now: started, timeoutMs: settings.timeoutMs });
    } catch (error) {
      const reason = errorMessage(error);
      const now = this.#now();
      const attempts = message.attempts + 1;
      const giveUp = now.getTime() - Date.parse(message.created_at) >= settings.giveUpAfterMs;
      const wait = backoffMs(attempts, settings.maxBackoffMs, error instanceof DeliveryError ? error.retryAfterMs : null);
      const held = await settleFailed(store.db, message.id, this.#holder, { at: now.toISOString(), error: reason, nextAttemptAt: new Date(now.getTime() + wait).toISOString(), giveUp });
      // Our claim ran out during the attempt and another instance has the message now: its schedule stands.
      if (!held) return { channel: channel.name, key: message.key, outcome: 'retrying', error: `${reason} (claim taken over meanwhile)` };
      if (giveUp) logger.error({ channel: channel.name, message: message.key, attempts, error: reason }, 'notification undeliverable; kept as failed');
      else logger.warn({ channel: channel.name, message: message.key, attempts, error: reason, retry_in_s: Math.round(wait / 1000) }, 'notification delivery failed; will retry');
      return { channel: channel.name, key: message.key, outcome: giveUp ? 'failed' : 'retrying', error: reason };
    }
    if (!(await settleDelivered(store.db, message.id, this.#holder, this.#now().toISOString()))) {
      logger.warn({ channel: channel.name, message: message.key }, 'notification delivered after its claim ran out; another instance may send it again (same idempotency key)');
    }
    logger.info({ channel: channel.name, message: message.key, kind: message.kind, events: message.event_count }, 'notification delivered');
    return { channel: channel.name, key: message.key, outcome: 'delivered' };
  }
}
