/**
 * The instance lock on a Postgres store: one daemon per database, as the
 * lock file is for SQLite (src/daemon/lock.ts). It is a session-level
 * advisory lock held on a connection of its own for the daemon's life; the
 * server drops it when that connection ends, however the process ends, so
 * nothing stale is left. Losing the connection loses the lock: the daemon is
 * told (onLost) and must stop rather than go on unguarded.
 */
import { hostname } from 'node:os';
import { describeStore, type PostgresConnection } from '../store/location.js';
import { LockHeldError, type InstanceLock } from './lock.js';

/** The advisory lock key: "dmar" in ASCII, so it reads back recognisably from pg_locks. */
export const INSTANCE_LOCK_KEY = 0x646d6172;

export async function acquirePostgresInstanceLock(connection: PostgresConnection, onLost: (error: Error) => void = () => {}): Promise<InstanceLock> {
  const { default: pg } = await import('pg');
  const where = describeStore({ kind: 'postgres', connection });
  const client = new pg.Client({
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    ...(connection.password !== undefined ? { password: connection.password } : {}),
    ssl: connection.ssl === false ? false : { rejectUnauthorized: connection.ssl.rejectUnauthorized, ...(connection.ssl.ca ? { ca: connection.ssl.ca } : {}) },
    connectionTimeoutMillis: 10_000,
    // Shown to a second daemon that finds the lock taken (pg_stat_activity.application_name, 63 bytes at most).
    application_name: `dmarc-rollout pid ${process.pid} on ${hostname()}`.slice(0, 63),
    // A dead peer (a partitioned network) is noticed by keepalives instead of never.
    keepAlive: true,
  });
  let released = false;
  client.on('error', (error) => {
    if (!released) onLost(new Error(`${where}: the instance lock's connection failed: ${error.message}`));
  });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`${where} (${connection.origin}): ${(error as Error).message}`, { cause: error });
  }
  const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [INSTANCE_LOCK_KEY]);
  if (!rows[0]?.locked) {
    const holder = await client
      .query<{ application_name: string; backend_start: Date }>(
        `select a.application_name, a.backend_start from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'advisory' and l.classid = 0 and l.objid = $1 and l.objsubid = 1 and l.granted`,
        [INSTANCE_LOCK_KEY],
      )
      .then((r) => r.rows[0])
      .catch(() => undefined);
    await client.end().catch(() => {});
    const who = holder ? ` (${holder.application_name}, connected since ${new Date(holder.backend_start).toISOString()})` : '';
    throw new LockHeldError(`another daemon holds the instance lock on ${where}${who}; one daemon per store`);
  }
  client.on('end', () => {
    if (!released) onLost(new Error(`${where}: the instance lock's connection closed`));
  });
  return {
    path: where,
    release() {
      if (released) return;
      released = true;
      // Ending the session releases the advisory lock.
      void client.end().catch(() => {});
    },
  };
}
