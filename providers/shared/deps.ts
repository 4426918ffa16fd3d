/**
 * What an adapter takes from its surroundings besides its config: the
 * environment its secrets come from, the clock it waits on, randomness for
 * jitter, where it logs, and (for `manual`) where it prints. Every member
 * has a real default, so production passes nothing.
 */
import type { Writable } from 'node:stream';
import type { Clock } from './clock.js';
import type { Environment } from './secret.js';

/** The few log methods adapters use; a pino logger fits. */
export interface ProviderLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** A logger that drops everything. */
export const silentLogger: ProviderLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
};

/** Runtime dependencies of an adapter; all optional. */
export interface ProviderDeps {
  /** Where secrets are read from. Default process.env. */
  env?: Environment;
  clock?: Clock;
  /** Uniform in [0, 1), for backoff jitter. Default Math.random. */
  random?: () => number;
  logger?: ProviderLogger;
  /** Where `manual` prints its instructions; overrides its `output` setting. */
  output?: Writable;
  /** The streams `manual`'s `output: stdout | stderr` setting names. Default the process's own (the CLI passes its run's). */
  stdout?: Writable;
  stderr?: Writable;
}
