/**
 * The `dmarc-rollout` command line: builds the commander program from the
 * command groups and runs it. No command holds logic of its own; each calls
 * into src/ modules.
 */
import { Command, CommanderError } from 'commander';
import { createContext } from './context.js';
import { registerRecordCommands } from './commands/record.js';
import { registerPlanCommands } from './commands/plans.js';
import { registerDomainCommands } from './commands/domains.js';
import { registerReportCommands } from './commands/reports.js';
import { registerEngineCommands } from './commands/engine.js';
import { registerDaemonCommands } from './commands/daemon.js';
import { registerTokenCommands } from './commands/tokens.js';

export function buildProgram(ctx: ReturnType<typeof createContext>): Command {
  const program = new Command('dmarc-rollout')
    .description('Take domains from DMARC p=none to p=reject in verified stages, judged on aggregate reports.')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.out(s), writeErr: (s) => ctx.err(s) });
  registerRecordCommands(program, ctx);
  registerPlanCommands(program, ctx);
  registerDomainCommands(program, ctx);
  registerReportCommands(program, ctx);
  registerEngineCommands(program, ctx);
  registerDaemonCommands(program, ctx);
  registerTokenCommands(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and resolves to the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ctx = createContext(env);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    ctx.err(`dmarc-rollout: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await ctx.close();
  }
}
