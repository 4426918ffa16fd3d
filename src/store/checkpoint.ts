/**
 * Checkpoints of a SQLite store off the event loop while a big report is
 * stored. In WAL mode a commit appends its pages to the WAL, and SQLite
 * copies them into the database file (a checkpoint, with a disk sync) in the
 * first commit that finds the WAL past 1,000 pages, on the thread that
 * commits. While a big report streams in, that is every few commits, 10 to 30
 * ms each on a quiet disk and over 100 ms on a busy one; after it is counted
 * (its 547,000 rollup entries merged in one transaction at 400 MB) it was the
 * whole transaction, and it held the event loop for about a second. So while
 * such a report is stored the connection's automatic checkpoints are paused,
 * and a connection of its own in a worker thread checkpoints the file every
 * CHECKPOINT_EVERY_MS (PASSIVE: it waits for no reader or writer; what a
 * reader still uses stays in the WAL for the next one), and once more when
 * the last report that paused them is done; then they resume.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { sql, SqliteAdapter, type DialectAdapter, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import { PACKAGE_ROOT } from '../paths.js';

/** How often the worker checkpoints while paused: the WAL grows by at most what is written meanwhile (a few MB). */
const CHECKPOINT_EVERY_MS = 250;

/**
 * What a worker runs (CommonJS: an eval'd worker): a PASSIVE checkpoint of
 * the file every `everyMs`, and a last one when told to stop, whose answer
 * it sends back.
 */
const CHECKPOINT_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
const checkpoint = () => db.pragma('wal_checkpoint(PASSIVE)')[0];
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.once('message', () => {
  clearInterval(timer);
  try {
    parentPort.postMessage(checkpoint());
  } finally {
    db.close();
    parentPort.close();
  }
});
`;

// Resolved from the package (an eval'd worker's require starts from the process's working folder).
const betterSqlite3 = createRequire(join(PACKAGE_ROOT, 'package.json')).resolve('better-sqlite3');

/** Frames of the WAL and how many the last checkpoint had copied into the file (SQLite's wal_checkpoint answer). */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** A worker thread checkpointing the SQLite file `file` every `everyMs` until stop(), which makes a last checkpoint. */
function checkpointWorker(file: string, everyMs: number): { stop(): Promise<CheckpointResult>; failed: Promise<Error> } {
  const worker = new Worker(CHECKPOINT_SCRIPT, {
    eval: true,
    workerData: { module: betterSqlite3, file, everyMs },
    // It runs one statement: a small heap and stack (about 10 MB of RSS instead of 16), and none of the process's
    // flags (under tsx, its loader would start in the worker too).
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2, stackSizeMb: 2 },
    execArgv: [],
  });
  let result: CheckpointResult | undefined;
  const ended = new Promise<void>((resolve, reject) => {
    worker.once('message', (r: CheckpointResult) => (result = r));
    worker.once('error', reject);
    worker.once('exit', (code) => (result ? resolve() : reject(new Error(`checkpoints of ${file}: the worker exited with ${code}`))));
  });
  return {
    async stop() {
      worker.postMessage('stop');
      await ended;
      return result!;
    },
    // Set aside so an early failure is never an unhandled rejection; the pause below watches it.
    failed: ended.then(
      () => new Promise<Error>(() => {}),
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    ),
  };
}

/** One connection's pause: its holders, its setting before, and the worker checkpointing meanwhile. */
interface Pause {
  holders: number;
  started: Promise<{ pages: number; worker: ReturnType<typeof checkpointWorker> }>;
}

/** Pauses by connection (a Kysely and its transactions share the adapter), so reports stored at once share one. */
const pauses = new WeakMap<DialectAdapter, Pause>();

/** A pause of automatic checkpoints; resume() ends it (once). */
export interface PausedCheckpoints {
  resume(): Promise<void>;
}

/**
 * Pauses the automatic checkpoints of the SQLite connection behind `db` (not
 * a transaction: the settings are changed through it) and checkpoints the
 * file from a worker thread until every holder resumed; then the last
 * checkpoint, and the connection's setting as it was. Null on Postgres and
 * on an in-memory store (nothing to copy).
 */
export async function pauseCheckpoints(db: Kysely<Database>, opts: { everyMs?: number } = {}): Promise<PausedCheckpoints | null> {
  const adapter = db.getExecutor().adapter;
  if (!(adapter instanceof SqliteAdapter)) return null;
  const file = (await sql<{ name: string; file: string }>`pragma database_list`.execute(db)).rows.find((r) => r.name === 'main')?.file;
  if (!file) return null;
  let pause = pauses.get(adapter);
  if (!pause) {
    const started = (async () => {
      const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db);
      const pages = Math.trunc(Number(rows[0]?.wal_autocheckpoint ?? 1000));
      await sql`pragma wal_autocheckpoint = 0`.execute(db);
      const worker = checkpointWorker(file, opts.everyMs ?? CHECKPOINT_EVERY_MS);
      // A worker that fails leaves the checkpoints to the commits again rather than to nobody.
      void worker.failed.then(() => restore(db, pages).catch(() => undefined));
      return { pages, worker };
    })();
    pause = { holders: 0, started };
    pauses.set(adapter, pause);
  }
  const mine = pause;
  mine.holders++;
  try {
    await mine.started;
  } catch (error) {
    if (--mine.holders === 0 && pauses.get(adapter) === mine) pauses.delete(adapter);
    throw error;
  }
  let resumed = false;
  return {
    async resume() {
      if (resumed) return;
      resumed = true;
      if (--mine.holders > 0) return;
      if (pauses.get(adapter) === mine) pauses.delete(adapter);
      const { pages, worker } = await mine.started;
      try {
        await worker.stop();
      } finally {
        await restore(db, pages);
      }
    },
  };
}

// An integer of ours, not input: a PRAGMA takes no bound parameter.
const restore = (db: Kysely<Database>, pages: number) => sql.raw(`pragma wal_autocheckpoint = ${pages}`).execute(db);
