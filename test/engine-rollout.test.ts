/**
 * 150 simulated days of a small fleet in the test world (test/helpers/world.ts)
 * on SQLite, then Postgres, with reports generated and ingested day by day as
 * receivers would send them (each arriving at noon the next day), and the
 * in-memory zone. Exercises the whole engine path: ingest, measure, decide,
 * apply, verify, operator actions.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { DomainTickResult } from '../src/engine/tick.js';
import { approve, classifySource } from '../src/fleet/actions.js';
import { loadPlan } from '../src/plans/index.js';
import { storeDialects } from './helpers/dialects.js';
import { brokenRow, cleanRow, spoofRow, unalignedEspRow, type GeneratedReport } from './helpers/reports.js';
import { createWorld } from './helpers/world.js';

const DAY_MS = 86_400_000;
const START = Date.parse('2026-01-05T00:00:00Z');
const DAYS = 150;
const BREAK_DAY = 50;
const ALLOWLIST_DAY = 40;
const plan = loadPlan('default');
const isoDay = (d: number) => new Date(START + d * DAY_MS).toISOString().slice(0, 10);
const stageOf = (index: number) => `${plan.stages[index]!.policy}:${plan.stages[index]!.pct}`;

/** The mail each domain sends on day d, as two reporters see it. */
function reportsFor(d: number): GeneratedReport[] {
  const day = isoDay(d);
  const reports: GeneratedReport[] = [];
  const both = (domain: string, rows: (share: number) => GeneratedReport['rows']) => {
    reports.push({ reporter: 'google.com', domain, day, rows: rows(0.6) }, { reporter: 'Yahoo', domain, day, rows: rows(0.4) });
  };
  both('clean.example', (s) => [cleanRow('clean.example', '192.0.2.10', Math.round(500 * s)), spoofRow('clean.example', '203.0.113.66', Math.round(120 * s))]);
  both('breaks.example', (s) =>
    d < BREAK_DAY
      ? [cleanRow('breaks.example', '192.0.2.20', Math.round(500 * s))]
      : [cleanRow('breaks.example', '192.0.2.20', Math.round(150 * s)), brokenRow('breaks.example', '192.0.2.20', Math.round(350 * s))],
  );
  both('esp.example', (s) => [
    cleanRow('esp.example', '192.0.2.30', Math.round(4000 * s)),
    unalignedEspRow('esp.example', '198.51.100.7', Math.round(30 * s), 'mailer-esp.example'),
  ]);
  // silent.example sends nothing that any receiver reports.
  return reports;
}

for (const dialect of storeDialects()) describe(`150 simulated days of a fleet on ${dialect.name}`, () => {
  const history = new Map<string, Array<{ day: number; result: DomainTickResult }>>();
  const stageIndexOn = new Map<string, number[]>();

  before(async () => {
    const w = await createWorld({ dialect, start: new Date(START), plan, tickHours: [12] });
    w.dns.set('_dmarc.clean.example', { txt: ['v=DMARC1; p=none; rua=mailto:dmarc@clean.example; fo=1'], ttl: 3600 });
    await w.enrol(['clean.example', 'breaks.example', 'silent.example', 'esp.example']);
    // Each day's reports arrive at noon the next day, just before that day's tick.
    for (let d = 0; d < DAYS - 1; d++) await w.sendReports(reportsFor(d), 12);
    const onTick = async (now: Date, results: DomainTickResult[]) => {
      const d = Math.round((now.getTime() - START - 12 * 3600_000) / DAY_MS);
      for (const result of results) {
        if (result.error) assert.fail(`${result.domain} on day ${d}: ${result.error}`);
        if (!history.has(result.domain)) history.set(result.domain, []);
        history.get(result.domain)!.push({ day: d, result });
        // The operator approves a gated step as soon as it is asked for.
        if (result.decision?.action === 'await-approval') await approve(w.store, result.domain, () => plan, { actor: 'test:operator', now });
      }
      const rows = await w.store.db.selectFrom('domains').select(['domain', 'stage_index']).execute();
      for (const row of rows) {
        if (!stageIndexOn.has(row.domain)) stageIndexOn.set(row.domain, []);
        stageIndexOn.get(row.domain)!.push(row.stage_index);
      }
    };
    try {
      await w.runUntil(new Date(START + ALLOWLIST_DAY * DAY_MS + 11 * 3600_000), onTick);
      await classifySource(w.store, 'esp.example', 'dkim:mailer-esp.example', 'authorised', { actor: 'test:operator', now: w.now() }, 'our newsletter ESP');
      await w.runUntil(new Date(START + (DAYS - 1) * DAY_MS + 12 * 3600_000), onTick);
      assert.equal(await w.dns.readTxt('_dmarc.clean.example').then((t) => t[0]), 'v=DMARC1; p=reject; rua=mailto:dmarc@clean.example; fo=1');
    } finally {
      await w.close();
    }
  });

  it('a clean domain reaches reject:100, in no fewer days than the plan’s dwell times add up to', () => {
    const stages = stageIndexOn.get('clean.example')!;
    const lastIndex = plan.stages.length - 1;
    const reachedOn = stages.indexOf(lastIndex);
    assert.ok(reachedOn > 0, `clean.example ended at ${stageOf(stages[stages.length - 1]!)}`);
    const dwellBeforeLast = plan.stages.slice(0, lastIndex).reduce((sum, s) => sum + s.min_days, 0);
    assert.ok(reachedOn >= dwellBeforeLast, `reached reject:100 on day ${reachedOn}, before the ${dwellBeforeLast} days of dwell`);
    // Every step was one stage forward: nothing was skipped.
    for (let d = 1; d < stages.length; d++) assert.ok(stages[d]! - stages[d - 1]! <= 1, `jumped on day ${d}`);
    const approvals = history.get('clean.example')!.filter((h) => h.result.decision?.action === 'await-approval');
    assert.equal(approvals.length, 1, 'the gated reject:1 step asked for approval once');
    assert.equal(approvals[0]!.result.decision!.to, 'reject:1');
  });

  it('spoofing on the clean domain is measured and shown but never held it back', () => {
    const decisions = history.get('clean.example')!.map((h) => h.result.decision).filter((d) => d && d.action === 'advance');
    assert.ok(decisions.length >= 10);
    const failingChecks = decisions.flatMap((d) => d!.checks.filter((c) => c.outcome !== 'passed'));
    assert.deepEqual(failingChecks, []);
  });

  it('a domain whose authorised sender starts failing stops and never advances past where it was', () => {
    const stages = stageIndexOn.get('breaks.example')!;
    const atBreak = stages[BREAK_DAY]!;
    assert.ok(atBreak >= 1, `breaks.example should have left none before day ${BREAK_DAY}, was at ${stageOf(atBreak)}`);
    assert.ok(Math.max(...stages.slice(BREAK_DAY)) <= atBreak, 'advanced after its sender broke');
    const stops = history.get('breaks.example')!.filter((h) => h.day >= BREAK_DAY && ['rollback', 'halt'].includes(h.result.decision?.action ?? ''));
    assert.ok(stops.length >= 1, 'neither rolled back nor halted');
    const first = stops[0]!.result.decision!;
    // The whole window's rate or that of its latest complete day (rule suffix -recent), whichever was surely over.
    const rateCheck = first.checks.find((c) => c.rule.startsWith(first.action === 'rollback' ? 'rollback-rate' : 'halt-rate') && c.outcome === 'failed')!;
    assert.equal(rateCheck.outcome, 'failed');
    assert.ok(Number(rateCheck.measured) > Number(rateCheck.threshold));
    assert.ok(stops[0]!.day <= BREAK_DAY + 4, `took until day ${stops[0]!.day} to react`);
  });

  it('a domain with no reports never leaves none', () => {
    assert.ok(stageIndexOn.get('silent.example')!.every((i) => i === 0));
    const holds = history.get('silent.example')!.filter((h) => h.result.decision?.action === 'hold');
    assert.ok(holds.length > 100);
    const messages = holds[holds.length - 1]!.result.decision!.checks.find((c) => c.rule === 'min-messages')!;
    assert.deepEqual([messages.outcome, messages.measured], ['inconclusive', 0]);
  });

  it('an ESP sending unaligned mail holds its domain until it is allowlisted, then the domain goes on', () => {
    const stages = stageIndexOn.get('esp.example')!;
    const early = history.get('esp.example')!.find((x) => x.result.decision?.action === 'advance');
    assert.ok(stages.slice(0, ALLOWLIST_DAY).every((i) => i === 0), `advanced while the ESP was unclassified: day ${early?.day} ${JSON.stringify(early?.result.decision?.checks)}`);
    const held = history.get('esp.example')!.find((h) => h.day === ALLOWLIST_DAY - 1)!.result.decision!;
    const check = held.checks.find((c) => c.rule === 'unaligned-sender')!;
    assert.equal(check.outcome, 'failed');
    assert.match(check.detail, /198\.51\.100\.7 dkim:mailer-esp\.example/);
    const h = history.get('esp.example')!.filter((x) => x.day > ALLOWLIST_DAY && x.result.decision?.action === 'hold').slice(-1)[0];
    assert.ok(stages[stages.length - 1]! >= 7, `esp.example only reached ${stageOf(stages[stages.length - 1]!)} after allowlisting: ${h?.result.decision?.summary}`);
  });
});
