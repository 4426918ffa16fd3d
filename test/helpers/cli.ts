/**
 * Runs the CLI the way an operator does: runCli() starts the real executable
 * (bin/dmarc-rollout.js, which runs the compiled dist/ that `npm test` builds
 * first) as a child process; runMain() calls main() in this process, for
 * tests where no process boundary is under test. Both against a store of the
 * test's own.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killedAtExit } from './children.js';
import { tempDir } from './temp-dirs.js';

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const BIN = join(REPO_ROOT, 'bin/dmarc-rollout.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh temp folder; the store file path inside it for DMARC_ROLLOUT_DB. */
export function tempStore(prefix = 'dmarc-rollout-test-'): { dir: string; db: string } {
  const dir = tempDir(prefix);
  return { dir, db: join(dir, 'store.sqlite') };
}

/** How long one command may run before runCli kills it: a command that hangs fails its test instead of the suite's run. */
const CLI_RUN_LIMIT_MS = 5 * 60_000;

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolvePromise) => {
    killedAtExit(
      execFile(
        process.execPath,
        [BIN, ...args],
        { env: { ...process.env, ...env }, cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: CLI_RUN_LIMIT_MS, killSignal: 'SIGKILL' },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          const killed = error?.killed ? `\n[runCli: killed after ${CLI_RUN_LIMIT_MS / 1000} s: dmarc-rollout ${args.join(' ')}]` : '';
          resolvePromise({ code, stdout, stderr: stderr + killed });
        },
      ),
    );
  });
}

/**
 * Runs the CLI in this process through main(argv, env), its output caught:
 * the same commands without a process to start, for tests where no process
 * boundary is under test. The store is the one `env.DMARC_ROLLOUT_DB` names.
 *
 * Fails when the command read one of the variables the test gave from
 * process.env instead of the environment main() passed it (where a started
 * executable would have seen it, and this run would silently not): see
 * withOwnEnvironment().
 */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const given = { ...process.env, ...env };
  const code = await withOwnEnvironment(env, () =>
    main(['node', 'dmarc-rollout', ...args], given, {
      stdout: (text) => (stdout += text),
      stderr: (text) => (stderr += text),
    }),
  );
  return { code, stdout, stderr };
}

/** The variables runs in progress were given that process.env does not hold (or holds otherwise), and what read them. */
const owned = new Map<string, number>();
let realEnv: NodeJS.ProcessEnv | undefined;
let leaks: string[] = [];

/**
 * Runs `fn` with process.env watched: reading from it a variable that `env`
 * sets (and process.env lacks or holds otherwise) is a leak, and the run
 * rejects naming the variable once `fn` is done. A module that reads
 * process.env where the CLI passes ctx.env would behave differently in
 * process than in a started executable; this makes that a failing test
 * instead of a silent difference.
 */
export async function withOwnEnvironment<T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const base = realEnv ?? process.env;
  const mine = Object.keys(env).filter((key) => base[key] !== env[key]);
  if (realEnv === undefined) {
    realEnv = process.env;
    leaks = [];
    const watched = (key: string | symbol) => typeof key === 'string' && owned.has(key);
    process.env = new Proxy(realEnv, {
      get(target, key, receiver) {
        if (watched(key)) leaks.push(String(key));
        return Reflect.get(target, key, receiver);
      },
      has(target, key) {
        if (watched(key)) leaks.push(String(key));
        return Reflect.has(target, key);
      },
    });
  }
  for (const key of mine) owned.set(key, (owned.get(key) ?? 0) + 1);
  let result: T;
  try {
    result = await fn();
  } finally {
    for (const key of mine) {
      const left = owned.get(key)! - 1;
      if (left === 0) owned.delete(key);
      else owned.set(key, left);
    }
    if (owned.size === 0 && realEnv !== undefined) {
      process.env = realEnv;
      realEnv = undefined;
    }
  }
  const read = [...new Set(leaks.filter((key) => mine.includes(key)))];
  if (read.length > 0) {
    throw new Error(`read ${read.map((k) => `process.env.${k}`).join(', ')} instead of the environment main() was given (ctx.env): pass it on to the module that reads it`);
  }
  return result;
}
