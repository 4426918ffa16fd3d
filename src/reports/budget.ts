/**
 * Work per reporter and hour: how many report records one reporter may have
 * stored in the last hour. A reporter that authenticates is still an outside
 * party; a flood from one (a broken reporter, or a domain an attacker owns)
 * is refused past its budget and kept with the reason, while everyone else's
 * reports go on.
 *
 * Given a store, the budget is counted there (src/store/counters.ts), so
 * every daemon on one Postgres shares it: N replicas do not make it N times
 * looser. Without one it is counted in this process, which is exact for the
 * one daemon a SQLite store allows, and needed there: the report's
 * transaction holds SQLite's only connection while the budget is spent, so a
 * store-backed spend would wait on itself. Either way a report's records are
 * taken atomically when it has been read (a report that would pass the
 * budget, even by racing another, is refused), and checked as it streams
 * against what was used when it began, so a flood stops early.
 */
import type { Kysely } from 'kysely';
import { readLimit, takeFromLimit, type LimitReading, type SharedLimit } from '../store/counters.js';
import type { Database } from '../store/schema.js';
import { ReportError } from './errors.js';

const HOUR_MS = 3_600_000;
/** A reporter's use is read from the store again at most this often; in between, this process's own spending keeps it current. */
const REREAD_MS = 1000;

export class ReporterBudget {
  /** This process's spending (no store), or the store's count as last read (with one). */
  readonly #spent = new Map<string, Array<{ at: number; records: number }>>();
  readonly #limit: SharedLimit;
  /** The store's last reading per reporter: its closed slices spare the spend a read. */
  readonly #readings = new Map<string, { reading: LimitReading; at: number }>();
  constructor(
    readonly recordsPerHour: number,
    private readonly now: () => number = Date.now,
    /** The store every instance shares; without it the budget is this process's. */
    private readonly store?: Kysely<Database>,
  ) {
    this.#limit = { name: 'reporter-records', limit: recordsPerHour, windowMs: HOUR_MS };
  }

  /** Records `reporter` stored in the last hour (with a store: as read by the last `refresh`). */
  used(reporter: string): number {
    const cutoff = this.now() - HOUR_MS;
    const entries = (this.#spent.get(reporter) ?? []).filter((e) => this.store !== undefined || e.at > cutoff);
    if (entries.length === 0) this.#spent.delete(reporter);
    else this.#spent.set(reporter, entries);
    return entries.reduce((n, e) => n + e.records, 0);
  }

  /**
   * Reads what `reporter` used from the store (a report of theirs begins),
   * unless it was read less than a second ago: a burst of reports from one
   * reporter costs one read, and the spend, which is atomic, is the guard
   * anyway. Nothing to read without a store.
   */
  async refresh(reporter: string): Promise<void> {
    if (!this.store) return;
    const last = this.#readings.get(reporter);
    if (last && this.now() - last.at < REREAD_MS && this.#spent.has(reporter)) return;
    const reading = await readLimit(this.store, this.#limit, reporter, new Date(this.now()));
    if (this.#readings.size > 10_000) {
      this.#readings.clear();
      this.#spent.clear();
    }
    this.#readings.set(reporter, { reading, at: this.now() });
    this.#spent.set(reporter, [{ at: this.now(), records: reading.used }]);
  }

  /** @throws ReportError `budget` when `reporter` would pass its hourly budget with `records` more. */
  check(reporter: string, records: number): void {
    const used = this.used(reporter);
    if (used + records > this.recordsPerHour) throw this.#over(reporter, used);
  }

  /**
   * Counts `records` read for `reporter` now, atomically against every other
   * report (and, with a store, every other instance).
   * @throws ReportError `budget` when they no longer fit: the report is refused and nothing is counted.
   */
  async spend(reporter: string, records: number): Promise<void> {
    if (records <= 0) return;
    if (this.store) {
      const taken = await takeFromLimit(this.store, this.#limit, reporter, records, new Date(this.now()), this.#readings.get(reporter)?.reading);
      this.#spent.set(reporter, [{ at: this.now(), records: taken.used }]);
      if (!taken.allowed) throw this.#over(reporter, taken.used);
      return;
    }
    this.check(reporter, records);
    const list = this.#spent.get(reporter) ?? [];
    list.push({ at: this.now(), records });
    this.#spent.set(reporter, list);
    if (this.#spent.size > 10_000) for (const key of [...this.#spent.keys()]) this.used(key);
  }

  #over(reporter: string, used: number): ReportError {
    return new ReportError(
      'budget',
      `${reporter} sent more than ${this.recordsPerHour} report records in the last hour (${used} stored before this report); kept, not counted: send it again later, or raise budget.records_per_reporter_per_hour`,
      'report_metadata',
    );
  }
}
