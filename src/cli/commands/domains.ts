/** `enroll`, `status` and the domain lifecycle (unenroll, set-provider, set-plan): thin doors onto src/fleet. */
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
  type ProviderLookup,
} from '../../fleet/index.js';
import { ActionError } from '../../fleet/actions.js';
import { setPlan, setProvider, unenroll } from '../../fleet/lifecycle.js';
import { planForEnrolment } from '../../fleet/plan-registry.js';
import { loadPlan, planDirectories } from '../../plans/index.js';
import { AppError, errorMessage } from '../../errors.js';
import { listInstances, type InstanceView } from '../../store/instances.js';
import { daemonConfigFor, providersFileOf, type CliContext } from '../context.js';

/** The daemon config's default `instances.lease_seconds`, when no config is given. */
const DEFAULT_LEASE_SECONDS = 60;

interface EnrollOptions {
  file?: string[];
  plan: string;
  provider?: string;
  providers?: string;
  config?: string;
  reportAddress?: string;
  startAt?: string;
  reason?: string;
  json?: boolean;
}

/**
 * The configured providers and the daemon's own report address, for the
 * commands that reach DNS outside a tick: from the daemon config (--config or
 * DMARC_ROLLOUT_CONFIG, whose store is used too), else a providers file
 * (--providers or DMARC_ROLLOUT_PROVIDERS).
 */
export async function fleetSettings(
  ctx: CliContext,
  opts: { config?: string; providers?: string },
): Promise<{ providers: ProviderLookup; reportAddresses: string[]; origin: string | null }> {
  // The providers (and the DNS SDKs under them) load here, not with the module: `status` never needs them.
  const { loadProviderSet, providerSetFrom } = await import('../../../providers/config-file.js');
  const config = await daemonConfigFor(ctx, opts);
  if (config !== null) {
    return { providers: providerSetFrom(config.providers, config.file, ctx.providerDeps()), reportAddresses: config.report_addresses, origin: config.file };
  }
  const file = providersFileOf(ctx, opts);
  if (file) return { providers: loadProviderSet(file, ctx.providerDeps()), reportAddresses: [], origin: file };
  const none: ProviderLookup = {
    names: [],
    get: () => {
      throw new AppError('usage', 'no provider settings: pass --config <daemon config>, --providers <file> or set DMARC_ROLLOUT_PROVIDERS', { field: '--config' });
    },
  };
  return { providers: none, reportAddresses: [], origin: null };
}

export function registerDomainCommands(program: Command, ctx: CliContext): void {
  /** Plans by name from the folders this run's environment names (DMARC_ROLLOUT_PLANS), then the shipped ones. */
  const plans = (name: string) => loadPlan(name, planDirectories(ctx.env));
  program
    .command('enroll')
    .description('enroll domains at the plan stage their live _dmarc record matches, never weaker (one transaction; refused lines are named with the reason)')
    .argument('[domain...]', 'domains to enroll (IDNs are converted to A-labels)')
    .option('-f, --file <file>', 'read domains from a file, one a line, # comments (repeatable)', collect, [])
    .option('-p, --plan <name>', 'plan name (data/plans/<name>.yaml), or a plan file to validate and register by its name', 'default')
    .option('--provider <name>', 'the configured DNS provider that hosts the zones')
    .option('--config <file>', 'the daemon config: its providers, store and report_addresses (default $DMARC_ROLLOUT_CONFIG)')
    .option('--providers <file>', 'provider settings (YAML); default $DMARC_ROLLOUT_PROVIDERS')
    .option('--report-address <address>', "this daemon's report mailbox, added as rua where a record has no usable one (default: the config's first report_addresses)")
    .option('--start-at <policy:pct>', 'start at this stage instead of the one the live record matches (needs --reason)')
    .option('--reason <text>', 'why (with --start-at)')
    .option('--json', 'print the result as JSON')
    .action(async (domains: string[], opts: EnrollOptions) => {
      const inputs: EnrollInput[] = domains.map((text) => ({ text, origin: 'argv' }));
      for (const file of opts.file ?? []) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (error) {
          ctx.fail(new AppError('invalid', `${file}: cannot be read: ${errorMessage(error)}`, { field: '--file', cause: error }));
          return;
        }
        inputs.push(...enrollInputsFromText(text, file));
      }
      if (inputs.length === 0) {
        ctx.fail(new AppError('usage', 'enroll: give at least one domain or --file', { field: 'domain' }));
        return;
      }
      if (opts.startAt !== undefined && (opts.reason ?? '').trim() === '') {
        ctx.fail(new AppError('usage', 'enroll: --start-at needs --reason: starting anywhere but where the live record stands is a person’s decision', { field: '--reason' }));
        return;
      }
      let result;
      let plan;
      try {
        const settings = await fleetSettings(ctx, opts);
        const chosen = planForEnrolment(opts.plan, ctx.env);
        plan = chosen.plan;
        if (chosen.registered) ctx.err(`plan file ${opts.plan} validated and registered as plan "${plan.name}" (${chosen.registered})`);
        result = await enrollDomains(await ctx.store(), {
          inputs,
          plan,
          provider: opts.provider ?? null,
          providers: settings.providers,
          actor: ctx.actor,
          now: ctx.now(),
          reportAddress: opts.reportAddress ?? settings.reportAddresses[0] ?? null,
          ...(opts.startAt !== undefined ? { startAt: { stage: opts.startAt, reason: opts.reason ?? '' } } : {}),
        });
      } catch (error) {
        if (!(error instanceof ActionError)) throw error;
        ctx.fail(new AppError(error.kind === 'invalid' || error.kind === 'not-found' ? error.kind : 'conflict', `enroll: ${error.message}`, { ...(error.field ? { field: error.field } : {}), cause: error }));
        return;
      }
      if (opts.json) {
        ctx.out(
          JSON.stringify({
            plan: plan.name,
            enrolled: result.enrolled,
            started: result.started,
            already_enrolled: result.alreadyEnrolled,
            refused: result.refused.map((r) => ({ input: r.input.text, origin: r.input.origin, line: r.input.line ?? null, reason: r.reason })),
          }),
        );
      } else {
        ctx.out(`enrolled ${result.enrolled.length} domain(s) into plan ${plan.name}`);
        for (const s of result.started) {
          ctx.out(`  ${s.domain}: starts at ${s.stage}: ${s.why}`);
          ctx.out(`    - ${s.found ?? '(no record)'}\n    + ${s.record}`);
        }
        for (const a of result.alreadyEnrolled) ctx.out(`  already enrolled: ${a.domain} (plan ${a.plan}), left as it is`);
        for (const r of result.refused) {
          const where = r.input.line === undefined ? '' : `${describeInput(r.input)} `;
          ctx.err(`  refused ${where}"${r.input.text}": ${r.reason}`);
        }
      }
      if (result.refused.length > 0) ctx.exitCode = 1;
    });

  const who = () => ({ actor: ctx.actor, now: ctx.now() });
  const lifecycle = async (fn: () => Promise<string>) => {
    try {
      const message = await fn();
      ctx.out(ctx.json ? JSON.stringify({ ok: true, message }) : message);
    } catch (error) {
      if (!(error instanceof ActionError)) throw error;
      ctx.fail(error);
    }
  };

  program
    .command('unenroll')
    .description('stop managing a domain: its audit log and stage history are kept, its live record is left as it is unless --restore')
    .argument('<domain>')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--restore', 'write back the record found at enrolment (none found: remove the DMARC record) through the domain’s provider')
    .option('--config <file>', 'the daemon config (its providers and store); default $DMARC_ROLLOUT_CONFIG')
    .option('--providers <file>', 'provider settings (YAML); default $DMARC_ROLLOUT_PROVIDERS')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((input: string, o: { reason: string; restore?: boolean; config?: string; providers?: string }) =>
      lifecycle(async () => {
        const settings = await fleetSettings(ctx, o);
        const store = await ctx.store();
        let provider;
        if (o.restore) {
          const name = normalizeDomainName(input);
          const row = name.ok ? await store.db.selectFrom('domains').select('provider').where('domain', '=', name.domain).executeTakeFirst() : undefined;
          if (row?.provider && settings.providers.names.includes(row.provider)) provider = settings.providers.get(row.provider);
        }
        return unenroll(store, input, who(), { reason: o.reason, ...(o.restore ? { restore: true } : {}), ...(provider ? { provider } : {}) });
      }),
    );

  program
    .command('set-provider')
    .description('move a domain to another configured DNS provider (its record there must be the one this program tracks)')
    .argument('<domain>')
    .argument('<provider>')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--config <file>', 'the daemon config (its providers and store); default $DMARC_ROLLOUT_CONFIG')
    .option('--providers <file>', 'provider settings (YAML); default $DMARC_ROLLOUT_PROVIDERS')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((input: string, provider: string, o: { reason: string; config?: string; providers?: string }) =>
      lifecycle(async () => {
        const settings = await fleetSettings(ctx, o);
        return setProvider(await ctx.store(), input, who(), { provider, providers: settings.providers, reason: o.reason });
      }),
    );

  program
    .command('set-plan')
    .description('move a domain to another plan, keeping its stage by label (refused when the plan lacks it); a plan file is validated and registered')
    .argument('<domain>')
    .argument('<plan>')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print { ok, message }, or the error as JSON')
    .action((input: string, planName: string, o: { reason: string }) =>
      lifecycle(async () => {
        const { plan } = planForEnrolment(planName, ctx.env);
        return setPlan(await ctx.store(), input, who(), { plan, current: plans, reason: o.reason });
      }),
    );

  program
    .command('status')
    .description('every enrolled domain with its stage and state, or one domain with its history')
    .argument('[domain]', 'one domain')
    .option('-c, --config <file>', "the daemon config: its store and lease time (default $DMARC_ROLLOUT_CONFIG)")
    .option('--json', 'print JSON')
    .action(async (domain: string | undefined, opts: { config?: string; json?: boolean }) => {
      // The daemon's config names its store and the lease time that tells a live instance from a gone one.
      const leaseSeconds = (await daemonConfigFor(ctx, opts))?.instances.lease_seconds ?? DEFAULT_LEASE_SECONDS;
      const store = await ctx.store();
      if (domain === undefined) {
        const now = ctx.now();
        const fleet = await fleetStatus(store, now, plans);
        // Who works on the store: the daemons (and CLI ticks) sharing it, live or gone, with the leases they hold.
        const instances = await listInstances(store.db, now, leaseSeconds * 1000);
        if (opts.json) {
          ctx.out(JSON.stringify({ domains: fleet, instances }));
          return;
        }
        ctx.out(fleet.length === 0 ? 'no domains enrolled (dmarc-rollout enroll <domain>)' : fleetTable(fleet));
        ctx.out(instancesText(instances, now, leaseSeconds));
        return;
      }
      const name = normalizeDomainName(domain);
      const detail = name.ok ? await domainDetail(store, name.domain, ctx.now(), plans) : undefined;
      if (!detail) {
        ctx.fail(name.ok ? new AppError('not-found', `${name.domain} is not enrolled`, { field: 'domain' }) : new AppError('invalid', `"${domain}": ${name.reason}`, { field: 'domain' }));
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

/** The instances sharing the store, a line each; a live one is one whose heartbeat is within the lease time. */
function instancesText(instances: InstanceView[], now: Date, leaseSeconds: number): string {
  if (instances.length === 0) return 'instances: none running (no daemon has registered with this store)';
  const live = instances.filter((i) => i.live).length;
  const lines = instances.map((i) => {
    const ago = Math.max(0, Math.round((now.getTime() - Date.parse(i.heartbeat_at)) / 1000));
    const leases = i.leases.length === 0 ? 'no leases' : `leases: ${i.leases.length <= 5 ? i.leases.join(', ') : `${i.leases.slice(0, 5).join(', ')} and ${i.leases.length - 5} more`}`;
    return `  ${i.id}  ${i.live ? 'live' : 'GONE'}  pid ${i.pid} on ${i.host}, started ${i.started_at}, last heartbeat ${ago} s ago; ${leases}`;
  });
  return [`instances: ${live} live, ${instances.length - live} gone (live: a heartbeat within ${leaseSeconds} s)`, ...lines].join('\n');
}

function fleetTable(rows: DomainStatus[]): string {
  const header = ['DOMAIN', 'PLAN', 'STAGE', 'STATE', 'DAYS', 'PROVIDER'];
  const lines = rows.map((r) => [
    r.domain,
    r.plan,
    r.stage === null ? `? (${r.plan_problem ?? 'unknown'})` : `${r.stage} (${r.stage_number}/${r.stage_count})`,
    (r.state_reason ? `${r.state}: ${r.state_reason}` : r.state) + (r.stuck ? ` (STUCK: the change in flight failed ${r.stuck.attempts} times${r.stuck.last_error ? `; last error: ${r.stuck.last_error}` : ''})` : ''),
    r.days_in_stage === null ? 'not yet in effect' : String(r.days_in_stage),
    r.provider ?? '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
