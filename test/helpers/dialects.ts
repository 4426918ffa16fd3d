/**
 * The stores a suite runs on, kysely's way: a test file loops its describe()
 * over storeDialects() and gets the same tests on SQLite (a temp file) and on
 * Postgres (a real server from test/helpers/postgres.ts, started once per
 * test file on first use and stopped when the file's tests are done; a fresh
 * database per open()).
 */
import { after } from 'node:test';
import { openStore, type Store } from '../../src/store/open.js';
import type { StoreLocation } from '../../src/store/location.js';
import { tempStore } from './cli.js';
import { startPostgres, type PostgresServer } from './postgres.js';

export interface StoreDialect {
  name: 'sqlite' | 'postgres';
  /** A new, empty store's location (a temp SQLite file, or a new Postgres database). */
  location(): Promise<StoreLocation>;
  /** Opens a new, empty, migrated store. */
  open(): Promise<Store>;
  /** The Postgres server (postgres only), for tests that inspect it directly. */
  server?(): Promise<PostgresServer>;
}

let server: Promise<PostgresServer> | undefined;
let stopRegistered = false;

function postgres(): Promise<PostgresServer> {
  server ??= startPostgres();
  return server;
}

/** Call at the top level of a test file (the server is stopped after the file's last test). */
export function storeDialects(): StoreDialect[] {
  if (!stopRegistered) {
    stopRegistered = true;
    after(async () => {
      if (server) await (await server).stop();
    });
  }
  const sqlite: StoreDialect = {
    name: 'sqlite',
    location: async () => ({ kind: 'sqlite', path: tempStore().db }),
    open: async () => openStore(await sqlite.location()),
  };
  const pg: StoreDialect = {
    name: 'postgres',
    location: async () => {
      const s = await postgres();
      return { kind: 'postgres', connection: s.connection(await s.createDatabase()) };
    },
    open: async () => openStore(await pg.location()),
    server: postgres,
  };
  return [sqlite, pg];
}
