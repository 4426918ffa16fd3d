/**
 * Child processes a test starts (the daemon, a CLI command, PowerDNS,
 * Postgres, Dovecot) are killed when the test file's process exits, however
 * it exits. A test that fails before its own clean-up would otherwise leave
 * the child running: its pipes keep the file's process alive, and the suite
 * waits for that file for ever (the test runner's --test-force-exit ends the
 * file, this ends what it started).
 */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone between the check and the kill.
      }
    }
  }
});

/** Registers `child` to be killed when this process exits; returns it. */
export function killedAtExit<T extends ChildProcess>(child: T): T {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}
