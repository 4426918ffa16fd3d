/**
 * Client-side pacing. Some providers punish going over their limit harder
 * than a retry can fix (Cloudflare blocks the token for five minutes), and
 * Route 53's limit is shared by the whole account: so each call first takes
 * a token, and a caller that finds the bucket empty waits its turn instead
 * of sending a request that would be refused.
 */
import { systemClock, type Clock } from './clock.js';

/** Size and refill rate of a bucket. */
export interface TokenBucketOptions {
  /** Most requests sent back to back. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  clock?: Clock;
}

/** A token bucket whose waiters are served in arrival order. */
export class TokenBucket {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: TokenBucketOptions) {
    if (!(options.capacity >= 1) || !(options.refillPerSecond > 0)) {
      throw new RangeError('token bucket needs capacity >= 1 and a positive refill rate');
    }
    this.#capacity = options.capacity;
    this.#refillPerMs = options.refillPerSecond / 1000;
    this.#clock = options.clock ?? systemClock;
    this.#tokens = options.capacity;
    this.#last = this.#clock.now();
  }

  /**
   * A bucket that never allows more than `limit` requests in any window of
   * `windowSeconds`: the burst plus what refills over one window stays
   * within the limit.
   */
  static forWindow(limit: number, windowSeconds: number, burst: number, clock?: Clock): TokenBucket {
    const capacity = Math.max(1, Math.min(burst, limit - 1));
    return new TokenBucket({ capacity, refillPerSecond: (limit - capacity) / windowSeconds, ...(clock ? { clock } : {}) });
  }

  /** Resolves once a token is taken. */
  take(): Promise<void> {
    const turn = this.#queue.then(() => this.#takeNow());
    this.#queue = turn.catch(() => undefined);
    return turn;
  }

  async #takeNow(): Promise<void> {
    for (;;) {
      const now = this.#clock.now();
      this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#last) * this.#refillPerMs);
      this.#last = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await this.#clock.sleep(Math.ceil((1 - this.#tokens) / this.#refillPerMs));
    }
  }
}
