/**
 * Attempts per client in a sliding window, for sign-in: a token is 256
 * random bits, so guessing is hopeless, but an unthrottled form still lets one
 * client burn CPU and fill the log. The attempts are counted in the store
 * (src/store/counters.ts), so every API server on one database shares the
 * limit: behind a balancer over N replicas a client still gets `attempts`
 * tries, not N times as many. The store prunes old windows, so a flood of
 * addresses cannot grow it for long.
 */
import type { Kysely } from 'kysely';
import { clearLimit, takeFromLimit, type SharedLimit } from '../store/counters.js';
import type { Database } from '../store/schema.js';

export interface AttemptLimit {
  /** Attempts allowed per client in one window. */
  attempts: number;
  windowMs: number;
}

export class AttemptLimiter {
  readonly #limit: SharedLimit;
  constructor(
    private readonly db: Kysely<Database>,
    limit: AttemptLimit,
    name = 'sign-in',
  ) {
    this.#limit = { name, limit: limit.attempts, windowMs: limit.windowMs };
  }

  /**
   * Counts one attempt by `client` when it may try now, and returns 0; when
   * it has used its attempts, counts nothing and returns the seconds until it
   * may try again. Taken before the attempt, atomically, so attempts sent at
   * once to several servers cannot all slip past the limit.
   */
  async attempt(client: string, now: Date): Promise<number> {
    const taken = await takeFromLimit(this.db, this.#limit, client, 1, now);
    return taken.allowed ? 0 : Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
  }

  /** Forgets a client's attempts (after it signed in). */
  async clear(client: string): Promise<void> {
    await clearLimit(this.db, this.#limit, client);
  }
}
