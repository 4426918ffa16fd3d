/**
 * What every route gets: the store, the clock, plans, the config's allowlist,
 * report ingest and metrics. Routes are thin doors onto src/fleet and
 * src/reports; they hold no rules of their own.
 */
import type { FastifyRequest } from 'fastify';
import type { SourceRule } from '../engine/types.js';
import type { Actor } from '../fleet/actions.js';
import type { ProviderLookup } from '../fleet/enroll.js';
import { MeasuredDomains } from '../fleet/measured-cache.js';
import type { ViewContext } from '../fleet/views.js';
import type { Plan } from '../plans/index.js';
import type { IngestResult } from '../reports/index.js';
import type { NotifySettings } from '../notify/config.js';
import { readingStore, type Store } from '../store/open.js';
import { actorOf } from './auth.js';

export interface ApiContext {
  store: Store;
  now(): Date;
  loadPlan(name: string): Plan;
  /** Allowlist and abuse rules from the daemon config. */
  sourceRules: readonly SourceRule[];
  /** Ingests one uploaded input (the daemon's ingest, with its rejected/ folder). */
  ingest(bytes: Buffer, source: string): Promise<IngestResult>;
  metrics?: ApiMetrics;
  /** The notification channels (their secrets read), for the notifications page and API; none when absent. */
  notify?: NotifySettings;
  /** The daemon's schedules and sources, for /healthz; a bare API server (tests) has none and is healthy when it answers. */
  health?: () => HealthReport;
  /** The configured DNS providers (set-provider, unenroll with restore); none when absent. */
  providers?: ProviderLookup;
}

/** The daemon's metrics as the API uses them (src/daemon/metrics.ts fills them): an upload counted, /metrics served. */
export interface ApiMetrics {
  /** One ingested input from the configured source named `sourceName` (the config's source name, never a per-message id). */
  recordIngest(sourceName: string, result: IngestResult): void;
  /** The text exposition and its content type, with the store-backed gauges read fresh at call time. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Whether the daemon does its work, for /healthz (src/daemon/health.ts fills it; src/api/routes/meta.ts answers from it). */
export interface HealthReport {
  ok: boolean;
  /** Why not ok, one line each. */
  problems: string[];
  jobs: Record<string, { running_since: string | null; last_finished: string | null; last_error: string | null; interval_seconds: number | null }>;
  sources: Array<{ name: string; failures: number; last_error: string | null; retry_at: string | null }>;
  /** This daemon's instance id (the daemon adds it and the count below; src/store/instances.ts). */
  instance?: string;
  /** Instances whose heartbeat is within a lease time, this one included, as of the last heartbeat. */
  live_instances?: number;
}

/**
 * The store for a door that only reads (a GET, a page, a session looked up):
 * on SQLite its reads do not wait behind an ingest's or a tick's transaction
 * and see what was last committed (Store.reader). A door that acts uses
 * ctx.store.
 */
export const reading = (ctx: ApiContext): Store => readingStore(ctx.store);

/** One MeasuredDomains per API context (a server's life): the domain page's measurements, kept while they hold. */
const measuredByContext = new WeakMap<ApiContext, MeasuredDomains>();

export function viewContext(ctx: ApiContext): ViewContext {
  let measured = measuredByContext.get(ctx);
  if (!measured) measuredByContext.set(ctx, (measured = new MeasuredDomains()));
  return { loadPlan: ctx.loadPlan, sourceRules: ctx.sourceRules, measured };
}

/** Who acts, for the fleet actions and the audit log. */
export const actor = (ctx: ApiContext, request: FastifyRequest): Actor => ({ actor: actorOf(request), now: ctx.now() });
