/**
 * This daemon as one of the instances sharing a store: registered when it
 * starts, beating every heartbeat (each beat renews the leases it holds, so
 * they run out only when it stops beating), counting the live instances,
 * forgetting long-silent ones, and deregistered at stop, which gives its
 * leases back at once. Its heartbeat joins the health report: an instance
 * that has not reached the store for a lease time has lost its leases, and
 * /healthz says so, so a probe restarts it.
 */
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import { errorMessage } from '../errors.js';
import { beat, deregisterInstance, listInstances, newInstanceId, pruneInstances, registerInstance, type InstanceView } from '../store/instances.js';
import type { Database } from '../store/schema.js';
import type { HealthReport } from './health.js';

/** An instance silent for this many lease times is forgotten (its row, shown as gone until then). */
const FORGET_AFTER_LEASES = 60;

export interface Membership {
  /** This instance's id: the holder name of its leases and outbox claims. */
  readonly id: string;
  /** The other instances that were live when this one joined. */
  readonly others: readonly InstanceView[];
  /** `report` with this instance, the live count and, past a lease time without a beat, the problem. */
  health(report: HealthReport): HealthReport;
  /** Stops beating, waits for a beat in flight and deregisters; never throws (the leases then run out). */
  leave(): Promise<void>;
}

/** The two pino calls the heartbeat makes: `{ err, instance? }` and a message. */
export interface HeartbeatLogger {
  error(fields: { err: unknown; instance?: string }, message: string): void;
  warn(fields: { err: unknown }, message: string): void;
}

export interface JoinOptions {
  leaseMs: number;
  heartbeatMs: number;
  /**
   * The caller holds the store's only-daemon lock (SQLite's lock file): every
   * other registered instance is then dead, and its row and leases go now
   * instead of a lease time later.
   */
  sole: boolean;
  /** Where a failed beat or deregistration is told: the daemon's pino logger, or a CLI run's stderr. */
  logger: HeartbeatLogger;
}

/** Registers this process as an instance and starts its heartbeat. */
export async function joinInstances(db: Kysely<Database>, opts: JoinOptions): Promise<Membership> {
  const { leaseMs, logger } = opts;
  const instance = { id: newInstanceId(), host: hostname(), pid: process.pid };
  await registerInstance(db, instance, new Date());
  if (opts.sole) for (const gone of await listInstances(db, new Date(), leaseMs)) if (gone.id !== instance.id) await deregisterInstance(db, gone.id);
  const others = (await listInstances(db, new Date(), leaseMs)).filter((i) => i.live && i.id !== instance.id);

  let lastBeat = Date.now();
  let beatError: string | null = null;
  let liveInstances = others.length + 1;
  let beating: Promise<void> | null = null;
  const heartbeat = () => {
    beating ??= (async () => {
      try {
        const at = new Date();
        await beat(db, instance, at, leaseMs);
        lastBeat = Date.now();
        beatError = null;
        liveInstances = (await listInstances(db, at, leaseMs)).filter((i) => i.live).length;
        await pruneInstances(db, new Date(at.getTime() - FORGET_AFTER_LEASES * leaseMs));
      } catch (error) {
        beatError = errorMessage(error);
        logger.error({ err: error, instance: instance.id }, 'heartbeat failed; past the lease time other instances take this one’s work over');
      } finally {
        beating = null;
      }
    })();
    return beating;
  };
  const timer = setInterval(() => void heartbeat(), opts.heartbeatMs);
  timer.unref();

  return {
    id: instance.id,
    others,
    health(report) {
      const silentMs = Date.now() - lastBeat;
      const problems =
        silentMs > leaseMs ? [...report.problems, `no heartbeat for ${Math.round(silentMs / 1000)} s (${beatError ?? 'none attempted'}): this instance’s leases have run out`] : report.problems;
      return { ...report, ok: problems.length === 0, problems, instance: instance.id, live_instances: liveInstances };
    },
    async leave() {
      clearInterval(timer);
      await beating;
      // Its leases go with it: the other instances need not wait a lease time for its domains and sources.
      await deregisterInstance(db, instance.id).catch((error: unknown) => logger.warn({ err: error }, 'instance not deregistered; its leases run out'));
    },
  };
}

/**
 * Runs one piece of work (a tick from the command line) as an instance:
 * joined for its length, its heartbeat renewing the leases the work takes
 * under `id`, and left when it ends, whatever the outcome. A process killed
 * meanwhile has its leases run out a lease time later.
 */
export async function asInstance<T>(db: Kysely<Database>, opts: Omit<JoinOptions, 'sole'>, work: (id: string) => Promise<T>): Promise<T> {
  const member = await joinInstances(db, { ...opts, sole: false });
  try {
    return await work(member.id);
  } finally {
    await member.leave();
  }
}
