/**
 * Opening the store: the SQLite file under data/ by default, migrated to the
 * latest schema before anything reads it. One place decides where the file
 * lives so the CLI, the daemon and the API all open the same one.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { CodeMigrationProvider, type Dialect } from './migrations.js';
import type { Database } from './schema.js';
import { defaultDatabasePath } from '../paths.js';

/** Where the store file is by default (src/paths.ts decides). */
export { defaultDatabasePath };

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
