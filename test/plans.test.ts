import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listPlans, loadPlan, parsePlan, PlanError, type PlanProblem } from '../src/plans/index.js';
import { runMain, tempStore } from './helpers/cli.js';

const STAGE = 'min_days: 3, min_messages: 100, advance_max_fail_rate: 0.02';

function problemsOf(text: string, file = 'plans/bad.yaml'): PlanProblem[] {
  try {
    parsePlan(text, file);
  } catch (error) {
    assert.ok(error instanceof PlanError, `expected PlanError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('plan was accepted');
}

describe('the default plan', () => {
  const plan = loadPlan('default');

  it('walks none 100, quarantine 1 5 10 25 50 100, reject 1 5 10 25 50 100', () => {
    assert.deepEqual(
      plan.stages.map((s) => `${s.policy}:${s.pct}`),
      ['none:100', ...[1, 5, 10, 25, 50, 100].map((p) => `quarantine:${p}`), ...[1, 5, 10, 25, 50, 100].map((p) => `reject:${p}`)],
    );
  });

  it('gates the first reject step, and only that one', () => {
    assert.deepEqual(
      plan.stages.filter((s) => s.requires_approval).map((s) => `${s.policy}:${s.pct}`),
      ['reject:1'],
    );
  });

  it('never advances on a rate that would halt it, and rolls back only above the halt rate', () => {
    for (const stage of plan.stages) {
      if (stage.halt_fail_rate !== null) assert.ok(stage.halt_fail_rate > stage.advance_max_fail_rate);
      if (stage.rollback_fail_rate !== null) assert.ok(stage.rollback_fail_rate > (stage.halt_fail_rate ?? 0));
      assert.ok(stage.min_messages > 0, 'a stage that needs no mail would advance on silence');
    }
    assert.equal(plan.stages[0]!.rollback_fail_rate, null, 'p=none has nothing to roll back to');
  });
});

describe('plan validation names file, stage, field and reason', () => {
  it('a rate above 1', () => {
    const [p] = problemsOf(`stages:\n  - { policy: none, pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 2 }\n`);
    assert.deepEqual(p, {
      file: 'plans/bad.yaml',
      stage: 0,
      stageLabel: 'none:100',
      field: 'advance_max_fail_rate',
      reason: 'must be between 0 and 1',
    });
  });

  it('every problem at once, each in its stage', () => {
    const problems = problemsOf(
      [
        'stages:',
        `  - { policy: none, pct: 100, ${STAGE} }`,
        `  - { policy: quarantine, pct: 0, ${STAGE} }`,
        `  - { policy: block, pct: 10, ${STAGE} }`,
        `  - { policy: reject, pct: 10, ${STAGE}, halt_fail_rate: 0.01 }`,
        `  - { policy: reject, pct: 50, ${STAGE}, colour: red }`,
      ].join('\n'),
    );
    const summary = problems.map((p) => `${p.stage}/${p.field}`);
    assert.deepEqual(summary.sort(), ['1/pct', '2/policy', '3/halt_fail_rate', '4/(stage)'].sort());
    assert.match(problems.find((p) => p.stage === 4)!.reason, /unknown field\(s\) colour/);
    assert.match(problems.find((p) => p.stage === 3)!.reason, /at least advance_max_fail_rate \(0\.02\)/);
  });

  it('p=none with a pct below 100', () => {
    const [p] = problemsOf(`stages:\n  - { policy: none, pct: 50, ${STAGE} }\n`);
    assert.equal(p!.field, 'pct');
    assert.match(p!.reason, /p=none has no sampling/);
  });

  it('a rollback rate below the halt rate', () => {
    const [p] = problemsOf(
      `stages:\n  - { policy: quarantine, pct: 5, ${STAGE}, halt_fail_rate: 0.05, rollback_fail_rate: 0.04 }\n`,
    );
    assert.equal(p!.field, 'rollback_fail_rate');
    assert.match(p!.reason, /at least halt_fail_rate \(0\.05\)/);
  });

  it('a stage that does not tighten the one before it', () => {
    const problems = problemsOf(
      `stages:\n  - { policy: quarantine, pct: 50, ${STAGE} }\n  - { policy: quarantine, pct: 50, ${STAGE} }\n`,
    );
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.stage, 1);
    assert.match(problems[0]!.reason, /does not tighten quarantine:50/);
  });

  it('plan-level fields and an empty ladder', () => {
    const problems = problemsOf(`record_ttl: 5\nstages: []\n`);
    assert.deepEqual(problems.map((p) => [p.stage, p.field]).sort(), [
      [null, 'record_ttl'],
      [null, 'stages'],
    ]);
  });

  it('YAML that does not parse, and a duplicated key', () => {
    assert.match(problemsOf('stages: [\n')[0]!.reason, /not valid YAML/);
    const dup = problemsOf(`record_ttl: 300\nrecord_ttl: 600\nstages: []\n`);
    assert.match(dup[0]!.reason, /not valid YAML.*(unique|duplicate)/i);
  });

  it('JSON plans are read as JSON', () => {
    const plan = parsePlan(JSON.stringify({ stages: [{ policy: 'none', pct: 100, min_days: 1, min_messages: 1, advance_max_fail_rate: 0.1 }] }), 'x.json');
    assert.equal(plan.name, 'x');
    assert.equal(plan.record_ttl, 300);
    assert.match(problemsOf('{"stages": ', 'x.json')[0]!.reason, /not valid JSON/);
  });
});

describe('plans on disk and the plans commands', () => {
  it('a plan folder in DMARC_ROLLOUT_PLANS shadows the shipped plan of the same name and is listed with invalid ones', async () => {
    const { dir, db } = tempStore();
    writeFileSync(join(dir, 'default.yaml'), `stages:\n  - { policy: none, pct: 100, ${STAGE} }\n`);
    writeFileSync(join(dir, 'broken.yaml'), `stages:\n  - { policy: none, pct: 100, ${STAGE}, requires_approval: maybe }\n`);
    const listings = listPlans([dir]);
    assert.deepEqual(listings.map((l) => [l.name, l.plan !== null]), [['broken', false], ['default', true]]);

    const list = await runMain(['plans', 'list', '--json'], { DMARC_ROLLOUT_DB: db, DMARC_ROLLOUT_PLANS: dir });
    assert.equal(list.code, 1, 'an invalid plan in the path makes list fail');
    const rows: Array<{ name: string; valid: boolean; shadowed: boolean; problems: Array<{ field: string }> }> = JSON.parse(list.stdout).plans;
    assert.deepEqual(rows.map((r) => [r.name, r.valid, r.shadowed]), [['broken', false, false], ['default', true, false], ['default', true, true]]);
    assert.equal(rows[0]!.problems[0]!.field, 'requires_approval');
  });

  it('plans validate exits 0 on the default plan and 1 with the problems on a bad one', async () => {
    const { dir, db } = tempStore();
    const ok = await runMain(['plans', 'validate', 'data/plans/default.yaml'], { DMARC_ROLLOUT_DB: db });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /valid, 13 stages/);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `stages:\n  - { policy: none, pct: 100, ${STAGE} }\n  - { policy: reject, pct: 101, ${STAGE} }\n`);
    const res = await runMain(['plans', 'validate', bad], { DMARC_ROLLOUT_DB: db });
    assert.equal(res.code, 1);
    assert.equal(res.stderr.trim(), `${bad}: stage 1 (policy "reject", pct 101): pct: must be 1 to 100`);
  });
});
