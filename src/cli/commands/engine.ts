/**
 * The rollout commands: tick, explain, history, simulate, and what a person
 * does to a domain (approve, pause, resume, rollback, force, allow, abuse).
 * Thin doors onto src/engine and src/fleet.
 */
import type { Command } from 'commander';
import { acknowledgeReporter } from '../../app/acknowledge.js';
import { planChanges } from '../../app/dry-run.js';
import { planSummary, type PlannedChange } from '../../engine/planned-change.js';
import { explainDomain, explainText, explanationJson } from '../../app/explain.js';
import { simulate } from '../../app/simulate.js';
import { runTick, type DomainTickResult } from '../../engine/tick.js';
import { ActionError, approve, classifySource, force, parseSourceSpec, pause, resume, rollback } from '../../fleet/actions.js';
import { normalizeDomainName } from '../../names.js';
import { approvalsQueue } from '../../fleet/views.js';
import { loadPlan as loadPlanFrom, planDirectories, PlanError } from '../../plans/index.js';
import { stageLabel } from '../../record/index.js';
import { recentAudit } from '../../store/audit.js';
import { getDomain, stageHistory } from '../../store/domains.js';
import { sourceRulesFor } from '../../store/source-rules.js';
import { AppError, errorMessage } from '../../errors.js';
import { dnsSetup, type CliContext } from '../context.js';

/** Runs an operator action; a refusal (ActionError, PlanError) is printed with exit 1, anything else is a crash. */
async function act(ctx: CliContext, fn: () => Promise<string>): Promise<void> {
  try {
    const message = await fn();
    ctx.out(ctx.json ? JSON.stringify({ ok: true, message }) : message);
  } catch (error) {
    if (!(error instanceof ActionError) && !(error instanceof PlanError)) throw error;
    ctx.fail(error);
  }
}

async function domainName(ctx: CliContext, input: string): Promise<string | null> {
  const name = normalizeDomainName(input);
  if (!name.ok) {
    ctx.fail(new AppError('invalid', `"${input}": ${name.reason}`, { field: 'domain' }));
    return null;
  }
  return name.domain;
}

/**
 * What tick and plan share: the daemon's providers, store and allowlist
 * (--config; see dnsSetup in ../context.ts for the order of the other
 * settings) and the domains named on the command line.
 * Resolves to null (after printing why) when a domain name is invalid.
 */
async function tickScope(ctx: CliContext, domains: string[], settings: { config?: string; providers?: string }) {
  const names: string[] = [];
  for (const d of domains) {
    const n = await domainName(ctx, d);
    if (n === null) return null;
    names.push(n);
  }
  const { providerFor, verifierFor, sourceRules, config } = await dnsSetup(ctx, settings);
  return {
    scope: { providerFor, verifierFor, ...(sourceRules ? { sourceRules } : {}), ...(names.length > 0 ? { domains: names } : {}) },
    // The daemon's heartbeat and lease times when its config is given, else their defaults.
    instances: config?.instances ?? { heartbeat_seconds: 10, lease_seconds: 60 },
  };
}

export function registerEngineCommands(program: Command, ctx: CliContext): void {
  /** Plans by name from the folders this run's environment names (DMARC_ROLLOUT_PLANS), then the shipped ones. */
  const loadPlan = (name: string) => loadPlanFrom(name, planDirectories(ctx.env));
  /** The planned changes, one a domain (a diff where a record would be written), then a summary line; exit 1 when any is refused or unreadable. */
  const printPlanned = (changes: PlannedChange[], json: boolean) => {
    for (const c of changes) {
      if (json) {
        ctx.out(JSON.stringify(c));
        continue;
      }
      const head = `${c.domain}: ${c.action ?? 'hold'}${c.to ? ` -> ${c.to}` : ''}`;
      if (c.kind === 'write') ctx.out(`${head}\n  - ${c.live ?? '(no record)'}\n  + ${c.next}`);
      else if (c.kind === 'verify') ctx.out(`${head}: no change to write (the zone already shows it; the tick verifies it)`);
      else if (c.kind === 'hold') ctx.out(`${head}: no change (${c.reason})`);
      else ctx.out(`${c.domain}: ${c.kind.toUpperCase()}${c.to ? ` (${c.action} -> ${c.to})` : ''}: ${c.reason}`);
    }
    if (!json) ctx.out(planSummary(changes));
    if (changes.some((c) => c.kind === 'refused' || c.kind === 'unreadable')) ctx.exitCode = 1;
  };

  const who = () => ({ actor: ctx.actor, now: ctx.now() });

  program
    .command('tick')
    .description('measure, decide and apply once for every active domain (or the ones named)')
    .argument('[domain...]', 'only these domains')
    .option('-c, --config <file>', "the daemon config: its providers, store and allowlist (default $DMARC_ROLLOUT_CONFIG)")
    .option('--providers <file>', 'provider settings (YAML); default $DMARC_ROLLOUT_PROVIDERS')
    .option('--dry-run', 'decide and print, change nothing')
    .option('--json', 'one JSON object per domain')
    .action(async (domains: string[], opts: { config?: string; providers?: string; dryRun?: boolean; json?: boolean }) => {
      const setup = await tickScope(ctx, domains, opts);
      if (setup === null) return;
      const { scope } = setup;
      if (opts.dryRun) {
        // Exactly what the tick would do, from the same planned change as `plan`.
        printPlanned(await planChanges({ store: await ctx.store(), now: ctx.now(), loadPlan, ...scope }), opts.json === true);
        return;
      }
      // Each domain is printed as it is done: a person watching a large fleet sees progress, and no result is held.
      const print = (r: DomainTickResult) => {
        if (r.error) ctx.exitCode = 1;
        if (opts.json) {
          ctx.out(JSON.stringify(r));
          return;
        }
        const what = r.error
          ? `error: ${r.error}`
          : r.skipped
            ? `skipped: ${r.skipped}`
            : r.decision
            ? `${r.decision.action}${r.decision.to ? ` -> ${r.decision.to}` : ''}: ${r.decision.summary}`
            : r.apply
              ? 'change in flight'
              : 'not moved (paused, halted or completed)';
        const applied = r.apply ? ` [${r.apply.status}${'reason' in r.apply ? `: ${r.apply.reason}` : ''}]` : '';
        ctx.out(`${r.domain}: ${what}${applied}`);
      };
      // The daemon(s) may be ticking the same store: each domain is worked on under its lease, by one of them at a
      // time. This run joins the instances as a daemon does, so its heartbeat renews its leases for as long as it
      // lives (an apply waiting on a slow provider keeps its domain) and, killed, its domains are free a lease time later.
      const store = await ctx.store();
      const { asInstance } = await import('../../daemon/heartbeat.js');
      const leaseMs = setup.instances.lease_seconds * 1000;
      const logger = { error: ({ err }: { err: unknown }, message: string) => ctx.err(`${message}: ${errorMessage(err)}`), warn: ({ err }: { err: unknown }, message: string) => ctx.err(`${message}: ${errorMessage(err)}`) };
      await asInstance(store.db, { leaseMs, heartbeatMs: setup.instances.heartbeat_seconds * 1000, logger }, (holder) =>
        runTick({ store, now: ctx.now(), loadPlan, ...scope, lease: { holder, ttlMs: leaseMs, now: () => new Date() }, onResult: print }),
      );
    });

  program
    .command('plan')
    .description('show, for every domain, the record change the next tick would make (old -> new); changes nothing')
    .argument('[domain...]', 'only these domains')
    .option('-c, --config <file>', "the daemon config: its providers, store and allowlist (default $DMARC_ROLLOUT_CONFIG)")
    .option('--providers <file>', 'provider settings (YAML); default $DMARC_ROLLOUT_PROVIDERS')
    .option('--json', 'one JSON object per domain')
    .action(async (domains: string[], opts: { config?: string; providers?: string; json?: boolean }) => {
      const setup = await tickScope(ctx, domains, opts);
      if (setup === null) return;
      printPlanned(await planChanges({ store: await ctx.store(), now: ctx.now(), loadPlan, ...setup.scope }), opts.json === true);
    });

  program
    .command('explain')
    .description('the current figures, sources by class, and the decision the next tick would make, in plain words')
    .argument('<domain>')
    .option('--json', 'the assessment and decision as JSON')
    .action(async (input: string, opts: { json?: boolean }) => {
      const name = await domainName(ctx, input);
      if (name === null) return;
      const explained = await explainDomain(await ctx.store(), name, ctx.now(), loadPlan);
      if (!explained) {
        ctx.fail(new AppError('not-found', `${name} is not enrolled`, { field: 'domain' }));
        return;
      }
      if (opts.json) ctx.out(JSON.stringify(explanationJson(explained)));
      else ctx.out(explainText(explained.assessment, explained.decision, explained.inFlight));
    });

  program
    .command('history')
    .description('a domain’s stage changes and audit events, oldest first')
    .argument('<domain>')
    .option('--json', 'JSON')
    .action(async (input: string, opts: { json?: boolean }) => {
      const name = await domainName(ctx, input);
      if (name === null) return;
      const store = await ctx.store();
      // An unenrolled domain keeps its history: what this program did to its DNS stays readable.
      const enrolled = (await getDomain(store.db, name)) !== undefined;
      const stages = await stageHistory(store.db, name);
      const events = (await recentAudit(store.db, { domain: name, limit: 1000 })).reverse();
      if (!enrolled && stages.length === 0 && events.length === 0) {
        ctx.fail(new AppError('not-found', `${name} is not enrolled and has no history`, { field: 'domain' }));
        return;
      }
      if (opts.json) {
        ctx.out(JSON.stringify({ domain: name, enrolled, stages, events: events.map((e) => ({ ...e, details: e.details ? JSON.parse(e.details) : null })) }));
        return;
      }
      if (!enrolled) ctx.out(`${name} is no longer enrolled; its history as kept:`);
      ctx.out('Stage changes:');
      for (const s of stages) ctx.out(`  ${s.at}  ${s.action.padEnd(9)} ${s.from_stage ?? '-'} -> ${s.to_stage}  by ${s.actor}${s.record ? `\n      ${s.record}` : ''}`);
      ctx.out('Audit log:');
      for (const e of events) ctx.out(`  ${e.at}  ${e.actor.padEnd(14)} ${e.action.padEnd(15)} ${e.reason}`);
    });

  program
    .command('approvals')
    .description('domains waiting for a person: the next stage is gated and everything else says go, or approved and not yet moved')
    .option('--json', 'print { approvals: [...] }, one entry per domain (an empty list when nothing waits)')
    .action(async (opts: { json?: boolean }) => {
      const queue = await approvalsQueue(await ctx.store(), ctx.now(), { loadPlan });
      if (opts.json) ctx.out(JSON.stringify({ approvals: queue }));
      for (const d of opts.json ? [] : queue) {
        if (d.approved_stage) ctx.out(`${d.domain}: ${d.stage} -> ${d.approved_stage} approved; moves once ${d.stage} is clean`);
        else ctx.out(`${d.domain}: ${d.stage} -> ${d.next_decision?.to} waits for approval: ${d.next_decision?.summary}`);
      }
      if (queue.length === 0 && !opts.json) ctx.out('nothing waits for approval');
    });

  program
    .command('approve')
    .description('approve the gated next stage of a domain')
    .argument('<domain>')
    .option('--reason <text>', 'why', 'approved')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, o: { reason: string }) => act(ctx, async () => approve(await ctx.store(), d, loadPlan, who(), o.reason)));

  program
    .command('pause')
    .description('stop a domain where it is until resume')
    .argument('<domain>')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, o: { reason: string }) => act(ctx, async () => pause(await ctx.store(), d, who(), o.reason)));

  program
    .command('acknowledge')
    .description("go on without a regular reporter that went quiet: the days it missed count until it reports again")
    .argument('<domain>')
    .argument('<reporter>', 'the reporter (org name) as explain shows it')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, r: string, o: { reason: string }) => act(ctx, async () => acknowledgeReporter(await ctx.store(), d, r, who(), o.reason)));

  program
    .command('resume')
    .description('let a paused or halted domain move again')
    .argument('<domain>')
    .option('--reason <text>', 'why', 'resumed')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, o: { reason: string }) => act(ctx, async () => resume(await ctx.store(), d, who(), o.reason)));

  program
    .command('rollback')
    .description('go back one stage, or to a named earlier stage; applied and verified by the next tick')
    .argument('<domain>')
    .option('--to <policy:pct>', 'the earlier stage to go back to')
    .option('--reason <text>', 'why', 'rolled back by an operator')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, o: { to?: string; reason: string }) =>
      act(ctx, async () => rollback(await ctx.store(), d, loadPlan, who(), { reason: o.reason, ...(o.to ? { to: o.to } : {}) })),
    );

  program
    .command('force')
    .description('move a domain to any stage of its plan (audited; a reason is required)')
    .argument('<domain>')
    .requiredOption('--to <policy:pct>', 'the stage')
    .requiredOption('--reason <text>', 'why')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((d: string, o: { to: string; reason: string }) => act(ctx, async () => force(await ctx.store(), d, loadPlan, who(), o)));

  for (const [name, verdict, description] of [
    ['allow', 'authorised', 'allowlist a sending source (its mail counts as authorised)'],
    ['abuse', 'abuse', 'mark a sending source as abuse (shown as spoofing, never blocking)'],
  ] as const) {
    program
      .command(name)
      .description(`${description}: <domain> <source...>, or --global <source...>; a source is an IP, a CIDR, dkim:<domain> or spf:<domain>`)
      .argument('<args...>')
      .option('--global', 'for every domain')
      .option('--note <text>', 'why, kept with the entry')
      .option('--json', 'print { ok, message }, or the error as JSON')
      .action((args: string[], o: { global?: boolean; note?: string }) =>
        act(ctx, async () => {
          const [domain, sources] = o.global ? [null, args] : [args[0]!, args.slice(1)];
          if (sources.length === 0) throw new ActionError(`${name}: give at least one source after the domain (or use --global)`);
          const lines: string[] = [];
          for (const source of sources) lines.push((await classifySource(await ctx.store(), domain, source, verdict, who(), o.note ?? null)).message);
          return lines.join('\n');
        }),
      );
  }

  program
    .command('simulate')
    .description('replay reports through the real engine with a simulated clock and DNS: when would these domains have reached reject, and what stopped them?')
    .requiredOption('--domain <domain...>', 'the domain(s) to replay, together')
    .option('--reports <dir...>', 'report files or folders (default: the reports in the store)')
    .option('--plan <name|file>', 'plan name or file', 'default')
    .option('--start <YYYY-MM-DD>', 'first simulated day (default: the first day with reports)')
    .option('--days <n>', 'days to simulate (default: until three days after the last report arrives)')
    .option('--from <record>', 'the record the domains start from (its rua, fo, ... are kept)')
    .option('--delay <spec...>', 'DAYS or ORG=DAYS: a report arrives this many days after its period ends, for every reporter or one (default: learned from the store, else 1)')
    .option('--tick-hours <h,h,...>', 'UTC hours the daemon ticks at (default: every hour)')
    .option('--approve-all', 'a person approves every gated step when asked')
    .option('--resume-after <hours>', 'a person resumes a halted domain this many hours after it halted')
    .option('--allow <source...>', 'SOURCE or SOURCE@YYYY-MM-DD: a person allowlists a source (IP, CIDR, dkim:, spf:) for these domains, from the start or on that day')
    .option('--json', 'one JSON object per decision')
    .action(
      async (o: {
        domain: string[];
        reports?: string[];
        plan: string;
        start?: string;
        days?: string;
        from?: string;
        delay?: string[];
        tickHours?: string;
        approveAll?: boolean;
        resumeAfter?: string;
        allow?: string[];
        json?: boolean;
      }) => {
        const refuse = (message: string) => ctx.fail(new AppError('invalid', message));
        const names: string[] = [];
        for (const input of o.domain) {
          const name = await domainName(ctx, input);
          if (name === null) return;
          names.push(name);
        }
        if (o.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.start)) return refuse(`--start "${o.start}": expected YYYY-MM-DD`);
        if (o.days !== undefined && !/^[1-9]\d{0,4}$/.test(o.days)) return refuse(`--days "${o.days}": expected a whole number of days`);
        if (o.resumeAfter !== undefined && !/^\d{1,4}(\.\d+)?$/.test(o.resumeAfter)) return refuse(`--resume-after "${o.resumeAfter}": expected a number of hours`);
        let tickHours: number[] | undefined;
        if (o.tickHours !== undefined) {
          tickHours = o.tickHours.split(',').map((h) => Number(h.trim()));
          if (tickHours.some((h) => !Number.isInteger(h) || h < 0 || h > 23)) return refuse(`--tick-hours "${o.tickHours}": expected UTC hours 0-23, comma-separated`);
        }
        let reportDelaySeconds: number | undefined;
        const reporterDelaySeconds: Record<string, number> = {};
        for (const spec of o.delay ?? []) {
          const match = /^(?:(.+)=)?(\d{1,2}(?:\.\d+)?)$/.exec(spec);
          if (!match) return refuse(`--delay "${spec}": expected days (1.5) or reporter=days (google.com=1)`);
          const seconds = Math.round(Number(match[2]) * 86_400);
          if (match[1] === undefined) reportDelaySeconds = seconds;
          else reporterDelaySeconds[match[1]] = seconds;
        }
        const allow = [];
        for (const spec of o.allow ?? []) {
          const [source, on] = spec.split('@');
          if (on !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(on)) return refuse(`--allow "${spec}": the day after @ must be YYYY-MM-DD`);
          try {
            parseSourceSpec(source!);
          } catch (error) {
            return refuse(`--allow "${spec}": ${errorMessage(error)}`);
          }
          for (const domain of names) allow.push({ at: new Date(on ? `${on}T00:00:00Z` : 0), domain, source: source! });
        }
        let plan;
        try {
          plan = loadPlan(o.plan);
        } catch (error) {
          if (!(error instanceof PlanError)) throw error;
          return refuse(error.message);
        }
        const store = await ctx.store();
        const rules = [];
        for (const name of names) rules.push(...(await sourceRulesFor(store.db, name)).map(({ id: _id, ...rule }) => rule));
        const result = await simulate({
          domains: names,
          plan,
          sourceRules: rules,
          ...(o.reports ? { reportPaths: o.reports } : { fromStore: store }),
          ...(o.start ? { start: new Date(`${o.start}T00:00:00Z`) } : {}),
          ...(o.days ? { days: Number(o.days) } : {}),
          ...(o.from ? { initialRecord: o.from } : {}),
          ...(o.approveAll ? { approveAll: true } : {}),
          ...(o.resumeAfter !== undefined ? { resumeAfterHours: Number(o.resumeAfter) } : {}),
          ...(tickHours ? { tickHours } : {}),
          ...(reportDelaySeconds !== undefined ? { reportDelaySeconds } : {}),
          reporterDelaySeconds,
          allow,
        });
        if (o.json) {
          for (const step of result.steps) ctx.out(JSON.stringify(step));
          return;
        }
        for (const step of result.steps) {
          ctx.out(`${step.at.slice(0, 16).replace('T', ' ')}  ${names.length > 1 ? `${step.domain}  ` : ''}${step.stage.padEnd(14)} ${step.action}${step.to ? ` -> ${step.to}` : ''}: ${step.reasons.join('; ')}`);
        }
        const last = plan.stages[plan.stages.length - 1]!;
        ctx.out(`\n${result.reportsIngested} report(s) replayed${result.reportsRejected ? `, ${result.reportsRejected} refused` : ''}`);
        for (const d of result.domains) {
          ctx.out(
            `${d.domain}: ended at ${d.finalStage} (${d.finalState})` +
              (d.reachedLastStageOn ? `; reached ${stageLabel(last)} on ${d.reachedLastStageOn}, day ${d.daysToLastStage}` : ''),
          );
        }
      },
    );
}
