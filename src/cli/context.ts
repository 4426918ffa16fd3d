/**
 * What every CLI command gets: where to print, how to open the store, and a
 * place to put its exit code. Commands stay thin: parse flags, call a module
 * function, print its result.
 */
import { userInfo } from 'node:os';
import { defaultDatabasePath, openSqliteStore, type Store } from '../store/open.js';

export interface CliContext {
  out(text: string): void;
  err(text: string): void;
  /** Set by a command that failed; main() returns it. */
  exitCode: number;
  env: NodeJS.ProcessEnv;
  /** Who is acting, for the audit log: `cli:<login name>`. */
  actor: string;
  /** The clock; commands never call `new Date()` themselves. */
  now(): Date;
  /** Opens the store once per invocation; main() closes it. */
  store(): Promise<Store>;
}

export function createContext(env: NodeJS.ProcessEnv = process.env): CliContext & { close(): Promise<void> } {
  let opened: Promise<Store> | undefined;
  return {
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
    exitCode: 0,
    env,
    actor: `cli:${safeUserName()}`,
    now: () => new Date(),
    store() {
      opened ??= openSqliteStore(defaultDatabasePath(env));
      return opened;
    },
    async close() {
      if (opened) await (await opened).close();
    },
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
