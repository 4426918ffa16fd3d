/**
 * The daemon: one store, the configured report sources and DNS providers, and
 * two schedules, ingest and tick. A job never overlaps itself; stopping waits
 * for the job in flight, so a change being applied is finished or left as a
 * stored intent, never cut in half. On SQLite the store is locked to this
 * process. On Postgres several daemons share it: each registers as an
 * instance and beats (renewing its leases), judges and applies a domain only
 * under the domain's lease, polls a source only under the source's lease,
 * and sends a notification only under its claim; all of them serve the API.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { providerSetFrom } from '../../providers/config-file.js';
import { startApiServer, type RunningApiServer } from '../api/server.js';
import { TokenSet } from '../api/tokens.js';
import { runTick } from '../engine/tick.js';
import { pruneRawRows } from '../store/rollups.js';
import { pruneLimitCounters } from '../store/counters.js';
import { dnsVerifier } from '../engine/verify.js';
import { defaultRejectedDir, ingestInput } from '../reports/index.js';
import { ReporterBudget } from '../reports/budget.js';
import { dnsResolve } from '../reports/provenance.js';
import { openStore, type Store } from '../store/open.js';
import { describeStore } from '../store/location.js';
import { AppError, errorMessage } from '../errors.js';
import { configSourceRules, type DaemonConfig } from './config.js';
import { loadPlan } from '../plans/index.js';
import { DaemonHealth, type HealthReport } from './health.js';
import { tallyOf, withProviders, type TickTally } from './metrics.js';
import { acquireInstanceLock, type InstanceLock } from './lock.js';
import { joinInstances, type Membership } from './heartbeat.js';
import { claimLease, releaseLease } from '../store/leases.js';
import { LeaseFence } from './fence.js';
import { startSystemdWatchdog } from './watchdog.js';
import { createDaemonMetrics, type DaemonMetrics } from './metrics.js';
import { createFolderSource } from './sources/folder.js';
import { createImapSource } from './sources/imap.js';
import { createSmtpSource } from './sources/smtp.js';
import { createNotifier, type Notifier } from '../notify/notifier.js';
import type { Deliver, ReportSource } from './sources/types.js';

/** The daemon could not start for a reason the operator must fix (a port in use, a missing secret). */
export class StartError extends AppError {
  override name = 'StartError';

  /** Unavailable (a port in use, a listener that cannot start), or the code of the error it wraps (a config problem). */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(options.cause instanceof AppError ? options.cause.code : 'unavailable', message, options);
  }
}

export interface DaemonDeps {
  logger: Logger;
  /** The clock; a test may run the daemon in its own time. */
  now?: () => Date;
  /** Start the HTTP API when the config has an `api` block (default true; `--once` runs without it). */
  serve?: boolean;
}

export interface RunningDaemon {
  readonly store: Store;
  readonly metrics: DaemonMetrics;
  /** Notifications: the outbox's dispatcher, the sender, the summary schedule. */
  readonly notifier: Notifier;
  /** Where the HTTP API listens, when it runs. */
  readonly apiUrl: string | null;
  /** Swaps the API's tokens for these (a re-read config), so a revoked token stops working without a restart. */
  replaceTokens(tokens: DaemonConfig['apiTokens']): void;
  /** Runs one ingest now (unless one is running); resolves when done. */
  ingest(): Promise<void>;
  /** Runs one tick now (unless one is running); resolves when done. */
  tick(): Promise<void>;
  /** Whether the schedules are running (a stalled tick is not ok) and which sources are failing. */
  health(): HealthReport;
  /** This daemon's instance id: the holder name of its leases and outbox claims. */
  readonly instanceId: string;
  /** Stops taking work, waits for the job in flight, closes everything. */
  stop(): Promise<void>;
}

export async function startDaemon(config: DaemonConfig, deps: DaemonDeps): Promise<RunningDaemon> {
  const { logger } = deps;
  const now = deps.now ?? (() => new Date());
  const location = config.storeLocation;
  // SQLite: one daemon per file. Postgres: as many as the operator runs, coordinated through the store.
  const lock: InstanceLock | null = location.kind === 'sqlite' ? acquireInstanceLock(location.path) : null;
  let store: Store;
  // Postgres: the reporter budget reads a reporter's use on a pool of its own (two connections), so a report that
  // begins does not queue behind the transactions filling the main pool; it is spent in the report's own transaction.
  let budgetStore: Store | null = null;
  try {
    store = await openStore(location);
    if (location.kind === 'postgres') budgetStore = await openStore({ ...location, connection: { ...location.connection, poolSize: 2 } }).catch(async (error: unknown) => {
      await store.close();
      throw error;
    });
  } catch (error) {
    lock?.release();
    throw error;
  }
  const closeStores = async () => {
    await budgetStore?.close();
    await store.close();
  };
  const leaseMs = config.instances.lease_seconds * 1000;
  let instance: Membership;
  try {
    // On SQLite the lock file proves every other registered daemon dead (sole): their rows and leases go now.
    instance = await joinInstances(store.db, { leaseMs, heartbeatMs: config.instances.heartbeat_seconds * 1000, sole: lock !== null, logger });
  } catch (error) {
    await closeStores();
    lock?.release();
    throw error;
  }
  // A restart is a person's (or systemd's) "try now": changes left in flight
  // by the previous run get one immediate attempt instead of waiting out a backoff
  // the previous process chose. Not while other instances run: their backoffs are theirs.
  if (instance.others.length === 0) await store.db.updateTable('intents').set({ next_attempt_at: now().toISOString() }).execute();
  const rejectedDir = config.rejected_dir ?? defaultRejectedDir(config.storePath === null ? {} : { DMARC_ROLLOUT_DB: config.storePath });
  const providers = providerSetFrom(config.providers, config.file, { logger });
  const sourceRules = configSourceRules(config);
  const sources: ReportSource[] = config.sources.map((s) => {
    if (s.type === 'folder') return createFolderSource(s);
    if (s.type === 'imap') return createImapSource(s, { logger });
    return createSmtpSource(s, { logger, store: store.db });
  });
  const metrics = createDaemonMetrics({ store });
  const notifier = createNotifier({
    store,
    settings: config.notify,
    logger,
    now,
    tickSchedule: config.schedule.tick,
    viewContext: { loadPlan, sourceRules },
    holder: instance.id,
    // A live sender finishes an attempt within two timeouts; a dead one's claim is taken over after that, or a lease time.
    claimMs: Math.max(leaseMs, 2 * config.notify.timeoutMs),
    leaseMs,
    onAttempt: (channel, outcome) => metrics.recordNotification(channel, outcome),
  });
  // Every source's input is checked for provenance unless the source says it is trusted.
  const provenance = { resolve: dnsResolve(config.dns?.resolvers), reporters: config.provenance.reporters };
  // Postgres: counted in the store, shared by every instance. SQLite (one daemon per file): in this process,
  // exact for the one daemon, and no statement on the store's one connection.
  const budget = new ReporterBudget(config.budget.records_per_reporter_per_hour, Date.now, budgetStore?.db);
  const deliverFor =
    (sourceName: string): Deliver =>
    async (input, source) => {
      const checked = { ...input, provenance: { trusted: false, ...provenance, ...input.provenance }, budget };
      const result = await ingestInput(store.db, checked, source, { rejectedDir, now });
      metrics.recordIngest(sourceName, result);
      return result;
    };

  let stopping = false;
  const health = new DaemonHealth(Date.now(), config.watchdog.stall_seconds * 1000);
  const healthNow = (): HealthReport => instance.health(health.report(Date.now()));
  const inFlight = new Map<string, Promise<void>>();
  // One job of a kind at a time: a slow tick is not joined by the next one.
  const guarded = (name: string, job: () => Promise<void>) => (): Promise<void> => {
    if (stopping) return Promise.resolve();
    const running = inFlight.get(name);
    if (running) {
      logger.warn({ job: name }, 'previous run still going; this one is skipped');
      return running;
    }
    const started = Date.now();
    health.started(name, started);
    let failure: unknown;
    const promise = job()
      .catch((error: unknown) => {
        failure = error;
        logger.error({ job: name, err: error }, 'job failed');
      })
      .finally(() => {
        health.finished(name, Date.now(), failure);
        inFlight.delete(name);
        logger.info({ job: name, ms: Date.now() - started }, 'job done');
      });
    inFlight.set(name, promise);
    return promise;
  };

  const ingest = guarded('ingest', notifier.watchIngest(async () => {
    for (const source of sources) {
      if (stopping || source.kind !== 'poll') continue;
      // One failing source (a wrong IMAP password, an unreachable server) is retried with a backoff; the others go on.
      if (!health.sourceDue(source.name, Date.now())) continue;
      // One instance polls a source at a time (two would read the same mails and race to move them);
      // the lease is renewed by the heartbeat for as long as the poll takes.
      const lease = `source:${source.name}`;
      if (!(await claimLease(store.db, lease, instance.id, new Date(), leaseMs))) {
        logger.debug({ source: source.name }, 'source left to the instance polling it now');
        continue;
      }
      const started = new Date();
      try {
        const summary = await source.poll(deliverFor(source.name));
        health.sourceSucceeded(source.name);
        logger.info(
          { source: source.name, instance: instance.id, started: started.toISOString(), delivered: summary.delivered, acknowledged: summary.acknowledged, failed: summary.failed },
          'source polled',
        );
      } catch (error) {
        const state = health.sourceFailed(source.name, error, Date.now());
        logger.error({ source: source.name, err: error, failures: state.failures, retry_at: new Date(state.retryAt).toISOString() }, 'source failed; the other sources go on');
      } finally {
        await releaseLease(store.db, lease, instance.id).catch((error: unknown) => logger.warn({ err: error, lease }, 'source lease not given back; it runs out'));
      }
    }
  }));
  // A DNS write is fenced by the domain's lease (src/daemon/fence.ts): an instance that lost it writes nothing.
  const fence = new LeaseFence({ db: store.db, holder: instance.id, leaseMs });
  const tick = guarded('tick', notifier.watchTick(async () => {
    const started = process.hrtime.bigint();
    // Each result is logged as it comes and cut to what the metrics count: a large fleet's decisions are not all held.
    const tallies: TickTally[] = [];
    await runTick({
      store,
      now: now(),
      providerFor: (row) => fence.wrap(providers.get(row.provider), row.domain),
      verifierFor: (provider) => dnsVerifier(providers.verifySettings(fence.unwrap(provider))),
      sourceRules,
      // Another daemon (or a `tick` from the command line) skips the domain this one works on, and the reverse.
      // Held from plan through write to verify; the heartbeat renews it, so it runs out only when this instance stops beating.
      lease: { holder: instance.id, ttlMs: leaseMs, now: () => new Date() },
      onResult: (r) => {
        if (r.error) logger.warn({ domain: r.domain, error: r.error }, 'domain not handled');
        else if (r.decision && r.decision.action !== 'hold') {
          logger.info({ domain: r.domain, action: r.decision.action, to: r.decision.to, summary: r.decision.summary, apply: r.apply }, 'decision');
        } else if (r.apply) logger.info({ domain: r.domain, apply: r.apply }, 'change in flight');
        tallies.push(tallyOf(r));
      },
    });
    metrics.recordTick(
      await withProviders(store.db, tallies),
      Number(process.hrtime.bigint() - started) / 1e9,
    );
    if (config.retention.raw_rows_days > 0) {
      const at = now();
      const pruned = await pruneRawRows(store.db, { before: Math.floor(at.getTime() / 1000) - config.retention.raw_rows_days * 86_400, maxRows: config.retention.prune_rows_per_tick, now: at });
      if (pruned.rows > 0) logger.info({ reports: pruned.reports, rows: pruned.rows, more: pruned.more }, 'raw report rows pruned (retention)');
    }
    // The shared limits' past windows (sign-in, SMTP, reporter budget): bounded batches, at most 20,000 rows a tick.
    for (let batch = 0; batch < 20 && (await pruneLimitCounters(store.db, new Date(), 1000)) === 1000; batch++);
  }));

  let api: RunningApiServer | null = null;
  const tokens = new TokenSet(config.apiTokens);
  if (config.api && deps.serve !== false) {
    try {
      api = await startApiServer({
        config: config.api,
        tokens,
        logger,
        context: {
          store,
          now,
          loadPlan,
          sourceRules,
          metrics,
          notify: config.notify,
          providers,
          health: healthNow,
          ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir, now }),
        },
      });
    } catch (error) {
      // A port in use (or a bad session secret) refuses the start and leaves nothing behind.
      await instance.leave();
      await closeStores();
      lock?.release();
      const { host, port } = config.api.listen;
      const reason = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? `${host}:${port} is already in use` : errorMessage(error);
      throw new StartError(`${config.file}: api: ${reason}`, { cause: error });
    }
    if (config.apiTokens.length === 0) logger.warn('the API has no tokens: every request will be refused (see dmarc-rollout token create)');
  }
  // All up or all down: a listener that cannot start (its port taken) stops the whole start, with the reason, and frees the lock.
  const listening: Array<Extract<ReportSource, { kind: 'listen' }>> = [];
  try {
    for (const source of sources) {
      if (source.kind !== 'listen') continue;
      await source.start(deliverFor(source.name));
      listening.push(source);
    }
  } catch (error) {
    for (const source of listening) await source.stop().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await instance.leave();
    await closeStores();
    lock?.release();
    throw new StartError(`${config.file}: sources: ${errorMessage(error)}`, { cause: error });
  }
  notifier.start();

  const tasks: ScheduledTask[] = [
    cron.schedule(config.schedule.ingest, ingest, { name: 'ingest', timezone: 'UTC' }),
    cron.schedule(config.schedule.tick, tick, { name: 'tick', timezone: 'UTC' }),
  ];
  const intervalOf = (task: ScheduledTask) => () => {
    const [a, b] = task.getNextRuns(2);
    return a && b ? b.getTime() - a.getTime() : null;
  };
  health.schedule('ingest', intervalOf(tasks[0]!));
  health.schedule('tick', intervalOf(tasks[1]!));
  const watchdog = startSystemdWatchdog(() => healthNow().ok, { onError: (error) => logger.warn({ err: error }, 'systemd watchdog keep-alive failed') });
  logger.info(
    {
      store: describeStore(location),
      instance: instance.id,
      other_instances: instance.others.map((i) => i.id),
      sources: sources.map((s) => s.name),
      providers: providers.names,
      schedule: config.schedule,
      api: api?.url ?? null,
    },
    'daemon started',
  );

  const running: RunningDaemon = {
    store,
    metrics,
    notifier,
    instanceId: instance.id,
    apiUrl: api?.url ?? null,
    replaceTokens(next) {
      tokens.replace(next);
      logger.info({ tokens: next.map((t) => `${t.name} (${t.role})`) }, 'API tokens reloaded');
    },
    ingest,
    tick,
    health: healthNow,
    async stop() {
      if (stopping) return;
      stopping = true;
      watchdog?.stop();
      for (const task of tasks) await task.destroy();
      // The API stops taking requests first, so no action lands after the last tick.
      await api?.close();
      await Promise.all(inFlight.values());
      await notifier.stop();
      for (const source of sources) await (source.kind === 'listen' ? source.stop() : source.close());
      await instance.leave();
      await closeStores();
      lock?.release();
      logger.info('daemon stopped');
    },
  };
  return running;
}
