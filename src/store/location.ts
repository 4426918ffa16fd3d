/**
 * Where the store is: a SQLite file, or a Postgres database. The daemon's
 * config (`store: { sqlite }` or `store: { postgres: … }`) and the CLI's
 * environment (DMARC_ROLLOUT_DATABASE_URL, else DMARC_ROLLOUT_DB) both come
 * down to one of these, so every door opens the same store. The Postgres
 * password is read here from the environment or a file and kept in memory
 * only: describeStore() never shows it, and nothing writes it to the store.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { AppError, errorMessage } from '../errors.js';
import { defaultDatabasePath } from '../paths.js';

/** The connection to a Postgres store, secrets already read. */
export interface PostgresConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  /** false: plain TCP (loopback, a private network); otherwise TLS, verified unless reject_unauthorized is false. */
  ssl: false | { rejectUnauthorized: boolean; ca?: string };
  /** Connections the daemon may hold at once. */
  poolSize: number;
  /** Where the settings came from, for messages (the config file's field, or the environment variable). */
  origin: string;
}

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; connection: PostgresConnection };

/** The environment variable that points the CLI (and a daemon without `store:` in its config) at Postgres. */
export const DATABASE_URL_ENV = 'DMARC_ROLLOUT_DATABASE_URL';

/** The `store.postgres` block of the daemon's config. */
export const postgresConfigSchema = z
  .object({
    host: z.string().min(1).default('localhost'),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1),
    user: z.string().min(1),
    /** The environment variable holding the password. */
    password_env: z.string().min(1).optional(),
    /** A file holding the password (a trailing newline is dropped); relative to the config file. */
    password_file: z.string().min(1).optional(),
    /** TLS to the server: true (verified against the system's CAs), or the CA file and whether to verify. */
    ssl: z
      .union([
        z.boolean(),
        z.object({ ca_file: z.string().min(1).optional(), reject_unauthorized: z.boolean().default(true) }).strict(),
      ])
      .default(false),
    pool_size: z.number().int().min(2).max(100).default(10),
  })
  .strict()
  .refine((p) => !(p.password_env && p.password_file), { message: 'give password_env or password_file, not both' });

export type PostgresConfig = z.infer<typeof postgresConfigSchema>;

/**
 * The connection a config's `store.postgres` block describes, its password
 * read from the environment variable or file it names.
 * @throws AppError config naming the field and the reason (unset variable, unreadable file).
 */
export function postgresConnectionFromConfig(block: PostgresConfig, base: string, env: NodeJS.ProcessEnv, origin: string): PostgresConnection {
  let password: string | undefined;
  if (block.password_env) {
    password = env[block.password_env];
    if (password === undefined || password === '') throw new AppError('config', `${origin}.password_env: the environment variable ${block.password_env} is not set`);
  } else if (block.password_file) {
    const file = resolve(base, block.password_file);
    try {
      password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new AppError('config', `${origin}.password_file: ${file} cannot be read: ${errorMessage(error)}`, { cause: error });
    }
    if (password === '') throw new AppError('config', `${origin}.password_file: ${file} is empty`);
  }
  let ssl: PostgresConnection['ssl'] = false;
  if (block.ssl === true) ssl = { rejectUnauthorized: true };
  else if (block.ssl !== false) {
    let ca: string | undefined;
    if (block.ssl.ca_file) {
      const file = resolve(base, block.ssl.ca_file);
      try {
        ca = readFileSync(file, 'utf8');
      } catch (error) {
        throw new AppError('config', `${origin}.ssl.ca_file: ${file} cannot be read: ${errorMessage(error)}`, { cause: error });
      }
    }
    ssl = { rejectUnauthorized: block.ssl.reject_unauthorized, ...(ca ? { ca } : {}) };
  }
  return {
    host: block.host,
    port: block.port,
    database: block.database,
    user: block.user,
    ...(password !== undefined ? { password } : {}),
    ssl,
    poolSize: block.pool_size,
    origin,
  };
}

/**
 * A `postgres://user:password@host:port/database?sslmode=…` URL as a
 * connection. sslmode: disable (default), require (TLS, not verified),
 * verify-ca / verify-full (TLS, verified).
 * @throws AppError config naming the variable and what is wrong, never echoing the URL (it may hold the password).
 */
export function postgresConnectionFromUrl(text: string, origin: string = DATABASE_URL_ENV): PostgresConnection {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new AppError('config', `${origin}: not a URL (expected postgres://user:password@host:port/database)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new AppError('config', `${origin}: the scheme must be postgres:// (was ${url.protocol}//)`);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '') throw new AppError('config', `${origin}: no database name after the host (postgres://user@host/database)`);
  if (url.username === '') throw new AppError('config', `${origin}: no user name (postgres://user@host/database)`);
  const port = url.port === '' ? 5432 : Number(url.port);
  const sslmode = url.searchParams.get('sslmode') ?? 'disable';
  const modes: Record<string, PostgresConnection['ssl']> = {
    disable: false,
    require: { rejectUnauthorized: false },
    'verify-ca': { rejectUnauthorized: true },
    'verify-full': { rejectUnauthorized: true },
  };
  const ssl = modes[sslmode];
  if (ssl === undefined) throw new AppError('config', `${origin}: sslmode=${sslmode} is not one of ${Object.keys(modes).join(', ')}`);
  for (const key of url.searchParams.keys()) {
    if (key !== 'sslmode') throw new AppError('config', `${origin}: unknown parameter ${key} (only sslmode is read)`);
  }
  const password = url.password === '' ? undefined : decodeURIComponent(url.password);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port,
    database,
    user: decodeURIComponent(url.username),
    ...(password !== undefined ? { password } : {}),
    ssl,
    poolSize: 10,
    origin,
  };
}

/** The store the CLI opens: Postgres when DMARC_ROLLOUT_DATABASE_URL is set, else the SQLite file (DMARC_ROLLOUT_DB or the default). */
export function storeLocationFromEnv(env: NodeJS.ProcessEnv = process.env): StoreLocation {
  const url = env[DATABASE_URL_ENV];
  if (url !== undefined && url !== '') return { kind: 'postgres', connection: postgresConnectionFromUrl(url) };
  return { kind: 'sqlite', path: defaultDatabasePath(env) };
}

/** The store for messages and logs: the file's path, or postgres://user@host:port/database (never the password). */
export function describeStore(location: StoreLocation): string {
  if (location.kind === 'sqlite') return location.path;
  const c = location.connection;
  const host = c.host.includes(':') ? `[${c.host}]` : c.host;
  return `postgres://${encodeURIComponent(c.user)}@${host}:${c.port}/${encodeURIComponent(c.database)}`;
}
