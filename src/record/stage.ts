/**
 * Rollout stages: a policy and the share of failing mail it should reach.
 * A stage is written as a label such as `quarantine:5` in plans, the store
 * and on the command line; this module is the one place that reads and
 * writes those labels.
 */
import { AppError } from '../errors.js';
import { isPolicy, type Policy } from './policy.js';

/** Where a domain's rollout stands: `{ policy: 'quarantine', pct: 5 }`. */
export interface StageTarget {
  policy: Policy;
  /** Percent of failing mail the policy is meant for, an integer from 1 to 100. */
  pct: number;
}

/**
 * Why `stage` is not a stage, or null when it is. `none` reaches all mail or
 * nothing, so only `none:100` exists; `pct=0` would apply the policy to no
 * mail at all, which `none:100` already says without misleading anyone.
 */
export function stageProblem(stage: StageTarget): string | null {
  if (!isPolicy(stage.policy)) {
    return `unknown policy ${JSON.stringify(stage.policy)}: use none, quarantine or reject`;
  }
  if (!Number.isInteger(stage.pct) || stage.pct < 1 || stage.pct > 100) {
    return `pct must be an integer from 1 to 100, got ${String(stage.pct)}`;
  }
  if (stage.policy === 'none' && stage.pct !== 100) {
    return `none:${stage.pct} is not a stage: p=none applies to all mail, so the only none stage is none:100`;
  }
  return null;
}

const LABEL = /^(none|quarantine|reject)(?::(0|[1-9][0-9]*))?$/;

/**
 * Reads a stage label: `policy:pct`, or just `policy` for 100%.
 * Labels are strict (lowercase, no spaces, no leading zeros) so that one
 * stage has one spelling wherever it is stored.
 * @throws AppError invalid naming what is wrong with the label.
 */
export function parseStageLabel(label: string): StageTarget {
  const match = LABEL.exec(label);
  if (!match) {
    throw new AppError(
      'invalid',
      `invalid stage ${JSON.stringify(label)}: expected <policy>:<pct> with policy none, quarantine or reject and pct 1-100, e.g. quarantine:5`,
    );
  }
  const stage: StageTarget = { policy: match[1] as Policy, pct: match[2] === undefined ? 100 : Number(match[2]) };
  const problem = stageProblem(stage);
  if (problem) throw new AppError('invalid', `invalid stage ${JSON.stringify(label)}: ${problem}`);
  return stage;
}

/**
 * The canonical label of a stage, always with its percentage: `reject:100`.
 * @throws AppError invalid when `stage` is not a stage, so no invalid label is ever stored.
 */
export function stageLabel(stage: StageTarget): string {
  const problem = stageProblem(stage);
  if (problem) throw new AppError('invalid', `invalid stage: ${problem}`);
  return `${stage.policy}:${stage.pct}`;
}
