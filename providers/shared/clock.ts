/**
 * Time as the adapters see it. Backoff, pacing and change polling all wait;
 * passing the clock in lets a test live through minutes of waiting at once
 * and check how long the adapter asked to wait.
 */

/** A source of "now" and a way to wait. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};
