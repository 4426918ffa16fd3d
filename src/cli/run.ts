/**
 * The process door of the command line: runs main() on this process's
 * arguments and sets the exit code. A reader that goes away early
 * (`dmarc-rollout status | head -1`) ends the command quietly, as it does
 * for any Unix tool, instead of with an EPIPE stack trace.
 */
import { main } from './main.js';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    // Nobody reads what comes next: stop here, saying nothing.
    if (error.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw error;
  });
}

process.exitCode = await main(process.argv);
