/**
 * The daemon as an operator runs it: a child process of the real executable,
 * its output kept for assertions, plus the small waits such tests need.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { BIN, REPO_ROOT } from './cli.js';
import { killedAtExit } from './children.js';

export function startDaemonProcess(config: string, env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = killedAtExit(spawn(process.execPath, [BIN, 'daemon', '--config', config], { cwd: REPO_ROOT, env: { ...process.env, ...env } }));
  let text = '';
  child.stdout!.on('data', (b) => (text += b));
  child.stderr!.on('data', (b) => (text += b));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // A daemon told to stop (SIGTERM, SIGINT) that is still running a minute later is killed, and its output
  // says so: the test awaiting `exited` then fails on the exit code with the daemon's log, where it would
  // otherwise wait for ever (and with it the whole suite).
  const kill = child.kill.bind(child);
  child.kill = (signal?: NodeJS.Signals | number) => {
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === undefined) {
      const limit = setTimeout(() => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        text += `\n[test: the daemon did not exit within ${STOP_LIMIT_MS / 1000} s of ${signal ?? 'SIGTERM'}; killed]\n`;
        kill('SIGKILL');
      }, STOP_LIMIT_MS);
      limit.unref();
      child.once('exit', () => clearTimeout(limit));
    }
    return kill(signal);
  };
  return { child, output: () => text, exited };
}

/** How long a daemon may take to stop once told to (a clean stop takes a second or two; a tick in flight a few more). */
const STOP_LIMIT_MS = 60_000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
