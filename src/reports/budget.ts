/**
 * Work per reporter and hour: how many report records one reporter may have
 * stored in the last hour. A reporter that authenticates is still an outside
 * party; a flood from one (a broken reporter, or a domain an attacker owns)
 * is refused past its budget and kept with the reason, while everyone else's
 * reports go on. Memory is bounded by the reporters seen in the last hour.
 */
import { ReportError } from './errors.js';

const HOUR_MS = 3_600_000;

export class ReporterBudget {
  readonly #spent = new Map<string, Array<{ at: number; records: number }>>();
  constructor(
    readonly recordsPerHour: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records `reporter` stored in the last hour. */
  used(reporter: string): number {
    const cutoff = this.now() - HOUR_MS;
    const entries = (this.#spent.get(reporter) ?? []).filter((e) => e.at > cutoff);
    if (entries.length === 0) this.#spent.delete(reporter);
    else this.#spent.set(reporter, entries);
    return entries.reduce((n, e) => n + e.records, 0);
  }

  /** @throws ReportError `budget` when `reporter` would pass its hourly budget with `records` more. */
  check(reporter: string, records: number): void {
    const used = this.used(reporter);
    if (used + records > this.recordsPerHour) {
      throw new ReportError(
        'budget',
        `${reporter} sent more than ${this.recordsPerHour} report records in the last hour (${used} stored before this report); kept, not counted: send it again later, or raise budget.records_per_reporter_per_hour`,
        'report_metadata',
      );
    }
  }

  /** Counts `records` stored for `reporter` now. */
  spend(reporter: string, records: number): void {
    if (records <= 0) return;
    const list = this.#spent.get(reporter) ?? [];
    list.push({ at: this.now(), records });
    this.#spent.set(reporter, list);
    if (this.#spent.size > 10_000) for (const key of [...this.#spent.keys()]) this.used(key);
  }
}
