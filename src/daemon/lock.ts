/**
 * The instance lock: one daemon per SQLite store. Two daemons on one file
 * would both tick and both write DNS, and SQLite has no row locks to share
 * the work out by (on Postgres several daemons share it: src/store/instances.ts). The lock is an exclusive SQLite
 * transaction on a small file beside the store, held for the daemon's life:
 * SQLite's file locks belong to the process, so the kernel drops them when it
 * dies, however it dies (SIGKILL, out of memory, a container replaced on
 * another host name). Nothing stale is ever left to clean up by hand.
 */
import { hostname } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import { AppError } from '../errors.js';

export interface InstanceLock {
  readonly path: string;
  release(): void;
}

/** Another daemon holds the store's lock: the store is not available to this one. */
export class LockHeldError extends AppError {
  override name = 'LockHeldError';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super('unavailable', message, options);
  }
}

/**
 * The connections holding a lock. better-sqlite3 closes a connection when it
 * is garbage collected, and closing it ends the transaction: a lock whose
 * handle a caller let go of would be dropped at the next collection, silently,
 * with the daemon still running. Held here, a lock lasts until release() or
 * the process's end.
 */
const heldConnections = new Set<SqliteDatabase.Database>();

export function acquireInstanceLock(storePath: string): InstanceLock {
  const path = `${storePath}.lock`;
  const infoPath = `${path}.holder`;
  const db = new SqliteDatabase(path);
  db.pragma('busy_timeout = 0');
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    let holder = '';
    try {
      holder = ` (${readFileSync(infoPath, 'utf8').trim()})`;
    } catch {
      // The holder writes its note just after locking; a race leaves it absent, which is fine.
    }
    throw new LockHeldError(`another daemon holds ${path}${holder}; one daemon per store`);
  }
  // Informational only, for the message a second daemon prints; the lock is the transaction.
  writeFileSync(infoPath, `pid ${process.pid} on ${hostname()} since ${new Date().toISOString()}\n`);
  heldConnections.add(db);
  return {
    path,
    release() {
      heldConnections.delete(db);
      if (!db.open) return;
      db.exec('ROLLBACK');
      db.close();
    },
  };
}
