/**
 * The store's read connection on SQLite. The daemon writes through one
 * connection (SQLite has one writer), and kysely hands that connection to
 * whichever transaction is open: while an ingest merged a big report's rollups
 * (seconds, in one transaction), every page and API read queued behind it,
 * though the merge let the event loop turn. In WAL mode a second connection
 * reads the last committed state without waiting for any writer, so
 * `Store.reader` runs its plain reads (a statement SQLite itself says is a
 * read-only SELECT, outside a transaction) on a read-only connection of its
 * own. Anything else it is given, a write or a transaction, goes to the
 * writer's connection in its turn, as on `Store.db`: a page that measures a
 * stale domain stores the figures it measured (the figures carry the report
 * they were measured up to, so ones measured just before an ingest committed
 * are found stale and measured again, as they were when the write came
 * between the reads on one connection).
 */
import type SqliteDatabase from 'better-sqlite3';
import {
  Kysely,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type { Database } from './schema.js';
import { InternalError } from '../errors.js';

/**
 * kysely's SQLite driver (one connection, queued by a mutex), shared by the
 * store's writing Kysely and its reader: what the reader passes on waits in
 * the same queue as everything else that writes.
 */
export class SharedSqliteDriver implements Driver {
  readonly #inner: SqliteDriver;
  #initialised: Promise<void> | undefined;
  #destroyed: Promise<void> | undefined;

  constructor(database: SqliteDatabase.Database) {
    this.#inner = new SqliteDriver({ database });
  }

  /** Once, whichever of the two Kyselys uses it first. */
  init(): Promise<void> {
    this.#initialised ??= this.#inner.init();
    return this.#initialised;
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    await this.init();
    return this.#inner.acquireConnection();
  }
  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#inner.beginTransaction(connection);
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.commitTransaction(connection);
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.rollbackTransaction(connection);
  }
  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.#inner.savepoint(connection, name, compile);
  }
  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.#inner.rollbackToSavepoint(connection, name, compile);
  }
  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.#inner.releaseSavepoint(connection, name, compile);
  }
  releaseConnection(): Promise<void> {
    return this.#inner.releaseConnection();
  }
  destroy(): Promise<void> {
    this.#destroyed ??= this.#inner.destroy();
    return this.#destroyed;
  }
}

/** A kysely dialect for SQLite over a driver made elsewhere (the shared one, or the reader's). */
class SqliteDialectOn implements Dialect {
  constructor(private readonly driver: Driver) {}
  createDriver(): Driver {
    return this.driver;
  }
  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }
  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

/** The store's writing Kysely on `driver`. */
export function writingKysely(driver: SharedSqliteDriver): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SqliteDialectOn(driver) });
}

/**
 * The reader: plain reads on the connection `open()` makes (opened on first
 * use: a command that never reads through it opens nothing), everything else
 * through `writer`.
 */
export function readingKysely(writer: SharedSqliteDriver, open: () => SqliteDatabase.Database): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SqliteDialectOn(new ReadingDriver(writer, open)) });
}

class ReadingDriver implements Driver {
  #handle: SqliteDatabase.Database | undefined;

  constructor(
    private readonly writer: SharedSqliteDriver,
    private readonly open: () => SqliteDatabase.Database,
  ) {}

  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    return new ReadingConnection(this.writer, () => (this.#handle ??= this.open()));
  }
  // A transaction is the writer's, from its first statement: inside one, reads must see its own writes.
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.writer.beginTransaction(await (connection as ReadingConnection).writing(), settings);
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.writer.commitTransaction((connection as ReadingConnection).held());
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.writer.rollbackTransaction((connection as ReadingConnection).held());
  }
  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.writer.savepoint((connection as ReadingConnection).held(), name, compile);
  }
  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.writer.rollbackToSavepoint((connection as ReadingConnection).held(), name, compile);
  }
  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.writer.releaseSavepoint((connection as ReadingConnection).held(), name, compile);
  }
  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return (connection as ReadingConnection).release();
  }
  async destroy(): Promise<void> {
    this.#handle?.close();
    this.#handle = undefined;
  }
}

/**
 * One use of the reader (a statement, or a transaction): on the read
 * connection until something needs the writer, then on the writer's
 * connection (taken in its turn) until released.
 */
class ReadingConnection implements DatabaseConnection {
  #writer: DatabaseConnection | null = null;

  constructor(
    private readonly shared: SharedSqliteDriver,
    private readonly handle: () => SqliteDatabase.Database,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.#writer === null) {
      const statement = this.handle().prepare(query.sql);
      // SQLite's own answer (sqlite3_stmt_readonly), raw SQL included; BEGIN and the like never come here (the driver's).
      if (statement.readonly && statement.reader) return { rows: statement.all(query.parameters) as R[] };
    }
    return (await this.writing()).executeQuery<R>(query);
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    yield* (await this.writing()).streamQuery<R>(query, chunkSize);
  }

  async writing(): Promise<DatabaseConnection> {
    this.#writer ??= await this.shared.acquireConnection();
    return this.#writer;
  }

  held(): DatabaseConnection {
    if (!this.#writer) throw new InternalError('store reader: a transaction ended that never began');
    return this.#writer;
  }

  async release(): Promise<void> {
    if (!this.#writer) return;
    this.#writer = null;
    await this.shared.releaseConnection();
  }
}
