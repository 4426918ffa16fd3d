/**
 * systemd's watchdog (WatchdogSec=) without native code: when systemd asks
 * for keep-alives (WATCHDOG_USEC and NOTIFY_SOCKET set), the daemon runs
 * `systemd-notify WATCHDOG=1` at half the interval, but only while its
 * schedules are healthy (health.ts). A stalled tick stops the keep-alives and
 * systemd restarts the service. Node has no Unix datagram sockets, hence the
 * helper binary; the unit needs NotifyAccess=all for a child's message.
 */
import { execFile } from 'node:child_process';

export interface Watchdog {
  stop(): void;
}

export function startSystemdWatchdog(
  healthy: () => boolean,
  opts: { env?: NodeJS.ProcessEnv; onError?: (error: Error) => void; command?: string } = {},
): Watchdog | null {
  const env = opts.env ?? process.env;
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.NOTIFY_SOCKET || !Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return null;
  const command = opts.command ?? 'systemd-notify';
  const ping = () => {
    if (!healthy()) return;
    execFile(command, [`--pid=${process.pid}`, 'WATCHDOG=1'], { env, timeout: 5_000 }, (error) => {
      if (error) opts.onError?.(error);
    });
  };
  ping();
  const timer = setInterval(ping, Math.max(1000, Math.floor(usec / 1000 / 2)));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
