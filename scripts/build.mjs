// `npm run build`: compiles src/ and providers/ with tsc (type-checking them)
// and bundles the command line (scripts/bundle-cli.mjs), into dist.next/,
// then puts it in place of dist/ with two renames. dist/ is never missing or
// half-written while the compiler runs, so a command or test started during a
// build runs the previous build whole.
import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bundleCli } from './bundle-cli.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);
const next = 'dist.next';
const old = 'dist.old';
rmSync(next, { recursive: true, force: true });
rmSync(old, { recursive: true, force: true });

const tsc = spawnSync('node_modules/.bin/tsc', ['-p', 'tsconfig.build.json', '--outDir', next], { stdio: 'inherit' });
if (tsc.status !== 0) {
  rmSync(next, { recursive: true, force: true });
  process.exit(tsc.status ?? 1);
}
await bundleCli(next);

if (existsSync('dist')) renameSync('dist', old);
renameSync(next, 'dist');
rmSync(old, { recursive: true, force: true });
