/**
 * A clock for provider tests: sleeping only moves time forward (and records
 * how long was asked for), so backoff and pacing are tested without waiting.
 */
import type { Clock } from '../../providers/shared/clock.js';

export interface FakeClock extends Clock {
  /** Every sleep asked for, in ms, in order. */
  sleeps: number[];
  /** Time moved forward since the clock was made. */
  elapsed(): number;
}

/** `realPauseMs` yields to the event loop on each sleep, for code that polls a real server meanwhile. */
export function fakeClock(opts: { start?: number; realPauseMs?: number } = {}): FakeClock {
  const start = opts.start ?? 1_700_000_000_000;
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    elapsed: () => now - start,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
      if (opts.realPauseMs) await new Promise((resolve) => setTimeout(resolve, opts.realPauseMs));
    },
  };
}
