/**
 * Prometheus metrics for the daemon: what it ingested, what its ticks decided
 * and how long they took, which providers failed, and where the fleet stands.
 * Counters live in memory and restart at zero with the process (Prometheus's
 * rate() handles that); anything an operator reads as a total or a state
 * (domains per stage, reports stored, changes in flight) is read from the
 * store at scrape time, so it is right after a restart and matches `status`.
 */
import { STUCK_AFTER_ATTEMPTS } from '../engine/planned-change.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DomainTickResult } from '../engine/tick.js';
import { cachedPlanLoader } from '../fleet/status.js';
import type { DecisionAction } from '../engine/types.js';
import { loadPlan as loadPlanFromDisk, type Plan } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import type { IngestResult } from '../reports/ingest.js';
import type { Store } from '../store/open.js';
import { countRows, domainsPerStage, storedReports } from '../store/fleet-counts.js';
import type { ApiMetrics } from '../api/context.js';
import type { DomainState } from '../store/schema.js';

const PREFIX = 'dmarc_rollout_';
const STATES: readonly DomainState[] = ['active', 'paused', 'halted', 'completed'];
// Listed so that every action has a series from the start: an alert on
// increase(...{action="halt"}) then sees the first halt, not a new series.
const ACTIONS: readonly DecisionAction[] = ['establish', 'advance', 'hold', 'await-approval', 'halt', 'rollback', 'complete'];
// A tick of a small fleet takes well under a second; one waiting on slow
// provider APIs and DNS verification for many domains can take minutes.
const TICK_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** What the metrics count of one domain's tick result (src/engine/tick.ts DomainTickResult has it all). */
export interface TickTally {
  domain: string;
  error?: string;
  apply?: { status: string };
  decision?: { action: DecisionAction };
}

/** A result cut to what the metrics count: the daemon keeps this, not the whole decision, for each domain of a tick. */
export const tallyOf = (r: DomainTickResult): TickTally => ({
  domain: r.domain,
  ...(r.error !== undefined ? { error: r.error } : {}),
  ...(r.apply ? { apply: { status: r.apply.status } } : {}),
  ...(r.decision ? { decision: { action: r.decision.action } } : {}),
});

/**
 * A tick's results with the provider each counts against, for recordTick:
 * looked up only for the results that count against one (a retry, a stop, an
 * error), a chunk at a time, since reading every domain's provider in one
 * statement would hold the event loop for a large fleet.
 */
export async function withProviders<R extends TickTally>(db: Store['db'], results: readonly R[]): Promise<Array<R & { provider: string | null }>> {
  const counted = results.filter((r) => r.apply?.status === 'retrying' || r.apply?.status === 'stopped' || r.error !== undefined).map((r) => r.domain);
  const providerOf = new Map<string, string | null>();
  for (let i = 0; i < counted.length; i += 500) {
    for (const d of await db.selectFrom('domains').select(['domain', 'provider']).where('domain', 'in', counted.slice(i, i + 500)).execute()) providerOf.set(d.domain, d.provider);
  }
  return results.map((r) => ({ ...r, provider: providerOf.get(r.domain) ?? null }));
}

/** The API's part (src/api/context.ts: count an upload, serve /metrics) and the daemon's. */
export interface DaemonMetrics extends ApiMetrics {
  /** The per-instance prom-client Registry (never the global default registry: tests create many). */
  readonly registry: Registry;
  /** One finished tick: its per-domain results, each with the domain's provider name (null when none), and how long it took. */
  recordTick(results: ReadonlyArray<TickTally & { provider: string | null }>, durationSeconds: number): void;
  /** One notification delivery attempt on a channel and its outcome. */
  recordNotification(channel: string, outcome: 'delivered' | 'retrying' | 'failed'): void;
}

/**
 * Metrics on a registry of their own, including the process metrics.
 * `loadPlan` names a domain's stage in `dmarc_rollout_domains` (the plans on
 * disk by default); a plan that cannot be loaded shows as stage `unknown`
 * rather than failing the scrape.
 */
export function createDaemonMetrics(opts: { store: Store; loadPlan?: (name: string) => Plan }): DaemonMetrics {
  // A scrape only reads: on SQLite it does not wait behind an ingest's or a tick's transaction (Store.reader).
  const db = opts.store.reader;
  const loadPlan = opts.loadPlan ?? loadPlanFromDisk;
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  new Gauge({
    name: `${PREFIX}domains`,
    help: 'Enrolled domains by rollout stage (policy:pct of the record in force) and state (active, paused, halted, completed).',
    labelNames: ['stage', 'state'] as const,
    registers,
    async collect() {
      const rows = await domainsPerStage(db);
      const plans = cachedPlanLoader(loadPlan);
      const stageOf = (plan: string, index: number): string => {
        const stage = plans(plan).plan?.stages[index];
        return stage ? stageLabel(stage) : 'unknown';
      };
      // Rebuilt from scratch: a stage no domain is at any more must drop out.
      this.reset();
      for (const r of rows) this.inc({ stage: stageOf(r.plan, r.stage_index), state: r.state }, r.domains);
    },
  });

  new Gauge({
    name: `${PREFIX}domains_by_state`,
    help: 'Enrolled domains in each state; halted means the rollout stopped itself and a person must look.',
    labelNames: ['state'] as const,
    registers,
    async collect() {
      const counts = new Map<DomainState, number>();
      for (const r of await domainsPerStage(db)) counts.set(r.state, (counts.get(r.state) ?? 0) + r.domains);
      for (const state of STATES) this.set({ state }, counts.get(state) ?? 0);
    },
  });


  const storeGauge = (name: string, help: string, count: () => Promise<number>) =>
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      registers,
      async collect() {
        this.set(await count());
      },
    });
  storeGauge('reports_stored', 'Aggregate reports in the store (changed copies included, duplicates not).', () => storedReports(db));
  storeGauge('rejected_inputs', 'Inputs kept as rejected because they were not a readable aggregate report.', () => countRows(db, 'rejected_inputs'));
  storeGauge('changes_in_flight', 'DMARC record changes queued, written or awaiting verification in DNS.', () => countRows(db, 'intents'));
  storeGauge('changes_stuck', `DMARC record changes in flight that failed ${STUCK_AFTER_ATTEMPTS} times or more (still retried; see status or explain for the last error).`, async () =>
    Number((await db.selectFrom('intents').select((eb) => eb.fn.countAll<number>().as('n')).where('attempts', '>=', STUCK_AFTER_ATTEMPTS).executeTakeFirstOrThrow()).n),
  );

  const decisions = new Counter({
    name: `${PREFIX}decisions_total`,
    help: 'Decisions made by ticks, by action (a domain that holds counts once per tick).',
    labelNames: ['action'] as const,
    registers,
  });
  for (const action of ACTIONS) decisions.inc({ action }, 0);

  const ingests = new Counter({
    name: `${PREFIX}ingest_total`,
    help: 'Inputs ingested since start, by configured source and outcome (stored, changed copy, duplicate, rejected, error).',
    labelNames: ['source', 'outcome'] as const,
    registers,
  });

  const providerErrors = new Counter({
    name: `${PREFIX}provider_errors_total`,
    help: 'DNS changes whose read, write or verification through the provider failed and will be retried.',
    labelNames: ['provider'] as const,
    registers,
  });
  // Kept apart from provider errors: a hand-edited record, a CNAME or a broken plan is not the provider failing.
  const domainProblems = new Counter({
    name: `${PREFIX}domain_problems_total`,
    help: 'Tick results that could not go ahead: a change refused (CNAME, delegation, drift) or a domain not handled (bad plan, no provider, drift halt).',
    labelNames: ['provider'] as const,
    registers,
  });

  const tickDuration = new Histogram({
    name: `${PREFIX}tick_duration_seconds`,
    help: 'How long a tick over the whole fleet took.',
    buckets: TICK_BUCKETS,
    registers,
  });
  const lastTick = new Gauge({
    name: `${PREFIX}last_tick_timestamp_seconds`,
    help: 'When the last tick finished (Unix time); 0 before the first one.',
    registers,
  });

  new Gauge({
    name: `${PREFIX}notifications`,
    help: 'Notification messages in the store by channel and status (pending: queued or retrying; failed: undeliverable, kept with its error; delivered).',
    labelNames: ['channel', 'status'] as const,
    registers,
    async collect() {
      const rows = await db
        .selectFrom('notification_messages')
        .select(['channel', 'status', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy(['channel', 'status'])
        .execute();
      this.reset();
      for (const r of rows) this.set({ channel: r.channel, status: r.status }, Number(r.n));
    },
  });
  storeGauge(
    'notifications_events_waiting',
    'Notification events in the outbox not yet put into a channel message (waiting for the next tick).',
    async () => Number((await db.selectFrom('notification_events').select((eb) => eb.fn.countAll<number>().as('n')).where('dispatched_at', 'is', null).executeTakeFirstOrThrow()).n),
  );
  const notificationAttempts = new Counter({
    name: `${PREFIX}notifications_attempts_total`,
    help: 'Notification delivery attempts since start, by channel and outcome (delivered, retrying, failed = given up).',
    labelNames: ['channel', 'outcome'] as const,
    registers,
  });

  return {
    registry,
    recordNotification(channel, outcome) {
      notificationAttempts.inc({ channel, outcome });
    },
    recordIngest(sourceName, result) {
      const outcome = result.status === 'stored' && !result.counted ? 'changed' : result.status;
      ingests.inc({ source: sourceName, outcome });
    },
    recordTick(results, durationSeconds) {
      for (const r of results) {
        if (r.decision) decisions.inc({ action: r.decision.action });
        if (r.apply?.status === 'retrying') providerErrors.inc({ provider: r.provider ?? 'none' });
        if (r.apply?.status === 'stopped' || r.error !== undefined) domainProblems.inc({ provider: r.provider ?? 'none' });
      }
      tickDuration.observe(durationSeconds);
      lastTick.setToCurrentTime();
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
