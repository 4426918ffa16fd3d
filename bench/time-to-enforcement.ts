/**
 * Time to enforcement: how many days a clean domain on the default plan takes
 * to reach reject:100, replayed by `simulate` (the daemon's tick, reports
 * visible only once they arrive), against the plan's own floor: the sum of
 * its min_days up to reject:100. The ratio says what the engine adds on top
 * of the dwell the plan asks for; the target is at most one day per step.
 *
 * Runs a few report delays: every receiver one day after its period ends
 * (simulate's default), a realistic mix of 6 to 30 hours with a CET receiver,
 * and a mix of one to two days. Each is ticked hourly, as the daemon's default
 * schedule does.
 *
 * What bounds it: a stage's last day is complete when its slowest regular
 * receiver's report is in, and the next stage is judged from the midnight its
 * change lands after (or just before, within the plan's window grace). So a
 * step costs its min_days plus one day while every report arrives within a
 * day of its period's end, and plus two when the slowest takes 24-48 hours.
 *
 * Run: npm run bench:enforcement
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulate } from '../src/app/simulate.js';
import { loadPlan } from '../src/plans/index.js';
import { own, reportXml, spoof } from '../test/helpers/traffic.js';

const plan = loadPlan('default');
const DOMAIN = 'clean.example';
const START = Date.parse('2026-03-01T00:00:00Z');
const DAYS = 110;
const lastIndex = plan.stages.length - 1;
const dwell = plan.stages.slice(0, lastIndex).reduce((sum, s) => sum + s.min_days, 0);
const steps = lastIndex;

interface Receiver {
  org: string;
  share: number;
  delayHours: number;
  utcOffsetHours?: number;
}

function writeReports(dir: string, receivers: Receiver[]): void {
  for (let d = 0; d < DAYS; d++) {
    for (const r of receivers) {
      const begin = (START + d * 86_400_000) / 1000 - (r.utcOffsetHours ?? 0) * 3600;
      const day = new Date(START + d * 86_400_000).toISOString().slice(0, 10);
      const rows = [own(DOMAIN, '192.0.2.10', Math.round(3000 * r.share)), spoof(DOMAIN, '203.0.113.66', Math.round(200 * r.share))];
      writeFileSync(join(dir, `${r.org}-${day}.xml`), reportXml(r.org, `${r.org}-${day}`, DOMAIN, begin, begin + 86_399, rows));
    }
  }
}

const scenarios: Array<{ name: string; receivers: Receiver[] }> = [
  { name: 'one receiver, 1 day after the period ends', receivers: [{ org: 'google.com', share: 1, delayHours: 24 }] },
  {
    name: 'five receivers, 6-30 hours, one on a CET day',
    receivers: [
      { org: 'google.com', share: 0.45, delayHours: 6 },
      { org: 'Yahoo', share: 0.2, delayHours: 20 },
      { org: 'Mail.Ru', share: 0.15, delayHours: 10, utcOffsetHours: 1 },
      { org: 'Enterprise Outlook', share: 0.12, delayHours: 30 },
      { org: 'comcast.net', share: 0.08, delayHours: 16 },
    ],
  },
  {
    name: 'three receivers, 1-2 days',
    receivers: [
      { org: 'google.com', share: 0.6, delayHours: 24 },
      { org: 'Yahoo', share: 0.3, delayHours: 36 },
      { org: 'slow.example', share: 0.1, delayHours: 48 },
    ],
  },
];

console.log(`default plan: ${steps} steps to reject:100, ${dwell} days of dwell (min_days); target at most ${dwell + steps} days (dwell + 1 per step)`);
for (const scenario of scenarios) {
  const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-enforcement-'));
  try {
    writeReports(dir, scenario.receivers);
    const delays = Object.fromEntries(scenario.receivers.map((r) => [r.org, r.delayHours * 3600]));
    const started = performance.now();
    const result = await simulate({ domains: [DOMAIN], plan, reportPaths: [dir], reporterDelaySeconds: delays, approveAll: true, days: DAYS });
    const seconds = (performance.now() - started) / 1000;
    const outcome = result.domains[0]!;
    const days = outcome.daysToLastStage;
    console.log(
      `${scenario.name}: ${days === null ? `did not reach reject:100 (ended at ${outcome.finalStage}, ${outcome.finalState})` : `reject:100 on day ${days}`}` +
        (days === null ? '' : `; ${(days / dwell).toFixed(2)}x the dwell, ${((days - dwell) / steps).toFixed(2)} day(s) per step over it`) +
        ` (replayed in ${seconds.toFixed(1)} s)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
