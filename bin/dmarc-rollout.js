#!/usr/bin/env node
// The one executable. It runs the compiled command line in dist/cli/ (tsc's
// output, bundled for start-up by scripts/bundle-cli.mjs), which `npm ci`
// builds (the `prepare` script) and `npm run build` rebuilds. The
// TypeScript sources run through tsx only in development and tests
// (`npm run dev -- <args>`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('dmarc-rollout: dist/ is missing: run `npm run build` (or `npm ci`) in the package folder first\n');
  process.exit(1);
}
await import(entry.href);
