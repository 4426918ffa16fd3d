/**
 * Reading plan files (YAML or JSON) from disk and validating them. A bad plan
 * is refused with every problem named by file, stage index, field and reason,
 * so an operator can fix the file without guessing.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { AppError, errorMessage } from '../errors.js';
import { planDirectories } from '../paths.js';
import { stageLabel, stageProblem, type StageTarget } from '../record/index.js';
import { planSchema, type Plan } from './schema.js';

const PLAN_EXTENSIONS = ['.yaml', '.yml', '.json'];

/** One thing wrong with a plan file. `stage` is the 0-based stage index when the problem is inside a stage. */
export interface PlanProblem {
  file: string;
  stage: number | null;
  /** The stage as the file names it, to save counting list items: its label when valid (reject:100), else its policy and pct as written. */
  stageLabel?: string;
  /** The field: inside a stage its name (e.g. `halt_fail_rate`), else its dotted path, or `(file)` for the whole file. */
  field: string;
  reason: string;
}

/** A plan that cannot be read or does not validate: every problem, each naming file, stage and field. */
export class PlanError extends AppError {
  override name = 'PlanError';
  constructor(
    readonly problems: PlanProblem[],
    options: { cause?: unknown } = {},
  ) {
    super('invalid', problems.map(formatPlanProblem).join('\n'), options);
  }
}

export function formatPlanProblem(p: PlanProblem): string {
  const where = p.stage === null ? '' : ` stage ${p.stage}${p.stageLabel ? ` (${p.stageLabel})` : ''}:`;
  return `${p.file}:${where} ${p.field}: ${p.reason}`;
}

/** Folders searched for plans by name (src/paths.ts: DMARC_ROLLOUT_PLANS, then the shipped data/plans). */
export { planDirectories };

/** Parses and validates plan text; `file` is only used to name problems and the plan. */
export function parsePlan(text: string, file: string): Plan {
  const data = parsePlanText(text, file);
  const result = planSchema.safeParse(data);
  if (!result.success) throw new PlanError(result.error.issues.map((issue) => problemFromIssue(issue, file, data)));
  return { ...result.data, name: planNameOf(file), file };
}

/** Reads and validates one plan file. */
export function loadPlanFile(path: string): Plan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PlanError([{ file: path, stage: null, field: '(file)', reason: `cannot be read: ${errorMessage(error)}` }], { cause: error });
  }
  return parsePlan(text, path);
}

/** Finds a plan by name (or takes a path to a plan file) and loads it. */
export function loadPlan(nameOrPath: string, dirs: string[] = planDirectories()): Plan {
  if (PLAN_EXTENSIONS.includes(extname(nameOrPath)) || nameOrPath.includes('/')) return loadPlanFile(nameOrPath);
  for (const dir of dirs) {
    for (const ext of PLAN_EXTENSIONS) {
      const candidate = join(dir, nameOrPath + ext);
      if (existsSync(candidate)) return loadPlanFile(candidate);
    }
  }
  throw new PlanError([
    { file: nameOrPath, stage: null, field: '(name)', reason: `no plan of that name in ${dirs.join(', ')}` },
  ]);
}

export interface PlanListing {
  name: string;
  file: string;
  /** The loaded plan, or the reason it cannot be used. */
  plan: Plan | null;
  problems: PlanProblem[];
  /** True when a plan of the same name earlier in the search path hides this one. */
  shadowed: boolean;
}

/** Every plan file in the search path, valid or not, in search order. */
export function listPlans(dirs: string[] = planDirectories()): PlanListing[] {
  const seen = new Set<string>();
  const listings: PlanListing[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir).sort()) {
      if (!PLAN_EXTENSIONS.includes(extname(entry))) continue;
      const file = join(dir, entry);
      const name = planNameOf(file);
      const shadowed = seen.has(name);
      seen.add(name);
      try {
        listings.push({ name, file, plan: loadPlanFile(file), problems: [], shadowed });
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        listings.push({ name, file, plan: null, problems: error.problems, shadowed });
      }
    }
  }
  return listings;
}

function planNameOf(file: string): string {
  return basename(file, extname(file));
}

function parsePlanText(text: string, file: string): unknown {
  if (extname(file) === '.json') {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new PlanError([{ file, stage: null, field: '(file)', reason: `not valid JSON: ${errorMessage(error)}` }], { cause: error });
    }
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new PlanError(
      doc.errors.map((e) => ({ file, stage: null, field: '(file)', reason: `not valid YAML: ${e.message.split('\n')[0]}` })),
    );
  }
  return doc.toJS();
}

function problemFromIssue(issue: z.core.$ZodIssue, file: string, data: unknown): PlanProblem {
  const path = issue.path.map(String);
  const reason = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
  const inStage = path[0] === 'stages' && path[1] !== undefined && /^\d+$/.test(path[1]);
  if (!inStage) return { file, stage: null, field: path.length > 0 ? path.join('.') : '(plan)', reason };
  const stage = Number(path[1]);
  const raw = (data as { stages?: Array<{ policy?: unknown; pct?: unknown }> }).stages?.[stage];
  const problem: PlanProblem = { file, stage, field: path.length > 2 ? path.slice(2).join('.') : '(stage)', reason };
  // A stage label (quarantine:25) names only a valid stage; an invalid one is shown as written.
  if (raw && typeof raw.policy === 'string') {
    problem.stageLabel = stageProblem(raw as StageTarget) === null ? stageLabel(raw as StageTarget) : `policy ${JSON.stringify(raw.policy)}, pct ${JSON.stringify(raw.pct) ?? 'missing'}`;
  }
  return problem;
}
