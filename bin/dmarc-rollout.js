#!/usr/bin/env node
// The one executable. It runs the compiled command line in dist/, which
// `npm ci` builds (the `prepare` script) and `npm run build` rebuilds. The
// TypeScript sources run through tsx only in development and tests
// (`npm run dev -- <args>`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/run.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('dmarc-rollout: dist/ is missing: run `npm run build` (or `npm ci`) in the package folder first\n');
  process.exit(3);
}
await import(entry.href);
