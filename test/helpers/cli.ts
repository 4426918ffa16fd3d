/**
 * Runs the real `dmarc-rollout` executable as a child process, the way an
 * operator does, against a store of the test's own.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const BIN = join(REPO_ROOT, 'bin/dmarc-rollout.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh temp folder; the store file path inside it for DMARC_ROLLOUT_DB. */
export function tempStore(prefix = 'dmarc-rollout-test-'): { dir: string; db: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, db: join(dir, 'store.sqlite') };
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}
