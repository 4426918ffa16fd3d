/**
 * Opening the store: the SQLite file under data/ by default, or a Postgres
 * database (src/store/location.ts says which), migrated to the latest schema
 * before anything reads it. One place opens it so the CLI, the daemon and
 * the API all get the same store with the same settings.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, sql } from 'kysely';
import { CodeMigrationProvider, type Dialect } from './migrations.js';
import type { Database } from './schema.js';
import { describeStore, type PostgresConnection, type StoreLocation } from './location.js';
import { defaultDatabasePath } from '../paths.js';
import { AppError, errorMessage } from '../errors.js';
import { readingKysely, SharedSqliteDriver, writingKysely } from './reader.js';

/** Where the store file is by default (src/paths.ts decides). */
export { defaultDatabasePath };

export interface Store {
  readonly db: Kysely<Database>;
  /**
   * For what only reads and may see the last committed state (the API's GETs,
   * the pages, /metrics, a session looked up): on SQLite its plain reads run
   * on a read-only connection of their own, so they never wait for a
   * transaction open on `db` (an ingest's, a tick's); a write or transaction
   * given to it goes to `db`'s connection (src/store/reader.ts). On Postgres
   * and an in-memory SQLite store, `db` itself.
   */
  readonly reader: Kysely<Database>;
  readonly dialect: Dialect;
  close(): Promise<void>;
}

/** `store` as a door that only reads uses it (a GET of the API, a page): every query through its reader. */
export function readingStore(store: Store): Store {
  return store.reader === store.db ? store : { ...store, db: store.reader };
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
  // A transaction's changed pages wait in the page cache (16 MB) until its commit writes them to the WAL: after a
  // big one (a report's rollups merged) that write held the event loop 60 to 160 ms. Past 4 MB they go to the WAL
  // as the transaction runs, a page at a time, so a commit writes at most that much.
  sqlite.pragma('cache_spill = 1000');
  const writer = new SharedSqliteDriver(withStatementCache(sqlite));
  const db = writingKysely(writer);
  // A second connection to :memory: would be another, empty database.
  const reader = path === ':memory:' ? db : readingKysely(writer, () => openReadConnection(path));
  // user_version counts the migrations that ran. When it says all of them (every open after the
  // first), the migrator's lock table and reads are skipped: a command starts sooner. Anything
  // else (a new file, a new migration, a store a newer version migrated) goes to the migrator.
  const latest = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations()).length;
  if (sqlite.pragma('user_version', { simple: true }) !== latest) await migrateSqliteAlone(sqlite, db, latest);
  return {
    db,
    reader,
    dialect: 'sqlite',
    close: async () => {
      // The reader first: the last connection to close checkpoints the WAL into the file, and a read-only one cannot.
      if (reader !== db) await reader.destroy();
      await db.destroy();
    },
  };
}

/** The read-only connection behind Store.reader, opened on its first read (the writer has created and migrated the file). */
function openReadConnection(path: string): SqliteDatabase.Database {
  const sqlite = new SqliteDatabase(path, { readonly: true, fileMustExist: true });
  // A reader in WAL mode waits only in rare moments (the WAL being reset); it rides them out.
  sqlite.pragma('busy_timeout = 5000');
  return withStatementCache(sqlite);
}

/** How long a process waits for another one's migrations of the same file before giving up. */
const MIGRATION_WAIT_MS = 10 * 60_000;

/**
 * kysely runs SQLite migrations outside any transaction, and its migration
 * lock does nothing across processes: two commands opening a new store at
 * once (a CLI command beside a daemon's first start) both ran the same
 * migration and one failed ("duplicate column name"). Here the migrations run
 * inside one BEGIN IMMEDIATE transaction, which a second process cannot also
 * hold: it waits, then finds user_version current and does nothing. A failed
 * migration now also leaves the store as it was, not half-migrated.
 */
async function migrateSqliteAlone(sqlite: SqliteDatabase.Database, db: Kysely<Database>, latest: number): Promise<void> {
  const deadline = Date.now() + MIGRATION_WAIT_MS;
  for (;;) {
    try {
      sqlite.exec('BEGIN IMMEDIATE');
      break;
    } catch (error) {
      // busy_timeout has already waited its 5 s; a long migration elsewhere (a backfill) may need longer.
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
    }
  }
  try {
    if (sqlite.pragma('user_version', { simple: true }) !== latest) {
      await migrate(db, 'sqlite');
      sqlite.pragma(`user_version = ${latest}`);
    }
    sqlite.exec('COMMIT');
  } catch (error) {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    throw error;
  }
}

/**
 * kysely has better-sqlite3 prepare a statement for every query it runs, and
 * a tick runs the same few SQL texts for every domain: preparing them again
 * cost about as much as running them. Statements are kept per SQL text (the
 * 500 most recent). better-sqlite3 runs one statement at a time, to the end,
 * so sharing one is safe; nothing streams rows from this store.
 */
function withStatementCache(sqlite: SqliteDatabase.Database, max = 500): SqliteDatabase.Database {
  const cache = new Map<string, SqliteDatabase.Statement>();
  const prepare = (text: string) => {
    let statement = cache.get(text);
    if (statement) {
      // Most recently used last: the first key is the one to drop.
      cache.delete(text);
    } else {
      statement = sqlite.prepare(text);
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
    }
    cache.set(text, statement);
    return statement;
  };
  return new Proxy(sqlite, {
    get(target, prop) {
      if (prop === 'prepare') return prepare;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Opens the store at `location` (a SQLite file or a Postgres database) and runs pending migrations. */
export function openStore(location: StoreLocation): Promise<Store> {
  return location.kind === 'sqlite' ? openSqliteStore(location.path) : openPostgresStore(location.connection);
}

/**
 * Opens a pool on the Postgres database and runs pending migrations (kysely's
 * migrator takes a lock, so daemons starting together migrate once).
 * bigint and numeric results (counts, sums, the report time columns) come
 * back as numbers, as they do from SQLite, instead of pg's strings.
 * @throws Error naming the store (never its password) when it cannot be reached or migrated.
 */
export async function openPostgresStore(connection: PostgresConnection): Promise<Store> {
  const [{ default: pg }, { PostgresDialect }] = await Promise.all([import('pg'), import('kysely')]);
  const asNumber = (text: string) => Number(text);
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC ? asNumber : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    ...(connection.password !== undefined ? { password: connection.password } : {}),
    ssl: connection.ssl === false ? false : { rejectUnauthorized: connection.ssl.rejectUnauthorized, ...(connection.ssl.ca ? { ca: connection.ssl.ca } : {}) },
    max: connection.poolSize,
    connectionTimeoutMillis: 10_000,
    // Statements that wait on a lock longer than this fail instead of hanging a tick.
    options: '-c lock_timeout=30000',
    application_name: 'dmarc-rollout',
    types,
  });
  // An idle connection the server drops emits here; without a listener the process would exit. The next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    // Reached first, so a wrong password or host reads as such and not as a failed migration.
    await sql`select 1`.execute(db);
    await migrate(db, 'postgres');
  } catch (error) {
    await db.destroy().catch(() => {});
    throw new AppError('unavailable', `${describeStore({ kind: 'postgres', connection })} (${connection.origin}): ${errorMessage(error)}`, { cause: error });
  }
  return { db, reader: db, dialect: 'postgres', close: () => db.destroy() };
}

async function migrate(db: Kysely<Database>, dialect: Dialect): Promise<void> {
  // Migrations written side by side may land out of name order (0013 before 0012): a store that ran the
  // later one first still gets the earlier one, instead of being refused as corrupted. They touch separate tables.
  const migrator = new Migrator({ db, provider: new CodeMigrationProvider(dialect), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const message = errorMessage(error);
    throw new AppError('unavailable', failed ? `store migration ${failed} failed: ${message}` : `store migrations could not run: ${message}`, { cause: error });
  }
}
