/**
 * What every route gets: the store, the clock, plans, the config's allowlist,
 * report ingest and metrics. Routes are thin doors onto src/fleet and
 * src/reports; they hold no rules of their own.
 */
import type { FastifyRequest } from 'fastify';
import type { HealthReport } from '../daemon/health.js';
import type { DaemonMetrics } from '../daemon/metrics.js';
import type { SourceRule } from '../engine/types.js';
import type { Actor } from '../fleet/actions.js';
import type { ProviderLookup } from '../fleet/enroll.js';
import type { ViewContext } from '../fleet/views.js';
import type { Plan } from '../plans/index.js';
import type { IngestResult } from '../reports/index.js';
import type { NotifySettings } from '../notify/config.js';
import type { Store } from '../store/open.js';
import { actorOf } from './auth.js';

export interface ApiContext {
  store: Store;
  now(): Date;
  loadPlan(name: string): Plan;
  /** Allowlist and abuse rules from the daemon config. */
  sourceRules: readonly SourceRule[];
  /** Ingests one uploaded input (the daemon's ingest, with its rejected/ folder). */
  ingest(bytes: Buffer, source: string): Promise<IngestResult>;
  metrics?: DaemonMetrics;
  /** The notification channels (their secrets read), for the notifications page and API; none when absent. */
  notify?: NotifySettings;
  /** The daemon's schedules and sources, for /healthz; a bare API server (tests) has none and is healthy when it answers. */
  health?: () => HealthReport;
  /** The configured DNS providers (set-provider, unenroll with restore); none when absent. */
  providers?: ProviderLookup;
}

export const viewContext = (ctx: ApiContext): ViewContext => ({ loadPlan: ctx.loadPlan, sourceRules: ctx.sourceRules });

/** Who acts, for the fleet actions and the audit log. */
export const actor = (ctx: ApiContext, request: FastifyRequest): Actor => ({ actor: actorOf(request), now: ctx.now() });
