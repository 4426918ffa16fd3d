/**
 * The `dmarc-rollout` command line: builds the commander program from the
 * command groups and runs it. No command holds logic of its own; each calls
 * into src/ modules.
 *
 * Start-up is lazy: a command group is a module loaded with import() only
 * when its command is run (changesets' CLI does the same), so `--version` or
 * `record check` never load the DNS SDKs, fastify or the mail libraries.
 * Only `--help` with no command, or a word no group claims, loads them all.
 *
 * Adding a command group: one line in COMMAND_GROUPS naming the top-level
 * commands it registers and its `registerXCommands(program, ctx)` function.
 * test/cli-contract.test.ts checks that each group registers exactly the
 * commands it names.
 */
import { Command, CommanderError } from 'commander';
import { errorJson, errorMessage, exitCodeFor } from '../errors.js';
import { createContext, type CliContext, type CliIo } from './context.js';

type Register = (program: Command, ctx: CliContext) => void;

export interface CommandGroup {
  /** The top-level commands the group registers. */
  readonly commands: readonly string[];
  readonly load: () => Promise<Register>;
}

export const COMMAND_GROUPS: readonly CommandGroup[] = [
  { commands: ['record'], load: async () => (await import('./commands/record.js')).registerRecordCommands },
  { commands: ['plans'], load: async () => (await import('./commands/plans.js')).registerPlanCommands },
  { commands: ['enroll', 'status', 'unenroll', 'set-provider', 'set-plan'], load: async () => (await import('./commands/domains.js')).registerDomainCommands },
  { commands: ['ingest', 'report'], load: async () => (await import('./commands/reports.js')).registerReportCommands },
  {
    commands: ['tick', 'plan', 'explain', 'history', 'approvals', 'approve', 'pause', 'resume', 'rollback', 'force', 'allow', 'abuse', 'simulate', 'acknowledge'],
    load: async () => (await import('./commands/engine.js')).registerEngineCommands,
  },
  { commands: ['doctor', 'daemon'], load: async () => (await import('./commands/daemon.js')).registerDaemonCommands },
  { commands: ['token'], load: async () => (await import('./commands/tokens.js')).registerTokenCommands },
  { commands: ['notify', 'summary', 'tag'], load: async () => (await import('./commands/notify.js')).registerNotifyCommands },
];

export const VERSION = '0.1.0';

/** The bare program: name, version, output through ctx; no commands yet. */
function baseProgram(ctx: CliContext): Command {
  return new Command('dmarc-rollout')
    .description('Take domains from DMARC p=none to p=reject in verified stages, judged on aggregate reports.')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.out(s),
      writeErr: (s) => ctx.err(s),
      // With --json, a usage error is printed by main() as a JSON error instead.
      outputError: (s, write) => {
        if (!ctx.json) write(s);
      },
    });
}

/** The groups `args` (argv without node and script) needs: the one naming its command, none for --version, all for help. */
export function groupsFor(args: readonly string[]): readonly CommandGroup[] {
  const words = args.filter((a) => !a.startsWith('-'));
  const word = words[0] === 'help' ? words[1] : words[0];
  if (word === undefined) return args.some((a) => a === '-V' || a === '--version') ? [] : COMMAND_GROUPS;
  const named = COMMAND_GROUPS.filter((g) => g.commands.includes(word));
  // A word no group claims: load everything so commander can name it or suggest the nearest command.
  return named.length > 0 ? named : COMMAND_GROUPS;
}

/** The program with the command groups `args` needs (every group when `args` is omitted). */
export async function buildProgram(ctx: CliContext, args?: readonly string[]): Promise<Command> {
  const program = baseProgram(ctx);
  for (const group of args === undefined ? COMMAND_GROUPS : groupsFor(args)) (await group.load())(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and resolves to the exit code; `io` catches the output (tests). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, io?: CliIo): Promise<number> {
  const args = argv.slice(2);
  const ctx = createContext(env, { json: jsonRequested(args), ...(io ? { io } : {}) });
  try {
    const program = await buildProgram(ctx, args);
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      if (error.exitCode === 0) return 0;
      if (ctx.json) ctx.out(JSON.stringify(errorJson(usageError(error))));
      return exitCodeFor(error);
    }
    if (ctx.json) ctx.out(JSON.stringify(errorJson(error)));
    else ctx.err(`dmarc-rollout: ${errorMessage(error)}`);
    return exitCodeFor(error);
  } finally {
    await ctx.close();
  }
}

/** `--json` anywhere before a `--`. */
function jsonRequested(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

/** Commander's message without its "error: " prefix. */
function usageError(error: CommanderError): CommanderError {
  error.message = error.message.replace(/^error: /, '');
  return error;
}
