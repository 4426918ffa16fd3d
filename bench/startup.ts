/**
 * Start-up time of the installed command against `node -e 0`, measured in
 * the same run: `--version`, `record check` and `status` (on a store of its
 * own, created before timing). It runs the compiled build (`npm run
 * bench:startup` builds it first), the way users run it, interleaving the
 * commands so a busy machine slows all of them alike, and prints for each the
 * median CPU time (user + system, as the process itself counts it at exit)
 * and wall time, and their ratios to node's own start. Goals: 3x, 4x, 5x.
 * CPU time is the steadier figure on a shared machine; both are printed.
 *
 *   npm run bench:startup [-- --runs 21] [-- --bin <another install>/bin/dmarc-rollout.js]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const binFlag = process.argv.indexOf('--bin');
/** The executable measured: this checkout's, or another install's (`--bin <path>/bin/dmarc-rollout.js`). */
const BIN = binFlag === -1 ? join(ROOT, 'bin/dmarc-rollout.js') : resolve(process.argv[binFlag + 1]!);
const runsFlag = process.argv.indexOf('--runs');
const RUNS = runsFlag === -1 ? 15 : Number(process.argv[runsFlag + 1]);

interface Case {
  name: string;
  args: string[];
  /** The ratio to `node -e 0` the command should stay within. */
  goal: number | null;
}

const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-startup-'));
const env = { ...process.env, DMARC_ROLLOUT_DB: join(dir, 'store.sqlite') };
const cases: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'], goal: null },
  { name: '--version', args: [BIN, '--version'], goal: 3 },
  { name: 'record check', args: [BIN, 'record', 'check', 'v=DMARC1; p=quarantine; pct=5; rua=mailto:dmarc@example.com'], goal: 4 },
  { name: 'status', args: [BIN, 'status'], goal: 5 },
];

/** Loaded first into every run (the baseline too): at exit, the process's own CPU time on fd 3. */
const CPU_AT_EXIT =
  "data:text/javascript,import{writeSync}from'node:fs';process.on('exit',()=>{const u=process.cpuUsage();writeSync(3,String((u.user+u.system)/1000))})";

function timeOnce(args: string[]): { wall: number; cpu: number } {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, ['--import', CPU_AT_EXIT, ...args], { env, stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  const wall = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
  return { wall, cpu: Number(result.output[3]!.toString()) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

try {
  // The first `status` creates and migrates the store; time the ones after, as an operator sees them.
  for (const c of cases) timeOnce(c.args);
  const samples = new Map<string, { wall: number[]; cpu: number[] }>(cases.map((c) => [c.name, { wall: [], cpu: [] }]));
  for (let i = 0; i < RUNS; i++) {
    for (const c of cases) {
      const t = timeOnce(c.args);
      samples.get(c.name)!.wall.push(t.wall);
      samples.get(c.name)!.cpu.push(t.cpu);
    }
  }

  const base = samples.get('node -e 0')!;
  const [baseCpu, baseWall] = [median(base.cpu), median(base.wall)];
  console.log(`start-up, median of ${RUNS} runs each (node ${process.version}, compiled build):`);
  console.log(`  ${'command'.padEnd(14)} ${'cpu ms'.padStart(8)} ${'ratio'.padStart(6)}  ${'wall ms'.padStart(8)} ${'ratio'.padStart(6)}  goal`);
  let missed = 0;
  for (const c of cases) {
    const [cpu, wall] = [median(samples.get(c.name)!.cpu), median(samples.get(c.name)!.wall)];
    const [cpuRatio, wallRatio] = [cpu / baseCpu, wall / baseWall];
    const verdict =
      c.goal === null ? 'baseline' : `${c.goal}x: cpu ${cpuRatio <= c.goal ? 'within' : 'OVER'}, wall ${wallRatio <= c.goal ? 'within' : 'OVER'}`;
    if (c.goal !== null && (cpuRatio > c.goal || wallRatio > c.goal)) missed++;
    console.log(
      `  ${c.name.padEnd(14)} ${cpu.toFixed(1).padStart(8)} ${`${cpuRatio.toFixed(2)}x`.padStart(6)}  ${wall.toFixed(1).padStart(8)} ${`${wallRatio.toFixed(2)}x`.padStart(6)}  ${verdict}`,
    );
  }
  if (missed > 0) console.log(`${missed} command(s) over their goal`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
