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
 * one daemon a SQLite store allows. A report is checked as it streams
 * against what was used when it began (the parser calls check()), so a flood
 * stops early; its records are spent by the store (src/reports/store.ts) in
 * the transaction that stores it, as that transaction's last statement, and
 * atomically against every other report (one that would pass the budget,
 * even by racing another, is refused). So the charge follows the outcome: a
 * report whose transaction rolls back (a failure, or a conflict on Postgres
 * after which the whole report is stored again) has its charge rolled back
 * with it (giveBack() for the copy this process keeps), and a report is
 * charged once however many attempts it took.
 */
import type { Kysely } from 'kysely';
import { readLimit, takeFromLimit, type LimitReading, type SharedLimit } from '../store/counters.js';
import type { Database } from '../store/schema.js';
import type { ReportMetadata } from '../report-model/model.js';
import { ReportError } from './errors.js';
import { claimedReporterDomains } from './provenance.js';

/** Whose budget a report spends: the first domain it claims to come from, else its org_name. */
export function budgetSubject(metadata: Pick<ReportMetadata, 'org' | 'email'>): string {
  return claimedReporterDomains(metadata)[0] ?? (metadata.org.trim().toLowerCase() || '(no org_name)');
}

/** What a spend took; given back when the transaction it was taken in does not commit. */
export interface Spent {
  giveBack(): void;
}

const NOTHING_SPENT: Spent = { giveBack: () => undefined };

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
    this.#fits(reporter, records);
  }

  #fits(reporter: string, records: number): void {
    const used = this.used(reporter);
    if (used + records > this.recordsPerHour) throw this.#over(reporter, used);
  }

  /**
   * Counts `records` read for `reporter` now, atomically against every other
   * report (and, with a store, every other instance). With a store they are
   * taken through `via` (the transaction storing the report, so they are
   * counted only if it commits) or, without it, the budget's own store.
   * giveBack() on what it returns when that transaction rolls back.
   * @throws ReportError `budget` when they no longer fit: the report is refused and nothing is counted.
   */
  async spend(reporter: string, records: number, via?: Kysely<Database>): Promise<Spent> {
    if (records <= 0) return NOTHING_SPENT;
    if (this.store) {
      const taken = await takeFromLimit(via ?? this.store, this.#limit, reporter, records, new Date(this.now()), this.#readings.get(reporter)?.reading);
      this.#spent.set(reporter, [{ at: this.now(), records: taken.used }]);
      if (!taken.allowed) throw this.#over(reporter, taken.used);
      // Rolled back with the transaction: the next report of this reporter reads the store again.
      return {
        giveBack: () => {
          this.#spent.delete(reporter);
          this.#readings.delete(reporter);
        },
      };
    }
    this.#fits(reporter, records);
    const entry = { at: this.now(), records };
    const list = this.#spent.get(reporter) ?? [];
    list.push(entry);
    this.#spent.set(reporter, list);
    if (this.#spent.size > 10_000) for (const key of [...this.#spent.keys()]) this.used(key);
    return {
      giveBack: () => {
        const now = this.#spent.get(reporter);
        const at = now?.indexOf(entry) ?? -1;
        if (at >= 0) now!.splice(at, 1);
      },
    };
  }

  #over(reporter: string, used: number): ReportError {
    return new ReportError(
      'budget',
      `${reporter} sent more than ${this.recordsPerHour} report records in the last hour (${used} stored before this report); kept, not counted: send it again later, or raise budget.records_per_reporter_per_hour`,
      'report_metadata',
    );
  }
}
