/**
 * Where things live on disk, in one place: the package's own folder (found
 * the same way from the TypeScript sources and from the compiled dist/), its
 * data/ folder with the default plans, the plan search path, the defaults
 * for the store file and the rejected-input folder, and the command line's
 * compile cache. Every module asks here instead of working
 * out a path from its own location, so moving a module or compiling it
 * cannot change where data is read or written.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest folder above `start` with a package.json: the repository or the installed package. */
export function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    // A broken installation, never the user's input; plain Error because paths.ts imports nothing (test/layering.test.ts).
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

/** The package's folder: src/paths.ts and dist/src/paths.js both resolve to it. */
export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** The package's data/ folder: the default plans, and the SQLite file when DMARC_ROLLOUT_DB is unset. */
export const PACKAGE_DATA_DIR = join(PACKAGE_ROOT, 'data');

/** The plan folder searched last, after DMARC_ROLLOUT_PLANS. */
export const PACKAGE_PLANS_DIR = join(PACKAGE_DATA_DIR, 'plans');

/** Where the SQLite file is: `DMARC_ROLLOUT_DB` if set, else data/dmarc-rollout.sqlite in the package. */
export function defaultDatabasePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.DMARC_ROLLOUT_DB ? resolve(env.DMARC_ROLLOUT_DB) : join(PACKAGE_DATA_DIR, 'dmarc-rollout.sqlite');
}

/** Folders searched for plans by name: `DMARC_ROLLOUT_PLANS` (a path list) first, then the shipped data/plans. */
export function planDirectories(env: NodeJS.ProcessEnv = process.env): string[] {
  const extra = env.DMARC_ROLLOUT_PLANS ? env.DMARC_ROLLOUT_PLANS.split(delimiter).filter(Boolean) : [];
  return [...extra.map((d) => resolve(d)), PACKAGE_PLANS_DIR];
}

/**
 * Where V8 keeps the command line's compiled code: `$XDG_CACHE_HOME` or
 * `~/.cache`, then dmarc-rollout/compile.
 * @throws Error when there is no home folder to find ~/.cache in.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dmarc-rollout', 'compile');
}

/** `<data dir>/rejected`: beside the database when DMARC_ROLLOUT_DB is set, else the package's data/ folder. */
export function defaultRejectedDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DMARC_ROLLOUT_DB ? join(dirname(resolve(env.DMARC_ROLLOUT_DB)), 'rejected') : join(PACKAGE_DATA_DIR, 'rejected');
}
