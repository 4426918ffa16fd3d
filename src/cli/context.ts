/**
 * What every CLI command gets: where to print, how to open the store, how to
 * report a failure, and a place to put its exit code. Commands stay thin:
 * parse flags, call a module function, print its result.
 *
 * The output rule, the same for every command (README.md, "Output"):
 * without --json, text for people; with --json, stdout carries exactly one
 * JSON document per command, or one JSON document per line for a command
 * that streams items (ingest results, tick results, doctor checks); a
 * failure is `{"error":{"code","message","field"?}}` in place of the
 * document (or as the last line of a stream).
 *
 * This module is loaded by every command, `--version` included: it imports
 * nothing heavy, and opens the store and reads the daemon config lazily.
 */
import { userInfo } from 'node:os';
import { Writable } from 'node:stream';
import { AppError, errorJson, errorMessage, exitCodeFor, InternalError } from '../errors.js';
import type { DaemonConfig } from '../daemon/config.js';
import type { TickOptions } from '../engine/tick.js';
import type { DnsProvider } from '../dns/provider.js';
import type { ProviderDeps } from '../../providers/shared/deps.js';
import type { SourceRule } from '../engine/types.js';
import type { DomainRow } from '../store/schema.js';
import type { Store } from '../store/open.js';
import type { StoreLocation } from '../store/location.js';

export interface CliContext {
  out(text: string): void;
  err(text: string): void;
  /** Set by a command that failed; main() returns it. */
  exitCode: number;
  /**
   * The environment main() was given. Commands read settings and secrets
   * from here, and pass it on, never process.env: main() runs in process in
   * the tests, with an environment of the test's own.
   */
  env: NodeJS.ProcessEnv;
  /** stdout is a terminal (a progress bar may be drawn); false when the output is caught. */
  readonly interactive: boolean;
  /** `--json` was given: print JSON only, by the rule above. */
  readonly json: boolean;
  /** Who is acting, for the audit log: `cli:<login name>`. */
  actor: string;
  /** The clock; commands never call `new Date()` themselves. */
  now(): Date;
  /** Opens the store once per invocation; main() closes it. */
  store(): Promise<Store>;
  /** Use this store file instead of DMARC_ROLLOUT_DB (the daemon config's); only before the first store(). */
  useStorePath(path: string): void;
  /** Use this store (the daemon config's, SQLite or Postgres) instead of the environment's; only before the first store(). */
  useStore(location: StoreLocation): void;
  /** What the DNS adapters take from this run: its environment for their secrets, its output for `manual`'s instructions. */
  providerDeps(): ProviderDeps;
  /**
   * Prints a failure the one way (a line on stderr, or the JSON error on
   * stdout with --json) and sets the exit code from its error code
   * (src/errors.ts). For a refusal the command expected; anything else may
   * simply be thrown, and main() reports it the same way.
   */
  fail(error: unknown): void;
}

/** Where a run's output goes: the process's stdout and stderr, or a test's buffers. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** stdout is a terminal. */
  readonly interactive?: boolean;
}

const PROCESS_IO: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  interactive: process.stdout.isTTY === true,
};

/** A stream onto one of the run's outputs, for code that writes to a stream (the manual adapter). */
function streamTo(write: (text: string) => void): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      write(String(chunk));
      done();
    },
  });
}

export function createContext(
  env: NodeJS.ProcessEnv = process.env,
  options: { json?: boolean; io?: CliIo } = {},
): CliContext & { close(): Promise<void> } {
  let opened: Promise<Store> | undefined;
  // Unset: the environment's (DMARC_ROLLOUT_DATABASE_URL, else DMARC_ROLLOUT_DB), read when the store is first opened.
  let location: StoreLocation | undefined;
  const io = options.io ?? PROCESS_IO;
  const ctx: CliContext & { close(): Promise<void> } = {
    out: (text) => io.stdout(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => io.stderr(text.endsWith('\n') ? text : `${text}\n`),
    exitCode: 0,
    env,
    interactive: io.interactive === true,
    json: options.json ?? false,
    actor: `cli:${safeUserName()}`,
    now: () => new Date(),
    store() {
      opened ??= Promise.all([import('../store/open.js'), import('../store/location.js')]).then(([{ openStore }, { storeLocationFromEnv }]) =>
        openStore(location ?? storeLocationFromEnv(env)),
      );
      return opened;
    },
    useStorePath(path) {
      ctx.useStore({ kind: 'sqlite', path });
    },
    useStore(next) {
      if (opened) throw new InternalError('the store is already open');
      location = next;
    },
    providerDeps() {
      return { env, stdout: streamTo(io.stdout), stderr: streamTo(io.stderr) };
    },
    fail(error) {
      if (ctx.json) ctx.out(JSON.stringify(errorJson(error)));
      else ctx.err(errorMessage(error));
      ctx.exitCode = exitCodeFor(error);
    },
    async close() {
      // A store that failed to open has nothing to close; its error was reported already.
      const store = await opened?.catch(() => undefined);
      await store?.close();
    },
  };
  return ctx;
}

/**
 * The daemon config file a command reads: `--config`, else
 * DMARC_ROLLOUT_CONFIG unless a providers file was named on the command line
 * (`--providers` alone means "these providers, not the daemon's"). An empty
 * value is unset.
 */
export function configFileOf(ctx: CliContext, opts: { config?: string; providers?: string }): string | undefined {
  const file = opts.config ?? (opts.providers === undefined ? ctx.env.DMARC_ROLLOUT_CONFIG : undefined);
  return file === '' ? undefined : file;
}

/** The providers file: `--providers`, else DMARC_ROLLOUT_PROVIDERS. */
export function providersFileOf(ctx: CliContext, opts: { providers?: string }): string | undefined {
  const file = opts.providers ?? ctx.env.DMARC_ROLLOUT_PROVIDERS;
  return file === '' ? undefined : file;
}

/**
 * The daemon config named by configFileOf, loaded (secrets from this run's
 * environment), its store used by the command from here on; null when none
 * is named. @throws ConfigError when it is invalid.
 */
export async function daemonConfigFor(ctx: CliContext, opts: { config?: string; providers?: string }): Promise<DaemonConfig | null> {
  const file = configFileOf(ctx, opts);
  if (file === undefined) return null;
  const { loadDaemonConfig } = await import('../daemon/config.js');
  const config = loadDaemonConfig(file, ctx.env);
  ctx.useStore(config.storeLocation);
  return config;
}

/** What a tick (or `plan`) from the command line needs to reach DNS: the same providers, store and allowlist the daemon uses. */
export interface DnsSetup {
  providerFor(row: DomainRow): DnsProvider;
  verifierFor(provider: DnsProvider): ReturnType<NonNullable<TickOptions['verifierFor']>>;
  /** The config's allowlist, when the settings came from the daemon config. */
  sourceRules?: SourceRule[];
  /** The daemon config, when one was given. */
  config?: DaemonConfig;
}

/**
 * The DNS providers for `tick` and `plan`, in this order: the daemon's
 * config (`--config`, or DMARC_ROLLOUT_CONFIG unless --providers is given;
 * its store and allowlist are used too), a providers file (`--providers`),
 * or DMARC_ROLLOUT_PROVIDERS. With none, a
 * domain that needs its provider fails with a message saying how to give one.
 * @throws ConfigError when the config (or providers file) is invalid.
 */
export async function dnsSetup(ctx: CliContext, options: { config?: string; providers?: string }): Promise<DnsSetup> {
  const [{ loadProviderSet, providerSetFrom }, { dnsVerifier }] = await Promise.all([
    import('../../providers/config-file.js'),
    import('../engine/verify.js'),
  ]);
  const config = await daemonConfigFor(ctx, options);
  if (config !== null) {
    const { configSourceRules } = await import('../daemon/config.js');
    const providers = providerSetFrom(config.providers, config.file, ctx.providerDeps());
    const sourceRules = configSourceRules(config);
    return {
      providerFor: (row) => providers.get(row.provider),
      verifierFor: (provider) => dnsVerifier(providers.verifySettings(provider)),
      sourceRules,
      config,
    };
  }
  const file = providersFileOf(ctx, options);
  const fromFile = file ? loadProviderSet(file, ctx.providerDeps()) : null;
  return {
    providerFor: (row) => {
      if (!fromFile) throw new AppError('usage', 'no provider settings: pass --config <daemon config>, --providers <file> or set DMARC_ROLLOUT_PROVIDERS', { field: '--config' });
      return fromFile.get(row.provider);
    },
    verifierFor: (provider) => dnsVerifier(fromFile?.verifySettings(provider) ?? {}),
  };
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    // A container user with no passwd entry has no name; its uid still says who.
    return String(process.getuid?.() ?? 'unknown');
  }
}
