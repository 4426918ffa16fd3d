/** `daemon`: a thin door that loads the config, starts src/daemon and stops it on SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { ConfigError, loadDaemonConfig } from '../../daemon/config.js';
import { startDaemon, StartError } from '../../daemon/daemon.js';
import { runDoctor } from '../../daemon/doctor.js';
import { LockHeldError } from '../../daemon/lock.js';
import { createLogger } from '../../daemon/logger.js';
import type { CliContext } from '../context.js';

export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('check the config, store, providers, sources and that every domain\'s rua reaches this daemon; prints how to fix what is wrong')
    .requiredOption('-c, --config <file>', 'the daemon config (YAML)')
    .option('--json', 'one JSON object per check')
    .action(async (opts: { config: string; json?: boolean }) => {
      let config;
      try {
        config = loadDaemonConfig(opts.config, ctx.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        ctx.out(opts.json ? JSON.stringify({ subject: 'config', status: 'fail', detail: error.message }) : `FAIL config\n${error.message}`);
        ctx.exitCode = 1;
        return;
      }
      const checks = await runDoctor(config, ctx.env);
      for (const c of checks) {
        if (opts.json) ctx.out(JSON.stringify(c));
        else ctx.out(`${c.status.toUpperCase().padEnd(4)} ${c.subject}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`);
      }
      if (checks.some((c) => c.status === 'fail')) ctx.exitCode = 1;
    });

  program
    .command('daemon')
    .description('run the schedules (ingest, tick) until SIGTERM or SIGINT; refuses to start on a bad config')
    .requiredOption('-c, --config <file>', 'the daemon config (YAML)')
    .option('--once', 'run one ingest and one tick, then exit')
    .action(async (opts: { config: string; once?: boolean }) => {
      let config;
      try {
        config = loadDaemonConfig(opts.config, ctx.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        ctx.err(`refusing to start:\n${error.message}`);
        ctx.exitCode = 1;
        return;
      }
      const logger = createLogger(config.log.level);
      let daemon;
      try {
        daemon = await startDaemon(config, { logger, serve: !opts.once });
      } catch (error) {
        if (!(error instanceof LockHeldError) && !(error instanceof StartError)) throw error;
        ctx.err(`refusing to start: ${error.message}`);
        ctx.exitCode = 1;
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
            daemon.replaceTokens(loadDaemonConfig(opts.config, ctx.env).apiTokens);
          } catch (error) {
            logger.error({ err: error }, 'SIGHUP: the config was not reloaded; the tokens in use stay');
          }
        });
      });
    });
}
