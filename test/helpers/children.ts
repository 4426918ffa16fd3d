/**
 * Child processes a test starts are killed when they would otherwise outlive
 * it. A test that fails before its own clean-up would leave the child
 * running: its pipes keep the file's process alive, and the suite waits for
 * that file for ever. (Not the runner's --test-force-exit: on Node 24 it
 * ended files before all their tests had run, and counted nothing missing.)
 * - What a test starts itself (the daemon, a command): killed once every
 *   test of the file is done (a root-level hook of the test runner).
 * - The servers the helpers start in `before` hooks (Postgres, PowerDNS,
 *   Dovecot): their own `after` hooks stop them, after the stores using them
 *   are closed; killed earlier, the stores' open connections fail after the
 *   tests ended and fail the file. They are killed when the process exits.
 */
import type { ChildProcess } from 'node:child_process';
import { after } from 'node:test';

const running = new Set<ChildProcess>();
const servers = new Set<ChildProcess>();

// Only in a test file's process (the runner sets NODE_TEST_CONTEXT): a benchmark importing the helpers starts no test run.
// Imported at a file's top level, so the hook is the root test's: it runs after the file's last test.
if (process.env.NODE_TEST_CONTEXT) after(() => killAll(running));
process.on('exit', () => {
  killAll(running);
  killAll(servers);
});

function killAll(children: Set<ChildProcess>): void {
  for (const child of children) {
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

/** Registers a server a helper starts and stops (see above) to be killed when the process exits; returns it. */
export function serverKilledAtExit<T extends ChildProcess>(child: T): T {
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  return child;
}
