/**
 * Attempts per client in a sliding window, for sign-in: a token is 256
 * random bits, so guessing is hopeless, but an unthrottled form still lets one
 * client burn CPU and fill the log. Memory is bounded: past `maxClients` the
 * oldest client is forgotten, so a flood of addresses cannot grow the map.
 */
export interface AttemptLimit {
  /** Attempts allowed per client in one window. */
  attempts: number;
  windowMs: number;
  /** How many clients are remembered at most. */
  maxClients?: number;
}

export class AttemptLimiter {
  readonly #clients = new Map<string, number[]>();
  constructor(private readonly limit: AttemptLimit) {}

  /** Seconds until `client` may try again, or 0 when it may try now. */
  retryAfterSeconds(client: string, now: number): number {
    const times = this.#recent(client, now);
    if (times.length < this.limit.attempts) return 0;
    return Math.max(1, Math.ceil((times[0]! + this.limit.windowMs - now) / 1000));
  }

  /** Counts one attempt (a failed sign-in) by `client`. */
  record(client: string, now: number): void {
    const times = this.#recent(client, now);
    times.push(now);
    this.#clients.delete(client);
    this.#clients.set(client, times);
    const max = this.limit.maxClients ?? 10_000;
    while (this.#clients.size > max) this.#clients.delete(this.#clients.keys().next().value!);
  }

  /** Forgets a client's attempts (after it signed in). */
  clear(client: string): void {
    this.#clients.delete(client);
  }

  #recent(client: string, now: number): number[] {
    const times = (this.#clients.get(client) ?? []).filter((t) => t > now - this.limit.windowMs);
    if (times.length === 0) this.#clients.delete(client);
    else this.#clients.set(client, times);
    return times;
  }
}
