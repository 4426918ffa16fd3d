/**
 * Preloaded into the real command by bench/ingest.ts --build dist:
 *   node --import ./bench/ingest-cli-probe.mjs bin/dmarc-rollout.js ingest <paths>
 * so the compiled build is measured as an operator runs it (no tsx). When
 * DMARC_BENCH_BARE names a file or folder, the bare saxes pass over it runs
 * first, in this process; at exit the CPU seconds and peak RSS of the bare
 * pass and of the command (its start-up included) go to DMARC_BENCH_OUT as
 * JSON.
 */
import { statSync, writeFileSync } from 'node:fs';
import { bareFile, bareSmall } from './ingest-bare.mjs';

const out = process.env.DMARC_BENCH_OUT;
const target = process.env.DMARC_BENCH_BARE;
const cpuSeconds = (/** @type {NodeJS.CpuUsage} */ d) => (d.user + d.system) / 1e6;
let bare = 0;
let bareWall = 0;
let barePeak = 0;
if (target) {
  const c = process.cpuUsage();
  const t = performance.now();
  if (statSync(target).isDirectory()) bareSmall(target);
  else await bareFile(target);
  bare = cpuSeconds(process.cpuUsage(c));
  bareWall = (performance.now() - t) / 1000;
  barePeak = process.resourceUsage().maxRSS * 1024;
}
const start = process.cpuUsage();
const startWall = performance.now();
process.on('exit', () => {
  if (!out) return;
  const work = cpuSeconds(process.cpuUsage(start));
  writeFileSync(out, JSON.stringify({ bare, bareWall, barePeak, work, workWall: (performance.now() - startWall) / 1000, peak: process.resourceUsage().maxRSS * 1024 }));
});
