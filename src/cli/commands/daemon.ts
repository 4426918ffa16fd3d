/**
 * `doctor` and `daemon`: thin doors that load the config, then check the
 * installation (src/daemon/doctor.ts) or start src/daemon and stop it on
 * SIGTERM/SIGINT. The daemon's modules (fastify, the mail sources, the DNS
 * SDKs) load when a command runs, not when the CLI starts.
 */
import type { Command } from 'commander';
import { AppError } from '../../errors.js';
import { configFileOf, type CliContext } from '../context.js';

export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description(
      "check the config, store, providers, sources and that every domain's rua reaches this daemon; prints how to fix what is wrong. " +
        'Exit 1 when a check fails. Works before the first start (no store yet).',
    )
    .option('-c, --config <file>', 'the daemon config (YAML); default $DMARC_ROLLOUT_CONFIG')
    .option('--json', 'print { ok, checks: [{ subject, status, detail, fix? }] }')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const file = requiredConfigFile(ctx, opts);
      const [{ ConfigError, loadDaemonConfig }, { runDoctor }] = await Promise.all([import('../../daemon/config.js'), import('../../daemon/doctor.js')]);
      let checks;
      try {
        checks = await runDoctor(loadDaemonConfig(file, ctx.env), ctx.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        checks = [{ subject: 'config', status: 'fail' as const, detail: error.message, fix: 'correct the named fields; the daemon refuses to start until then' }];
      }
      const ok = !checks.some((c) => c.status === 'fail');
      if (opts.json) ctx.out(JSON.stringify({ ok, checks }));
      else for (const c of checks) ctx.out(`${c.status.toUpperCase().padEnd(4)} ${c.subject}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`);
      if (!ok) ctx.exitCode = 1;
    });

  program
    .command('daemon')
    .description('run the schedules (ingest, tick) until SIGTERM or SIGINT; refuses to start on a bad config')
    .option('-c, --config <file>', 'the daemon config (YAML); default $DMARC_ROLLOUT_CONFIG')
    .option('--once', 'run one ingest and one tick, then exit')
    .option('--json', 'refusals as a JSON error (the logs are JSON lines either way)')
    .action(async (opts: { config?: string; once?: boolean }) => {
      const file = requiredConfigFile(ctx, opts);
      const [{ ConfigError, loadDaemonConfig }, { startDaemon, StartError }, { LockHeldError }, { createLogger }] = await Promise.all([
        import('../../daemon/config.js'),
        import('../../daemon/daemon.js'),
        import('../../daemon/lock.js'),
        import('../../daemon/logger.js'),
      ]);
      let config;
      try {
        config = loadDaemonConfig(file, ctx.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        ctx.fail(new AppError('config', `refusing to start:\n${error.message}`, { cause: error }));
        return;
      }
      const logger = createLogger(config.log.level);
      let daemon;
      try {
        daemon = await startDaemon(config, { logger, serve: !opts.once });
      } catch (error) {
        if (!(error instanceof LockHeldError) && !(error instanceof StartError)) throw error;
        ctx.fail(new AppError('unavailable', `refusing to start: ${error.message}`, { cause: error }));
        return;
      }
      if (opts.once) {
        await daemon.ingest();
        await daemon.tick();
        await daemon.stop();
        return;
      }
      await new Promise<void>((resolveStopped) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'stopping');
          daemon.stop().then(resolveStopped, (error: unknown) => {
            logger.error({ err: error }, 'stop failed');
            resolveStopped();
          });
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
        // SIGHUP re-reads the config's API tokens (and its token file): revoking one needs no restart.
        // Everything else in the config is read at start only.
        process.on('SIGHUP', () => {
          try {
            daemon.replaceTokens(loadDaemonConfig(file, ctx.env).apiTokens);
          } catch (error) {
            logger.error({ err: error }, 'SIGHUP: the config was not reloaded; the tokens in use stay');
          }
        });
      });
    });
}

/** The config file: --config, else DMARC_ROLLOUT_CONFIG. @throws AppError usage when neither is given. */
function requiredConfigFile(ctx: CliContext, opts: { config?: string }): string {
  const file = configFileOf(ctx, opts);
  if (file === undefined) throw new AppError('usage', 'give the daemon config: --config <file> (or set DMARC_ROLLOUT_CONFIG)', { field: '--config' });
  return file;
}
