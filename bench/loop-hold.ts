/**
 * What the benchmarks time a step with: its wall and CPU time, and the
 * longest the event loop was held meanwhile (what a /healthz request would
 * have waited at most), seen two ways: monitorEventLoopDelay, and a
 * /healthz-like callback every 10 ms with the process's CPU over its
 * longest gap. On a shared machine a gap with little CPU in it is the
 * process waiting for a core, not the event loop busy with our work.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export interface Timed<T> {
  ms: number;
  cpuMs: number;
  loopMaxMs: number;
  probeMaxMs: number;
  probeCpuMs: number;
  value: T;
}

export async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let probeMaxMs = 0;
  let probeCpuMs = 0;
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  const probe = setInterval(() => {
    const at = performance.now();
    const cpuNow = process.cpuUsage();
    if (at - last - 10 > probeMaxMs) {
      probeMaxMs = at - last - 10;
      probeCpuMs = (cpuNow.user - lastCpu.user + cpuNow.system - lastCpu.system) / 1000;
    }
    last = at;
    lastCpu = cpuNow;
  }, 10);
  // A first sample before the work: a hold that starts at once would otherwise have nothing to be late against.
  await new Promise((resolve) => setTimeout(resolve, 15));
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await fn();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  // The timers due while a last synchronous statement ran fire now, late: let them, so that hold is counted too.
  await new Promise((resolve) => setTimeout(resolve, 15));
  clearInterval(probe);
  loop.disable();
  return { ms, cpuMs: (used.user + used.system) / 1000, loopMaxMs: loop.max / 1e6, probeMaxMs: Math.max(0, probeMaxMs), probeCpuMs, value };
}

/** The hold of a timed step, in words. */
export const stall = (t: { loopMaxMs: number; probeMaxMs: number; probeCpuMs: number }) =>
  `event loop held at most ${t.loopMaxMs.toFixed(0)} ms (a 10 ms probe ran at most ${t.probeMaxMs.toFixed(0)} ms late, ${t.probeCpuMs.toFixed(0)} ms of this process's CPU in that gap)`;
