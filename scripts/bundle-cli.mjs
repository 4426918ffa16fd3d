// Bundles the compiled command line (<dist>/src/cli/run.js, from tsc) into
// <dist>/cli/ for start-up time; scripts/build.mjs calls it. Node's ES module
// loader pays per module resolved, and `status` alone resolved about 420: 262
// of them kysely's and 95 zod's, pure ES modules every store command needs.
// Those two are bundled into a few chunks; every other package stays an
// import of node_modules, and each command group stays its own chunk loaded
// with import() when its command runs (src/cli/main.ts), so `--version` still
// loads no DNS SDK, server or mail library. <dist>/src/ stays the unbundled
// build the package exports.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const BUNDLED = new Set(['kysely', 'zod']);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/** Bundles `<dist>/src/cli/run.js` into `<dist>/cli/`. */
export async function bundleCli(dist = 'dist') {
  await build({
    entryPoints: [`${dist}/src/cli/run.js`],
    outdir: `${dist}/cli`,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    chunkNames: 'chunks/[name]-[hash]',
    external: Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name)),
    logLevel: 'warning',
  });
}

// Run directly (`node scripts/bundle-cli.mjs [dist]`): bundle that build.
if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleCli(process.argv[2]);
