/**
 * The process door of the command line: runs main() on this process's
 * arguments and sets the exit code. A reader that goes away early
 * (`dmarc-rollout status | head -1`) ends the command quietly, as it does
 * for any Unix tool, instead of with an EPIPE stack trace.
 *
 * On Node 22.1 and later, V8's compiled code is kept in the user's cache
 * folder ($XDG_CACHE_HOME or ~/.cache, dmarc-rollout/compile), so the next
 * command skips compiling what it loads. Where that folder cannot be
 * written (a service user without a home, a read-only home) nothing is
 * written and nothing fails; NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
import * as nodeModule from 'node:module';
import { compileCacheDir } from '../paths.js';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    // Nobody reads what comes next: stop here, saying nothing.
    if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw error;
  });
}

/** `module.enableCompileCache`, which Node 20 lacks. */
const enableCompileCache = (nodeModule as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
if (enableCompileCache && !process.env.NODE_DISABLE_COMPILE_CACHE) {
  try {
    enableCompileCache(compileCacheDir());
  } catch {
    // No home folder at all: run without the cache.
  }
}

// Loaded after the cache is on, so the command's modules are compiled through it.
const { main } = await import('./main.js');
process.exitCode = await main(process.argv);
