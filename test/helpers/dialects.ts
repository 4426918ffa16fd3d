/**
 * The stores a suite runs on, kysely's way: a test file loops its describe()
 * over storeDialects() and gets the same tests on SQLite (a temp file) and on
 * Postgres (a real server from test/helpers/postgres.ts, started once per
 * test file on first use and stopped when the file's tests are done; a fresh
 * database per open()).
 *
 * Each dialect migrates one store per test file and copies it for every
 * open() (SQLite: the file; Postgres: CREATE DATABASE … TEMPLATE, the next
 * copy made while the current store's test runs), so a file that opens
 * dozens of stores runs the migrations once. The copy is the
 * store the real opener then opens, and it finds nothing to migrate. Every
 * store opened here after storeDialects() is called is closed when the
 * file's tests are done, before the server stops, whether or not the test
 * closed it.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { openStore, type Store } from '../../src/store/open.js';
import { postgresConnectionFromUrl, type StoreLocation } from '../../src/store/location.js';
import { tempStore } from './cli.js';
import { startPostgres, type PostgresServer } from './postgres.js';

export interface StoreDialect {
  name: 'sqlite' | 'postgres';
  /** A new, empty store's location (a temp SQLite file, or a new Postgres database), not yet migrated. */
  location(): Promise<StoreLocation>;
  /** Opens a new, empty, migrated store. */
  open(): Promise<Store>;
  /** The Postgres server (postgres only), for tests that inspect it directly. */
  server?(): Promise<PostgresServer>;
  /**
   * What the CLI needs in its environment to open `store` (a store this
   * dialect opened): DMARC_ROLLOUT_DB for SQLite, DMARC_ROLLOUT_DATABASE_URL
   * for Postgres.
   */
  cliEnv(store: Store): Record<string, string>;
}

let server: Promise<PostgresServer> | undefined;
let hooked = false;
const openStores = new Set<Store>();
const cliEnvs = new WeakMap<Store, Record<string, string>>();

function postgres(): Promise<PostgresServer> {
  server ??= startPostgres();
  return server;
}

/** Closes every store still open, then stops the server (once per test file, after its last test). */
function hookAfter(): void {
  if (hooked) return;
  hooked = true;
  after(async () => {
    for (const store of [...openStores]) await store.close();
    await spare?.catch(() => {});
    if (server) await (await server).stop();
  });
}

/** The store, closed once however often close() is called, and closed by the after-hook if the test does not. */
function tracked(store: Store, env: Record<string, string>): Store {
  let closing: Promise<void> | undefined;
  const wrapped: Store = {
    db: store.db,
    reader: store.reader,
    dialect: store.dialect,
    close: () => {
      openStores.delete(wrapped);
      closing ??= store.close();
      return closing;
    },
  };
  openStores.add(wrapped);
  cliEnvs.set(wrapped, env);
  return wrapped;
}

let sqliteTemplate: Promise<string> | undefined;

/** A SQLite file migrated once per test file; copies of it are new stores. */
function migratedSqliteFile(): Promise<string> {
  sqliteTemplate ??= (async () => {
    const { db } = tempStore('dmarc-rollout-template-');
    // Closing checkpoints the WAL into the file, so the file alone is the whole store.
    await (await openStore({ kind: 'sqlite', path: db })).close();
    return db;
  })();
  return sqliteTemplate;
}

let postgresTemplate: Promise<string> | undefined;
let copies = 0;
/** A copy made ahead for the next open(). */
let spare: Promise<string> | undefined;

async function freshDatabase(s: PostgresServer): Promise<string> {
  const template = await migratedPostgresDatabase(s);
  const name = `store_${++copies}`;
  await copyDatabase(s, template, name);
  return name;
}

/** A database migrated once per test file; CREATE DATABASE … TEMPLATE copies it. */
function migratedPostgresDatabase(s: PostgresServer): Promise<string> {
  postgresTemplate ??= (async () => {
    const name = await s.createDatabase('template');
    // Closed before any copy: Postgres copies a template only while nobody is connected to it.
    await (await openStore({ kind: 'postgres', connection: s.connection(name) })).close();
    return name;
  })();
  return postgresTemplate;
}

/** SQLite on a temp file: the store every test gets unless it asks for another. */
export const SQLITE: StoreDialect = {
  name: 'sqlite',
  location: async () => ({ kind: 'sqlite', path: tempStore().db }),
  async open() {
    const path = join(tempStore().dir, 'store.sqlite');
    copyFileSync(await migratedSqliteFile(), path);
    return tracked(await openStore({ kind: 'sqlite', path }), { DMARC_ROLLOUT_DB: path });
  },
  cliEnv: (store) => cliEnvs.get(store) ?? assertOpenedHere(),
};

const POSTGRES: StoreDialect = {
  name: 'postgres',
  location: async () => {
    const s = await postgres();
    return { kind: 'postgres', connection: s.connection(await s.createDatabase()) };
  },
  async open() {
    const s = await postgres();
    const name = await (spare ?? freshDatabase(s));
    // The next store's copy is made while this one's test runs: the server works while the test does.
    spare = freshDatabase(s);
    spare.catch(() => {});
    return tracked(await openStore({ kind: 'postgres', connection: s.connection(name) }), { DMARC_ROLLOUT_DATABASE_URL: s.url(name) });
  },
  server: postgres,
  cliEnv: (store) => cliEnvs.get(store) ?? assertOpenedHere(),
};

/**
 * CREATE DATABASE … TEMPLATE, copying the files (Postgres 15+: about twice as
 * fast as the default WAL-logged copy for a small database, and the cluster
 * is thrown away anyway); older servers copy their default way.
 */
async function copyDatabase(s: PostgresServer, template: string, name: string): Promise<void> {
  try {
    await s.query('postgres', `create database ${name} template ${template} strategy file_copy`);
  } catch (error) {
    if (!/strategy/i.test((error as Error).message)) throw error;
    await s.query('postgres', `create database ${name} template ${template}`);
  }
}

function assertOpenedHere(): never {
  throw new Error('cliEnv: the store was not opened by this dialect');
}

/** Call at the top level of a test file (the server is stopped after the file's last test). */
export function storeDialects(): StoreDialect[] {
  hookAfter();
  return [SQLITE, POSTGRES];
}

/**
 * A daemon config's `store:` line for the dialect's store, with what the
 * commands need in their environment: the file, or the Postgres block with
 * its password in an environment variable (never in the file) and the
 * folder for rejected inputs that a Postgres store needs (`dir`/rejected).
 */
export function storeConfig(dialect: StoreDialect, store: Store, dir: string): { line: string; env: Record<string, string> } {
  const env = dialect.cliEnv(store);
  if (dialect.name === 'sqlite') return { line: `store: { sqlite: ${env.DMARC_ROLLOUT_DB} }`, env };
  const c = postgresConnectionFromUrl(env.DMARC_ROLLOUT_DATABASE_URL!);
  return {
    line: `store: { postgres: { host: ${c.host}, port: ${c.port}, database: ${c.database}, user: ${c.user}, password_env: TEST_PG_PASSWORD } }\nrejected_dir: ${join(dir, 'rejected')}`,
    env: { ...env, TEST_PG_PASSWORD: c.password! },
  };
}
