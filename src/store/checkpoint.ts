/**
 * Checkpoints of a SQLite store off the event loop, after a transaction that
 * wrote a lot. In WAL mode a commit appends its pages to the WAL, and SQLite
 * copies them into the database file (a checkpoint) in the first commit that
 * finds the WAL past 1,000 pages, on the thread that commits. After a small
 * transaction that copy is a few MB (10 to 30 ms); after a big report is
 * counted (its 547,000 rollup entries merged in one transaction at 400 MB)
 * it was the whole transaction, and it held the event loop for about as long
 * as the merge's own statements together. So around such a transaction the
 * connection's automatic checkpoints are paused, and the copy is made by a
 * connection of its own in a worker thread (PASSIVE: it waits for no reader
 * or writer; what a reader still uses stays in the WAL for the next
 * checkpoint); then they resume.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { sql, SqliteAdapter, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** What a worker runs: a PASSIVE checkpoint of the file on a connection of its own. CommonJS (an eval'd worker). */
const CHECKPOINT_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
try {
  db.pragma('busy_timeout = 5000');
  parentPort.postMessage(db.pragma('wal_checkpoint(PASSIVE)')[0]);
} finally {
  db.close();
}
`;

const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');

/** Frames of the WAL and how many a checkpoint copied into the file (SQLite's wal_checkpoint answer). */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

/** A PASSIVE checkpoint of the SQLite file at `file`, made in a worker thread. */
export function checkpointInWorker(file: string): Promise<CheckpointResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(CHECKPOINT_SCRIPT, { eval: true, workerData: { module: betterSqlite3, file }, resourceLimits: { maxOldGenerationSizeMb: 32 } });
    let result: CheckpointResult | undefined;
    worker.once('message', (r: CheckpointResult) => (result = r));
    worker.once('error', reject);
    worker.once('exit', (code) => (result ? resolve(result) : reject(new Error(`checkpoint of ${file}: worker exited with ${code}`))));
  });
}

/** Paused automatic checkpoints of one connection; resume() checkpoints elsewhere first. */
export interface PausedCheckpoints {
  /** Checkpoints the file in a worker, then gives the connection back its automatic checkpoints, through `db`. */
  resume(db: Kysely<Database>): Promise<void>;
}

/**
 * Pauses the automatic checkpoints of the SQLite connection behind `conn`
 * (the transaction about to write a lot, or its store). Null on Postgres and
 * on an in-memory store (nothing to copy).
 */
export async function pauseCheckpoints(conn: Kysely<Database>): Promise<PausedCheckpoints | null> {
  if (!(conn.getExecutor().adapter instanceof SqliteAdapter)) return null;
  const files = await sql<{ name: string; file: string }>`pragma database_list`.execute(conn);
  const file = files.rows.find((r) => r.name === 'main')?.file;
  if (!file) return null;
  const { rows } = await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(conn);
  const pages = Number(rows[0]?.wal_autocheckpoint ?? 1000);
  await sql`pragma wal_autocheckpoint = 0`.execute(conn);
  let resumed = false;
  return {
    async resume(db) {
      if (resumed) return;
      resumed = true;
      try {
        await checkpointInWorker(file);
      } finally {
        // An integer of ours, not input: a PRAGMA takes no bound parameter.
        await sql.raw(`pragma wal_autocheckpoint = ${Math.trunc(pages)}`).execute(db);
      }
    },
  };
}
