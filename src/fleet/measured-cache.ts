/**
 * The domain page's measurements, kept while what they stand on holds. The
 * page and `GET /domains/{domain}` measure the domain afresh (the tick's
 * stored figures may predate a report or a rule); for a domain a big
 * receiver reports in full that is seconds of CPU, and a few people
 * refreshing it, or one signed-in viewer in a loop, would keep a core busy.
 *
 * An entry is used only while its key still matches (the domain row, its
 * rollup changes, newest report, rules and acknowledgements, the config's
 * rules, the plan, and the fleet's newest audit event: enrolling or
 * unenrolling a subdomain changes attribution and is always audited) and
 * only for a clock between when it was measured and when the figures stop
 * being stable (StageMetrics.stableUntil: a report entering or leaving the
 * look-back, a receiver falling due, the next midnight). So what it returns
 * is what measuring again would give. Requests for the same domain and key
 * while one is measuring wait for that one instead of measuring beside it.
 *
 * Bounded: at most `entries` values (a domain's figures and its daily
 * series are two) and `sources` sources held in all, least recently used
 * going first.
 */
import type { DomainAssessment } from '../engine/tick.js';

interface Kept<T> {
  key: string;
  /** The clock span (ms) the value holds for: [from, until). */
  from: number;
  until: number;
  value: T;
  weight: number;
}

export interface MeasuredLimits {
  entries: number;
  /** Sources (and daily points) held over all entries. */
  sources: number;
}

/**
 * A kept source costs about 0.5 KB of heap (a domain with 99,000 sources kept
 * 49.5 MiB): at most some 60 MB in all, which still keeps the one domain with
 * 100,000 entries whose measuring is what this is for.
 */
export const MEASURED_LIMITS: MeasuredLimits = { entries: 64, sources: 120_000 };

export class MeasuredDomains {
  private readonly kept = new Map<string, Kept<unknown>>();
  private readonly measuring = new Map<string, { from: number; done: Promise<void> }>();
  private weight = 0;
  /** Values measured, and answered from what was kept or from another request's measuring (for tests and the benchmark). */
  readonly counts = { measured: 0, kept: 0 };

  constructor(private readonly limits: MeasuredLimits = MEASURED_LIMITS) {}

  /** The domain's assessment for `key` at `now`: kept, being measured, or measured by `measure`. */
  assessment(domain: string, key: string, now: Date, measure: () => Promise<DomainAssessment>): Promise<DomainAssessment> {
    return this.get(`assessment\n${domain}`, key, now, measure, (a) => ({
      until: a.metrics.stableUntil === undefined ? now.getTime() : Date.parse(a.metrics.stableUntil),
      weight: 1 + (a.metrics.sources?.length ?? 0) + (a.metrics.reporters?.length ?? 0),
    }));
  }

  /** A series measured for the domain (the daily chart) under its own key, good until the `until` (ms) it comes with. */
  series<T>(domain: string, key: string, now: Date, measure: () => Promise<{ points: readonly T[]; until: number }>): Promise<{ points: readonly T[]; until: number }> {
    return this.get(`series\n${domain}`, key, now, measure, (v) => ({ until: v.until, weight: 1 + v.points.length }));
  }

  /** How many values are kept (for tests and the benchmark). */
  get size(): number {
    return this.kept.size;
  }

  private async get<T>(slot: string, key: string, now: Date, measure: () => Promise<T>, span: (value: T) => { until: number; weight: number }): Promise<T> {
    const at = now.getTime();
    const kept = this.kept.get(slot) as Kept<T> | undefined;
    if (kept && kept.key === key && at >= kept.from && at < kept.until) {
      // Most recently used last: Map keeps insertion order.
      this.kept.delete(slot);
      this.kept.set(slot, kept);
      this.counts.kept++;
      return kept.value;
    }
    const flight = `${slot}\n${key}`;
    const running = this.measuring.get(flight);
    if (running && running.from <= at) {
      // Another request is measuring the same thing: wait for it, then take what it kept if it holds at our clock.
      await running.done;
      const after = this.kept.get(slot) as Kept<T> | undefined;
      if (after && after.key === key && at >= after.from && at < after.until) {
        this.counts.kept++;
        return after.value;
      }
    }
    this.counts.measured++;
    const measured = measure();
    // Settles either way, so a waiter never sees the measurer's error as an unhandled rejection of its own.
    const done = measured.then(
      () => undefined,
      () => undefined,
    );
    this.measuring.set(flight, { from: at, done });
    try {
      const value = await measured;
      const { until, weight } = span(value);
      this.drop(slot);
      if (until > at && weight <= this.limits.sources) {
        this.kept.set(slot, { key, from: at, until, value, weight });
        this.weight += weight;
        this.trim();
      }
      return value;
    } finally {
      if (this.measuring.get(flight)?.done === done) this.measuring.delete(flight);
    }
  }

  private drop(slot: string): void {
    const old = this.kept.get(slot);
    if (!old) return;
    this.kept.delete(slot);
    this.weight -= old.weight;
  }

  private trim(): void {
    for (const slot of this.kept.keys()) {
      if (this.kept.size <= this.limits.entries && this.weight <= this.limits.sources) return;
      this.drop(slot);
    }
  }
}
