/**
 * A plan given to enrolment by file: validated, then registered under its
 * name in the first plan folder (DMARC_ROLLOUT_PLANS, else the package's
 * data/plans), so every later reader (tick, status, the page) finds it by the
 * name the domain stores. A different plan already registered under the same
 * name is never overwritten: the file is refused with the fix.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { errorMessage } from '../errors.js';
import { loadPlan, loadPlanFile, planDirectories, PlanError, type Plan } from '../plans/index.js';
import { ActionError } from './actions.js';

const PLAN_EXTENSIONS = ['.yaml', '.yml', '.json'];

/** True when `nameOrPath` names a file rather than a registered plan. */
export function isPlanFile(nameOrPath: string): boolean {
  return PLAN_EXTENSIONS.includes(extname(nameOrPath)) || nameOrPath.includes('/');
}

/**
 * The plan to enroll into: a registered plan by name, or a plan file,
 * validated and registered by its name.
 * @throws ActionError `invalid` (field `plan`) naming the file, the problems and the fix.
 */
export function planForEnrolment(nameOrPath: string, env: NodeJS.ProcessEnv = process.env): { plan: Plan; registered: string | null } {
  const dirs = planDirectories(env);
  if (!isPlanFile(nameOrPath)) {
    try {
      return { plan: loadPlan(nameOrPath, dirs), registered: null };
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      throw new ActionError(`plan ${nameOrPath} cannot be used:\n${error.message}\n(see dmarc-rollout plans list; a plan file is given by path, e.g. --plan ./my-plan.yaml)`, 'invalid', 'plan');
    }
  }
  let plan: Plan;
  try {
    plan = loadPlanFile(nameOrPath);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    throw new ActionError(`plan file ${nameOrPath} cannot be used:\n${error.message}`, 'invalid', 'plan');
  }
  const text = readFileSync(nameOrPath, 'utf8');
  let existing: Plan | null = null;
  try {
    existing = loadPlan(plan.name, dirs);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
  }
  if (existing !== null) {
    if (readFileSync(existing.file, 'utf8') === text) return { plan: { ...existing }, registered: null };
    throw new ActionError(
      `plan file ${nameOrPath}: a different plan named "${plan.name}" is already registered (${existing.file}); rename the file to register it under another name, or enroll with --plan ${plan.name}`,
      'invalid',
      'plan',
    );
  }
  const target = join(dirs[0]!, basename(nameOrPath));
  try {
    mkdirSync(dirs[0]!, { recursive: true });
    copyFileSync(nameOrPath, target);
  } catch (error) {
    throw new ActionError(`plan file ${nameOrPath}: cannot register it in ${dirs[0]}: ${errorMessage(error)} (set DMARC_ROLLOUT_PLANS to a folder this user can write)`, 'invalid', 'plan', { cause: error });
  }
  return { plan: loadPlanFile(target), registered: target };
}
