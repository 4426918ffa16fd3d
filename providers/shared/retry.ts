/**
 * Retrying throttled or failed calls: exponential backoff with full jitter
 * (a random wait between zero and the doubling ceiling, so many clients that
 * were throttled together do not come back together), and a server's
 * Retry-After honoured as a floor. A wait longer than the caller allows is
 * not slept through: the call fails at once, saying how long the provider
 * asked for.
 */
import { systemClock, type Clock } from './clock.js';
import { ProviderError, describe } from './errors.js';

/** What to do about one failure. */
export interface RetryDecision {
  retry: boolean;
  /** The provider's own Retry-After, in milliseconds, when it sent one. */
  retryAfterMs?: number | undefined;
  /** A short label for logs ("Throttling", "HTTP 503"). */
  reason?: string | undefined;
}

/** How to retry; only `provider`, `what` and `classify` are required. */
export interface RetryOptions {
  /** Adapter name, for the error. */
  provider: string;
  /** What the call does, for the error ("list record sets"). */
  what: string;
  /** Decides whether a failure is worth another try. */
  classify(error: unknown): RetryDecision;
  /** Total tries, the first included. Default 6. */
  maxAttempts?: number;
  /** First backoff ceiling. Default 250 ms. */
  baseDelayMs?: number;
  /** Largest backoff ceiling. Default 20 s. */
  maxDelayMs?: number;
  /** Longest Retry-After worth waiting for. Default 5 minutes. */
  maxRetryAfterMs?: number;
  clock?: Clock;
  /** Uniform in [0, 1). Default Math.random. */
  random?: () => number;
  /** Secrets to keep out of the final error message. */
  secrets?: readonly string[];
  /** Called before each wait. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

/** Full-jitter backoff: uniform in [0, min(maxDelay, base * 2^retry)). `retry` counts from 0. */
export function backoffDelayMs(retry: number, baseDelayMs: number, maxDelayMs: number, random: () => number): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * Reads an HTTP Retry-After value (delta seconds or an HTTP date) as
 * milliseconds from `nowMs`; undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/**
 * Runs `fn` until it succeeds, a failure is not retryable, or the attempts
 * run out. A non-retryable failure is rethrown as it is; running out throws
 * a ProviderError with code `throttled`.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 20_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 5 * 60_000;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn(attempt);
    } catch (error) {
      const decision = options.classify(error);
      if (!decision.retry) throw error;
      const reason = decision.reason ?? describe(error, options.secrets);
      if (attempt >= maxAttempts) {
        throw new ProviderError(
          options.provider,
          'throttled',
          `${options.what}: gave up after ${attempt} attempts (last: ${reason})`,
        );
      }
      if (decision.retryAfterMs !== undefined && decision.retryAfterMs > maxRetryAfterMs) {
        throw new ProviderError(
          options.provider,
          'throttled',
          `${options.what}: the provider asked to wait ${Math.ceil(decision.retryAfterMs / 1000)} s, longer than the ${Math.ceil(maxRetryAfterMs / 1000)} s allowed (${reason})`,
        );
      }
      const jittered = backoffDelayMs(attempt - 1, baseDelayMs, maxDelayMs, random);
      const delayMs = Math.max(decision.retryAfterMs ?? 0, jittered);
      options.onRetry?.({ attempt, delayMs, reason });
      await clock.sleep(delayMs);
    }
  }
}
