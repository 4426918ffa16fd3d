/** `plans list` and `plans validate`: thin doors onto src/plans. */
import type { Command } from 'commander';
import { formatPlanProblem, listPlans, loadPlanFile, planDirectories, PlanError, type Plan } from '../../plans/index.js';
import { stageLabel } from '../../record/stage.js';
import type { CliContext } from '../context.js';

export function registerPlanCommands(program: Command, ctx: CliContext): void {
  const plans = program.command('plans').description('list and validate rollout plans');

  plans
    .command('list')
    .description('every plan in the search path (DMARC_ROLLOUT_PLANS, then data/plans), valid or not')
    .option('--json', 'print { plans: [...] }: name, file, valid, shadowed, stages, problems of each')
    .action((opts: { json?: boolean }) => {
      const listings = listPlans(planDirectories(ctx.env));
      if (opts.json) {
        ctx.out(
          JSON.stringify({
            plans: listings.map((l) => ({
              name: l.name,
              file: l.file,
              valid: l.plan !== null,
              shadowed: l.shadowed,
              stages: l.plan ? l.plan.stages.map(stageLabel) : null,
              problems: l.problems,
            })),
          }),
        );
      }
      for (const l of opts.json ? [] : listings) {
        if (l.plan) {
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
    .option('--json', 'print { file, valid, stages } or { file, valid: false, problems }')
    .action((file: string, opts: { json?: boolean }) => {
      try {
        const plan = loadPlanFile(file);
        if (opts.json) ctx.out(JSON.stringify({ file, valid: true, stages: plan.stages.map(stageLabel) }));
        else ctx.out(`${file}: valid, ${plan.stages.length} stages\n  ${ladder(plan)}`);
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        if (opts.json) ctx.out(JSON.stringify({ file, valid: false, problems: error.problems }));
        else ctx.err(error.message);
        ctx.exitCode = 1;
      }
    });
}

function ladder(plan: Plan): string {
  return plan.stages.map((s) => `${stageLabel(s)}${s.requires_approval ? ' (approval)' : ''}`).join(' -> ');
}
