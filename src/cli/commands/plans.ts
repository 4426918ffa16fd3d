/** `plans list` and `plans validate`: thin doors onto src/plans. */
import type { Command } from 'commander';
import { formatPlanProblem, listPlans, loadPlanFile, PlanError, type Plan } from '../../plans/index.js';
import type { CliContext } from '../context.js';

export function registerPlanCommands(program: Command, ctx: CliContext): void {
  const plans = program.command('plans').description('list and validate rollout plans');

  plans
    .command('list')
    .description('every plan in the search path (DMARC_ROLLOUT_PLANS, then data/plans), valid or not')
    .option('--json', 'one JSON object per plan, one per line')
    .action((opts: { json?: boolean }) => {
      const listings = listPlans();
      for (const l of listings) {
        if (opts.json) {
          ctx.out(
            JSON.stringify({
              name: l.name,
              file: l.file,
              valid: l.plan !== null,
              shadowed: l.shadowed,
              stages: l.plan ? l.plan.stages.map(stageText) : null,
              problems: l.problems,
            }),
          );
        } else if (l.plan) {
          ctx.out(`${l.name}${l.shadowed ? ' (shadowed)' : ''}  ${l.file}\n  ${ladder(l.plan)}`);
        } else {
          ctx.out(`${l.name}  ${l.file}  INVALID\n${l.problems.map((p) => `  ${formatPlanProblem(p)}`).join('\n')}`);
        }
      }
      if (listings.some((l) => l.plan === null)) ctx.exitCode = 1;
    });

  plans
    .command('validate')
    .description('check a plan file; exit 1 with every problem named by file, stage, field and reason')
    .argument('<file>', 'plan file (.yaml, .yml or .json)')
    .option('--json', 'print the result as JSON')
    .action((file: string, opts: { json?: boolean }) => {
      try {
        const plan = loadPlanFile(file);
        if (opts.json) ctx.out(JSON.stringify({ file, valid: true, stages: plan.stages.map(stageText) }));
        else ctx.out(`${file}: valid, ${plan.stages.length} stages\n  ${ladder(plan)}`);
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        if (opts.json) ctx.out(JSON.stringify({ file, valid: false, problems: error.problems }));
        else ctx.err(error.message);
        ctx.exitCode = 1;
      }
    });
}

function stageText(stage: Plan['stages'][number]): string {
  return `${stage.policy}:${stage.pct}`;
}

function ladder(plan: Plan): string {
  return plan.stages.map((s) => `${stageText(s)}${s.requires_approval ? ' (approval)' : ''}`).join(' -> ');
}
