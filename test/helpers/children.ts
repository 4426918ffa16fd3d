/**
 * Child processes a test starts (the daemon, a CLI command, PowerDNS,
 * Postgres, Dovecot) are killed once every test of the file is done (a
 * root-level hook of the test runner), and when its process exits. A test
 * that fails before its own clean-up would otherwise leave the child
 * running: its pipes keep the file's process alive, and the suite waits for
 * that file for ever. (Not the runner's --test-force-exit: on Node 24 it
 * ended files before all their tests had run, and counted nothing missing.)
 */
import type { ChildProcess } from 'node:child_process';
import { after } from 'node:test';

const running = new Set<ChildProcess>();

// Only in a test file's process (the runner sets NODE_TEST_CONTEXT): a benchmark importing the helpers starts no test run.
// Imported at a file's top level, so the hook is the root test's: it runs after the file's last test.
if (process.env.NODE_TEST_CONTEXT) after(killAll);
process.on('exit', killAll);

function killAll(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone between the check and the kill.
      }
    }
  }
}

/** Registers `child` to be killed when the file's tests are done, or its process exits; returns it. */
export function killedAtExit<T extends ChildProcess>(child: T): T {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}
