/**
 * Is the daemon doing its work? Each schedule (ingest, tick) records when its
 * runs start and finish; a run going on for too long, or no run finishing
 * for two intervals and the allowance, is a stall. /healthz answers 503 then,
 * so a probe (or systemd's watchdog, see watchdog.ts) restarts a daemon whose
 * process lives but whose schedules do not. A failing report source is shown
 * but is no stall: a restart does not fix a wrong password.
 */
import type { HealthReport } from '../api/context.js';
import { errorMessage } from '../errors.js';

export interface JobState {
  /** When the run in progress started; null when none runs. */
  runningSince: number | null;
  lastFinished: number | null;
  lastError: string | null;
}

export interface SourceState {
  failures: number;
  lastError: string | null;
  /** Not polled again before this time (ms). */
  retryAt: number;
}

/** What /healthz reports from (declared by the API that serves it: src/api/context.ts). */
export type { HealthReport };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export class DaemonHealth {
  readonly jobs = new Map<string, JobState>();
  readonly sources = new Map<string, SourceState>();
  readonly #intervals = new Map<string, () => number | null>();

  constructor(
    private readonly startedAt: number,
    /** How long a run may take, and how late a run may be, before it is a stall. */
    private readonly stallMs: number,
  ) {}

  /** Registers a schedule; `intervalMs` gives its period (from the cron expression), null when unknown. */
  schedule(name: string, intervalMs: () => number | null): void {
    this.jobs.set(name, { runningSince: null, lastFinished: null, lastError: null });
    this.#intervals.set(name, intervalMs);
  }

  started(name: string, at: number): void {
    const job = this.jobs.get(name);
    if (job) job.runningSince = at;
  }

  finished(name: string, at: number, error: unknown): void {
    const job = this.jobs.get(name);
    if (!job) return;
    job.runningSince = null;
    job.lastFinished = at;
    job.lastError = error === undefined ? null : errorMessage(error);
  }

  sourceFailed(name: string, error: unknown, at: number): SourceState {
    const state = this.sources.get(name) ?? { failures: 0, lastError: null, retryAt: 0 };
    state.failures++;
    state.lastError = errorMessage(error);
    // One minute, doubling, at most an hour: a broken source is not hammered, and comes back by itself once fixed.
    state.retryAt = at + Math.min(60_000 * 2 ** (state.failures - 1), 3_600_000);
    this.sources.set(name, state);
    return state;
  }

  sourceSucceeded(name: string): void {
    this.sources.delete(name);
  }

  /** True when the source may be polled now. */
  sourceDue(name: string, at: number): boolean {
    return (this.sources.get(name)?.retryAt ?? 0) <= at;
  }

  report(at: number): HealthReport {
    const problems: string[] = [];
    const jobs: HealthReport['jobs'] = {};
    for (const [name, job] of this.jobs) {
      const interval = this.#intervals.get(name)?.() ?? null;
      if (job.runningSince !== null && at - job.runningSince > this.stallMs) {
        problems.push(`${name} has been running for ${Math.round((at - job.runningSince) / 1000)} s (stalled)`);
      } else if (job.runningSince === null && interval !== null) {
        const since = job.lastFinished ?? this.startedAt;
        if (at - since > 2 * interval + this.stallMs) problems.push(`no ${name} has finished for ${Math.round((at - since) / 1000)} s (its schedule has stopped)`);
      }
      jobs[name] = { running_since: iso(job.runningSince), last_finished: iso(job.lastFinished), last_error: job.lastError, interval_seconds: interval === null ? null : interval / 1000 };
    }
    const sources = [...this.sources].map(([name, s]) => ({ name, failures: s.failures, last_error: s.lastError, retry_at: iso(s.retryAt) }));
    return { ok: problems.length === 0, problems, jobs, sources };
  }
}
