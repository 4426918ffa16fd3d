/** `enroll` and `status`: thin doors onto src/fleet. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  describeInput,
  domainDetail,
  enrollDomains,
  enrollInputsFromText,
  fleetStatus,
  normalizeDomainName,
  type DomainStatus,
  type EnrollInput,
} from '../../fleet/index.js';
import { loadPlan, PlanError } from '../../plans/index.js';
import type { CliContext } from '../context.js';

interface EnrollOptions {
  file?: string[];
  plan: string;
  provider?: string;
  json?: boolean;
}

export function registerDomainCommands(program: Command, ctx: CliContext): void {
  program
    .command('enroll')
    .description('enroll domains into a plan at its first stage (one transaction; refused lines are named with the reason)')
    .argument('[domain...]', 'domains to enroll (IDNs are converted to A-labels)')
    .option('-f, --file <file>', 'read domains from a file, one a line, # comments (repeatable)', collect, [])
    .option('-p, --plan <name>', 'plan name (data/plans/<name>.yaml) or plan file', 'default')
    .option('--provider <name>', 'DNS provider that hosts the zone (route53, cloudflare, powerdns, manual)')
    .option('--json', 'print the result as JSON')
    .action(async (domains: string[], opts: EnrollOptions) => {
      const inputs: EnrollInput[] = domains.map((text) => ({ text, origin: 'argv' }));
      for (const file of opts.file ?? []) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (error) {
          ctx.err(`${file}: cannot be read: ${(error as Error).message}`);
          ctx.exitCode = 1;
          return;
        }
        inputs.push(...enrollInputsFromText(text, file));
      }
      if (inputs.length === 0) {
        ctx.err('enroll: give at least one domain or --file');
        ctx.exitCode = 1;
        return;
      }
      let plan;
      try {
        plan = loadPlan(opts.plan);
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        ctx.err(`plan ${opts.plan} cannot be used:\n${error.message}`);
        ctx.exitCode = 1;
        return;
      }
      const result = await enrollDomains(await ctx.store(), {
        inputs,
        plan,
        provider: opts.provider ?? null,
        actor: ctx.actor,
        now: ctx.now(),
      });
      if (opts.json) {
        ctx.out(
          JSON.stringify({
            plan: plan.name,
            enrolled: result.enrolled,
            already_enrolled: result.alreadyEnrolled,
            refused: result.refused.map((r) => ({ input: r.input.text, origin: r.input.origin, line: r.input.line ?? null, reason: r.reason })),
          }),
        );
      } else {
        ctx.out(`enrolled ${result.enrolled.length} domain(s) into plan ${plan.name}`);
        for (const a of result.alreadyEnrolled) ctx.out(`  already enrolled: ${a.domain} (plan ${a.plan}), left as it is`);
        for (const r of result.refused) {
          const where = r.input.line === undefined ? '' : `${describeInput(r.input)} `;
          ctx.err(`  refused ${where}"${r.input.text}": ${r.reason}`);
        }
      }
      if (result.refused.length > 0) ctx.exitCode = 1;
    });

  program
    .command('status')
    .description('every enrolled domain with its stage and state, or one domain with its history')
    .argument('[domain]', 'one domain')
    .option('--json', 'print JSON')
    .action(async (domain: string | undefined, opts: { json?: boolean }) => {
      const store = await ctx.store();
      if (domain === undefined) {
        const fleet = await fleetStatus(store, ctx.now());
        if (opts.json) ctx.out(JSON.stringify({ domains: fleet }));
        else ctx.out(fleet.length === 0 ? 'no domains enrolled (dmarc-rollout enroll <domain>)' : fleetTable(fleet));
        return;
      }
      const name = normalizeDomainName(domain);
      const detail = name.ok ? await domainDetail(store, name.domain, ctx.now()) : undefined;
      if (!detail) {
        ctx.err(name.ok ? `${name.domain} is not enrolled` : `"${domain}": ${name.reason}`);
        ctx.exitCode = 1;
        return;
      }
      if (opts.json) {
        ctx.out(JSON.stringify(detail));
        return;
      }
      ctx.out(fleetTable([detail]));
      if (detail.record) ctx.out(`record: ${detail.record}`);
      ctx.out('history:');
      for (const h of detail.history) ctx.out(`  ${h.at}  ${h.action.padEnd(9)} ${h.from_stage ?? '-'} -> ${h.to_stage}  by ${h.actor}: ${h.reason}`);
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function fleetTable(rows: DomainStatus[]): string {
  const header = ['DOMAIN', 'PLAN', 'STAGE', 'STATE', 'DAYS', 'PROVIDER'];
  const lines = rows.map((r) => [
    r.domain,
    r.plan,
    r.stage === null ? `? (${r.plan_problem ?? 'unknown'})` : `${r.stage} (${r.stage_number}/${r.stage_count})`,
    r.state_reason ? `${r.state}: ${r.state_reason}` : r.state,
    r.days_in_stage === null ? 'not yet in effect' : String(r.days_in_stage),
    r.provider ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
