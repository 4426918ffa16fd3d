/**
 * The instance lock: one daemon per store. Two daemons on one SQLite file
 * would both tick and both write DNS. The lock is a file beside the store,
 * created exclusively, holding the owner's pid and host; a lock left by a
 * process that no longer runs on this host is taken over.
 */
import { hostname } from 'node:os';
import { openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';

export interface InstanceLock {
  readonly path: string;
  release(): void;
}

export class LockHeldError extends Error {
  override name = 'LockHeldError';
}

export function acquireInstanceLock(storePath: string): InstanceLock {
  const path = `${storePath}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }));
      closeSync(fd);
      return { path, release: () => rmSync(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(path);
      if (holder && holder.host === hostname() && !isAlive(holder.pid)) {
        rmSync(path, { force: true });
        continue;
      }
      throw new LockHeldError(
        `another daemon holds ${path}${holder ? ` (pid ${holder.pid} on ${holder.host} since ${holder.since})` : ''}; one daemon per store`,
      );
    }
  }
  throw new LockHeldError(`could not take ${path}`);
}

function readHolder(path: string): { pid: number; host: string; since: string } | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
