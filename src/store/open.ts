/**
 * Opening the store: the SQLite file under data/ by default, migrated to the
 * latest schema before anything reads it. One place decides where the file
 * lives so the CLI, the daemon and the API all open the same one.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { CodeMigrationProvider, type Dialect } from './migrations.js';
import type { Database } from './schema.js';

/** The project's own data/ folder: default plans live here, and the SQLite file at run time. */
export const PACKAGE_DATA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../data');

/** Where the SQLite file is: `DMARC_ROLLOUT_DB` if set, else data/dmarc-rollout.sqlite. */
export function defaultDatabasePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.DMARC_ROLLOUT_DB ? resolve(env.DMARC_ROLLOUT_DB) : resolve(PACKAGE_DATA_DIR, 'dmarc-rollout.sqlite');
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  close(): Promise<void>;
}

/** Opens (creating if needed) the SQLite store at `path` and runs pending migrations. */
export async function openSqliteStore(path: string = defaultDatabasePath()): Promise<Store> {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SqliteDatabase(path);
  // WAL lets readers (status, the API) run while a tick writes; the busy
  // timeout rides out the short write locks of a second process.
  sqlite.pragma('journal_mode = WAL');
  // NORMAL is durable against a process crash in WAL mode (only a power cut
  // can lose the last commits) and saves a disk sync per ingested report.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db, 'sqlite');
  return { db, dialect: 'sqlite', close: () => db.destroy() };
}

async function migrate(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider(dialect) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`store migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
