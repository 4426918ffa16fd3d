/**
 * `notify test|list|retry`, `summary` and `tag`: thin doors onto src/notify
 * and src/fleet/tags. Channels come from the daemon config (`--config`, or
 * DMARC_ROLLOUT_CONFIG), whose store they then use.
 */
import { Option, type Command } from 'commander';
import { AppError, errorMessage } from '../../errors.js';
import { configFileOf, daemonConfigFor, type CliContext } from '../context.js';

async function daemonConfig(ctx: CliContext, file: string | undefined) {
  const config = await daemonConfigFor(ctx, { config: file });
  if (config === null) throw new AppError('usage', 'give the daemon config with --config <file> (or set DMARC_ROLLOUT_CONFIG): the channels are defined there');
  return config;
}

export function registerNotifyCommands(program: Command, ctx: CliContext): void {
  const notify = program.command('notify').description('notification channels: send a test, list recent messages and their delivery, queue failed ones again');
  const configOption = () => new Option('-c, --config <file>', 'the daemon config with the notifications block (default $DMARC_ROLLOUT_CONFIG)');

  notify
    .command('test')
    .description('send a test message to one channel now; exit 1 with the reason when it is not delivered')
    .argument('<channel>', 'a channel name from notifications.channels')
    .addOption(configOption())
    .option('--json', 'print { channel, key, delivered, error }')
    .action(async (channel: string, opts: { config?: string; json?: boolean }) => {
      const config = await daemonConfig(ctx, opts.config);
      const { sendTestMessage } = await import('../../notify/outbox.js');
      const result = await sendTestMessage(await ctx.store(), config.notify, channel, () => ctx.now());
      if (opts.json) ctx.out(JSON.stringify({ channel, ...result }));
      else if (result.delivered) ctx.out(`delivered a test message to ${channel} (message ${result.key})`);
      else ctx.err(`not delivered to ${channel}: ${result.error}`);
      if (!result.delivered) ctx.exitCode = 1;
    });

  notify
    .command('list')
    .description('recent notification messages, newest first, with their delivery state and last error')
    .addOption(configOption())
    .addOption(new Option('--status <status>', 'only these').choices(['pending', 'delivered', 'failed']))
    .option('--channel <name>', 'only this channel')
    .option('--limit <n>', 'how many', '30')
    .option('--json', 'print the whole view as JSON')
    .action(async (opts: { config?: string; status?: 'pending' | 'delivered' | 'failed'; channel?: string; limit: string; json?: boolean }) => {
      const config = await daemonConfig(ctx, opts.config);
      const { notificationsView } = await import('../../notify/views.js');
      const view = await notificationsView(await ctx.store(), config.notify, {
        ...(opts.status ? { status: opts.status } : {}),
        ...(opts.channel ? { channel: opts.channel } : {}),
        limit: Number(opts.limit) || 30,
      });
      if (opts.json) {
        ctx.out(JSON.stringify(view));
        return;
      }
      for (const c of view.channels) ctx.out(`${c.name} (${c.type}${c.target ? `, ${c.target}` : ''}): ${c.pending} pending, ${c.delivered} delivered, ${c.failed} failed`);
      ctx.out('');
      for (const m of view.messages) {
        ctx.out(`${m.created_at}  ${m.channel.padEnd(12)} ${m.status.padEnd(9)} ${String(m.attempts).padStart(2)}x  ${m.title}`);
        if (m.last_error) ctx.out(`    last error: ${m.last_error}`);
      }
      if (view.messages.length === 0) ctx.out('no messages');
    });

  notify
    .command('retry')
    .description('queue undeliverable (failed) messages again, after the receiver is fixed; the running daemon delivers them')
    .addOption(configOption())
    .option('--channel <name>', 'only this channel')
    .option('--json', 'print { requeued }')
    .action(async (opts: { config?: string; channel?: string; json?: boolean }) => {
      await daemonConfig(ctx, opts.config);
      const { requeueFailed } = await import('../../store/notifications.js');
      const n = await requeueFailed((await ctx.store()).db, { ...(opts.channel ? { channel: opts.channel } : {}), at: ctx.now().toISOString() });
      ctx.out(opts.json ? JSON.stringify({ requeued: n }) : `${n} message(s) queued again`);
    });

  program
    .command('summary')
    .description('where every domain stands, what moved, what waits for a person and why, with a chart of the fleet by stage')
    .option('--since <period>', 'the period looked back on: 36h, 7d, 2w', '7d')
    .addOption(configOption())
    .option('--json', 'print the summary as JSON')
    .option('--send', 'also queue it to the channels of notifications.summary (the daemon delivers it)')
    .action(async (opts: { since: string; config?: string; json?: boolean; send?: boolean }) => {
      const config = configFileOf(ctx, opts) !== undefined || opts.send ? await daemonConfig(ctx, opts.config) : null;
      const [{ buildSummary, parsePeriod }, { summaryText }, { loadPlan, planDirectories }] = await Promise.all([
        import('../../notify/summary.js'),
        import('../../notify/render.js'),
        import('../../plans/index.js'),
      ]);
      let since: number;
      try {
        since = parsePeriod(opts.since);
      } catch (error) {
        throw new AppError('invalid', `--since: ${errorMessage(error)}`, { field: '--since', cause: error });
      }
      const store = await ctx.store();
      const summary = await buildSummary(store, ctx.now(), since, { loadPlan: (name) => loadPlan(name, planDirectories(ctx.env)) });
      ctx.out(opts.json ? JSON.stringify(summary) : summaryText(summary));
      if (opts.send) {
        if (!config?.notify.summary) throw new AppError('config', `${config?.file ?? 'the config'}: notifications.summary: no summary channels configured`);
        const { queueSummary } = await import('../../notify/outbox.js');
        const keys = await queueSummary(store, config.notify, config.notify.summary.channels, summary, ctx.now());
        if (!opts.json) ctx.out(`\nqueued for ${config.notify.summary.channels.join(', ')} (${keys.length} message(s))`);
      }
    });

  program
    .command('tag')
    .description("add or remove a domain's tags (notification channels filter on them); prints the tags; audited")
    .argument('<domain>')
    .argument('[tags...]', 'tags to add')
    .option('--remove <tags...>', 'tags to remove')
    .option('--clear', 'remove every tag first')
    .option('--json', 'print { domain, before, tags }')
    .action(async (domain: string, tags: string[], opts: { remove?: string[]; clear?: boolean; json?: boolean }) => {
      const { tagDomain } = await import('../../fleet/tags.js');
      const change = await tagDomain(await ctx.store(), domain, { actor: ctx.actor, now: ctx.now() }, {
        ...(opts.clear ? { set: [] } : {}),
        add: tags,
        ...(opts.remove ? { remove: opts.remove } : {}),
      });
      ctx.out(opts.json ? JSON.stringify(change) : `${change.domain}: ${change.tags.length > 0 ? change.tags.join(', ') : '(no tags)'}`);
    });
}
