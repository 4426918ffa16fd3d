/**
 * `simulate` as an operator runs it: the real executable on a folder of
 * reports for three domains at once, each receiver with its own delay, ticks
 * at chosen hours and a scripted person who allowlists a forgotten ESP on a
 * given day and resumes a halted domain two days later. The JSON lines are
 * the contract.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { runCli, tempStore } from './helpers/cli.js';
import { broken, own, reportXml, type TrafficRow } from './helpers/traffic.js';

const START = Date.parse('2026-05-01T00:00:00Z');
const DAYS = 34;
const iso = (d: number) => new Date(START + d * 86_400_000).toISOString().slice(0, 10);
const esp = (domain: string, count: number): TrafficRow => ({
  ip: '198.51.100.7',
  count,
  headerFrom: domain,
  dkim: 'fail',
  spf: 'fail',
  dkimDomain: 'esp.example',
  dkimResult: 'pass',
  spfDomain: 'bounce.esp.example',
  spfResult: 'pass',
});

interface Step {
  domain: string;
  at: string;
  day: string;
  stage: string;
  action: string;
  to?: string;
  reasons: string[];
}

describe('simulate: several domains, receivers with their own delays, a scripted person', () => {
  let dir: string;
  let db: string;
  before(() => {
    ({ dir, db } = tempStore());
    mkdirSync(join(dir, 'reports'));
    const mail: Record<string, (d: number) => TrafficRow[]> = {
      'calm.example': () => [own('calm.example', '192.0.2.1', 1000)],
      // A forgotten ESP, unaligned until day 6, when the person allowlists it and has it sign as the domain.
      'esp-user.example': (d) => [own('esp-user.example', '192.0.2.2', 1000), d < 6 ? esp('esp-user.example', 30) : { ...own('esp-user.example', '198.51.100.7', 30), dkimDomain: 'esp-user.example' }],
      // Its own server's signing breaks on days 22-24 (half its mail fails), then is fixed.
      'breaks.example': (d) => (d >= 22 && d <= 24 ? [own('breaks.example', '192.0.2.3', 1000), broken('breaks.example', '192.0.2.3', 1000)] : [own('breaks.example', '192.0.2.3', 2000)]),
    };
    for (let d = 0; d < DAYS; d++) {
      const begin = (START + d * 86_400_000) / 1000;
      for (const [domain, rows] of Object.entries(mail)) {
        for (const [org, share] of [['google.com', 0.7], ['Yahoo', 0.3]] as const) {
          const scaled = rows(d).map((r) => ({ ...r, count: Math.round(r.count * share) }));
          writeFileSync(join(dir, 'reports', `${org}-${domain}-${iso(d)}.xml`), reportXml(org, `${org}-${domain}-${iso(d)}`, domain, begin, begin + 86_399, scaled));
        }
      }
    }
  });

  it('replays the three together, on arrival, with the person acting when the script says', async () => {
    const res = await runCli(
      [
        'simulate',
        '--reports', join(dir, 'reports'),
        '--domain', 'calm.example', 'esp-user.example', 'breaks.example',
        '--delay', 'google.com=0.25', '--delay', 'Yahoo=1',
        '--tick-hours', '0,12',
        '--allow', `dkim:esp.example@${iso(6)}`,
        '--resume-after', '48',
        '--days', String(DAYS),
        '--json',
      ],
      { DMARC_ROLLOUT_DB: db },
    );
    assert.equal(res.code, 0, res.stderr);
    const steps: Step[] = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const of = (domain: string) => steps.filter((s) => s.domain === domain);
    assert.deepEqual([...new Set(steps.map((s) => s.domain))].sort(), ['breaks.example', 'calm.example', 'esp-user.example']);

    // Yahoo's report for day 13 (the 14th day) arrives a day after it ends: the 00:17 tick of day 15 advances none:100.
    const calmAdvance = of('calm.example').find((s) => s.action === 'advance')!;
    assert.deepEqual([calmAdvance.at, calmAdvance.to], [`${iso(15)}T00:17:00.000Z`, 'quarantine:1']);
    // Before that, the hold names what the day waits for.
    assert.ok(of('calm.example').some((s) => s.reasons.some((r) => /waiting for Yahoo's report for 2026-05-\d\d, usually 1 day late/.test(r))));

    // The ESP holds its domain from its first report until the person allowlists it on day 6.
    const espSteps = of('esp-user.example');
    const blocked = espSteps.find((s) => s.action === 'hold' && /unaligned sender/.test(s.reasons.join(' ')));
    assert.ok(blocked, 'the unaligned ESP never held its domain');
    assert.ok(blocked.at < `${iso(6)}T00:17:00.000Z`);
    assert.match(blocked.reasons.join(' '), /unaligned sender\(s\) that enforcement would break: 198\.51\.100\.7 dkim:esp\.example/);
    const allowed = espSteps.find((s) => s.action === 'person')!;
    assert.equal(allowed.at, `${iso(6)}T00:17:00.000Z`);
    assert.match(allowed.reasons[0]!, /dkim:esp\.example allowlisted for esp-user\.example/);
    const espAdvance = espSteps.find((s) => s.action === 'advance')!;
    assert.ok(espAdvance.at > allowed.at);
    assert.equal(espSteps.filter((s) => s.action === 'hold' && s.at > allowed.at).some((s) => /unaligned sender/.test(s.reasons.join(' '))), false);

    // breaks.example rolls back once, halts, and the person resumes it 48 hours later on a fresh window.
    const b = of('breaks.example');
    const rollbacks = b.filter((s) => s.action === 'rollback');
    assert.equal(rollbacks.length, 1, 'one rollback, no cascade');
    const halted = b.find((s) => s.action === 'halted')!;
    assert.match(halted.reasons[0]!, /rolled back to .* and halted for a person/);
    const resumed = b.find((s) => s.action === 'person' && /resumed/.test(s.reasons[0]!))!;
    assert.equal(Date.parse(resumed.at) - Date.parse(halted.at), 48 * 3600_000);
    assert.match(resumed.reasons[0]!, /resumed \(was halted\); judged on a fresh window from \d{4}-\d\d-\d\d: the days before no longer count/);
    assert.equal(b.filter((s) => s.action === 'halted').length, 1, 'the fresh window does not halt again on the broken days');
  });

  it('refuses a bad --delay, --tick-hours and --allow with the reason', async () => {
    const delay = await runCli(['simulate', '--domain', 'calm.example', '--delay', 'soon'], { DMARC_ROLLOUT_DB: db });
    assert.equal(delay.code, 1);
    assert.match(delay.stderr, /--delay "soon": expected days \(1\.5\) or reporter=days \(google\.com=1\)/);
    const hours = await runCli(['simulate', '--domain', 'calm.example', '--tick-hours', '0,24'], { DMARC_ROLLOUT_DB: db });
    assert.equal(hours.code, 1);
    assert.match(hours.stderr, /--tick-hours "0,24": expected UTC hours 0-23/);
    const allow = await runCli(['simulate', '--domain', 'calm.example', '--allow', 'not-a-source'], { DMARC_ROLLOUT_DB: db });
    assert.equal(allow.code, 1);
    assert.match(allow.stderr, /--allow "not-a-source": .*not an IP, CIDR/);
  });
});
