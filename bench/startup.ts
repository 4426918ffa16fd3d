/**
 * Start-up time of the installed command against `node -e 0`, measured in
 * the same run: `--version`, `record check` and `status` (on a store of its
 * own, created before timing). It runs the compiled build (`npm run
 * bench:startup` builds it first), the way users run it, interleaving the
 * commands so a busy machine slows all of them alike, and prints the median
 * wall time of each and its ratio to node's own start. Goals: 3x, 4x, 5x.
 *
 *   npm run bench:startup [-- --runs 21]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const BIN = join(ROOT, 'bin/dmarc-rollout.js');
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

function timeOnce(args: string[]): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

try {
  // The first `status` creates and migrates the store; time the ones after, as an operator sees them.
  for (const c of cases) timeOnce(c.args);
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let i = 0; i < RUNS; i++) for (const c of cases) samples.get(c.name)!.push(timeOnce(c.args));

  const baseline = median(samples.get('node -e 0')!);
  console.log(`start-up, median of ${RUNS} runs each (node ${process.version}, compiled build):`);
  let missed = 0;
  for (const c of cases) {
    const ms = median(samples.get(c.name)!);
    const ratio = ms / baseline;
    const verdict = c.goal === null ? 'baseline' : ratio <= c.goal ? `within ${c.goal}x` : `OVER the ${c.goal}x goal`;
    if (c.goal !== null && ratio > c.goal) missed++;
    console.log(`  ${c.name.padEnd(14)} ${ms.toFixed(1).padStart(7)} ms  ${ratio.toFixed(2).padStart(5)}x  ${verdict}`);
  }
  if (missed > 0) console.log(`${missed} command(s) over their goal`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
