/**
 * Runs the CLI the way an operator does: runCli() starts the real executable
 * (bin/dmarc-rollout.js, which runs the compiled dist/ that `npm test` builds
 * first) as a child process; runMain() calls main() in this process, for
 * tests where no process boundary is under test. Both against a store of the
 * test's own.
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

/**
 * Runs the CLI in this process through main(argv, env), its output caught:
 * the same commands without a process to start, for tests where no process
 * boundary is under test. The store is the one `env.DMARC_ROLLOUT_DB` names.
 */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'dmarc-rollout', ...args], { ...process.env, ...env }, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
  });
  return { code, stdout, stderr };
}
