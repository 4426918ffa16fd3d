/**
 * Several daemons share one Postgres (each replica runs its own SMTP
 * listener; mailboxes and folders are polled under leases), so the same
 * report, or two reports of one reporter for one domain and day, can be
 * ingested at the same moment by two writers. Both add to the same daily
 * rollup entries. Every such ingest must end stored or as a duplicate (never
 * an error from a deadlock or a lost insert race), the rollups must hold each
 * counted report once, a re-sent copy arriving at the same time must still
 * be flagged and not counted, and nothing may be left half stored. Run on
 * both stores through the real ingest, with two store handles on one
 * Postgres database. Before the fix, on Postgres: two reports sharing entries
 * deadlocked in 8 of 8 rounds (2 or 3 of the 4 ingests ending as errors), and
 * a report and its re-sent copy were both counted in 7 of 8.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { openStore, type Store } from '../src/store/open.js';
import { storeDialects } from './helpers/dialects.js';
import { aggregateReportXml, cleanRow, type GeneratedRow } from './helpers/reports.js';
import { tempDir } from './helpers/temp-dirs.js';

const DOMAIN = 'concurrent.example';
const DAY = '2026-05-06';
/** Six batches of the parser's 100 records: rollups were written batch by batch. */
const SOURCES = 600;

function rows(countOf: (i: number) => number): GeneratedRow[] {
  return Array.from({ length: SOURCES }, (_, i) => cleanRow(DOMAIN, `198.51.${Math.floor(i / 250)}.${i % 250}`, countOf(i)));
}

/** One reporter's report for the day: every source once. */
const first = rows((i) => 1 + (i % 7));
/** A second report for the same day and sources (a reporter that splits its day), records in the opposite order. */
const second = rows((i) => 2 + (i % 5)).reverse();
const xmlOf = (reportId: string, r: GeneratedRow[]) => Buffer.from(aggregateReportXml({ reporter: 'receiver.example', domain: DOMAIN, day: DAY, reportId, rows: r }));
const FIRST = xmlOf('split-1', first);
const SECOND = xmlOf('split-2', second);
/** The first report re-sent by its reporter under a new report_id, records in another order: stored, flagged, not counted. */
const RESENT = xmlOf('split-1-again', [...first].reverse());
const sum = (r: GeneratedRow[]) => r.reduce((n, x) => n + x.count, 0);

interface Figures {
  reports: number;
  counted: number;
  pending: number;
  rows: number;
  rollupMessages: number;
  rollupRecords: number;
  rollupEntries: number;
}

async function figures(store: Store): Promise<Figures> {
  const db = store.db;
  const reports = await db
    .selectFrom('reports')
    .select([
      (eb) => eb.fn.countAll<number>().as('n'),
      sql<number>`coalesce(sum(counted), 0)`.as('counted'),
      sql<number>`coalesce(sum(case when content_hash like 'pending:%' then 1 else 0 end), 0)`.as('pending'),
    ])
    .executeTakeFirstOrThrow();
  const rowCount = await db.selectFrom('report_rows').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const rollups = await db
    .selectFrom('daily_rollups')
    .select([
      sql<number>`coalesce(sum(messages), 0)`.as('messages'),
      sql<number>`coalesce(sum(records), 0)`.as('records'),
      (eb) => eb.fn.countAll<number>().as('n'),
    ])
    .executeTakeFirstOrThrow();
  return {
    reports: Number(reports.n),
    counted: Number(reports.counted),
    pending: Number(reports.pending),
    rows: Number(rowCount.n),
    rollupMessages: Number(rollups.messages),
    rollupRecords: Number(rollups.records),
    rollupEntries: Number(rollups.n),
  };
}

/**
 * Two handles on one new database, as two daemons have on Postgres. On
 * SQLite a daemon is alone on its file (the single-instance lock) and its
 * sources share its one handle, whose transactions kysely runs one at a
 * time: that is the shape tested there. (Two handles in one process cannot
 * work on SQLite: a writer waiting for the file's lock waits synchronously,
 * so the holder, in the same event loop, never gets to commit.)
 */
async function twoHandles(dialect: ReturnType<typeof storeDialects>[number]): Promise<[Store, Store]> {
  const location = await dialect.location();
  const a = await openStore(location);
  if (dialect.name === 'sqlite') return [a, { ...a, close: async () => {} }];
  const b = await openStore(location);
  return [a, b];
}

const ROUNDS = 8;

/**
 * Runs `inputs` concurrently, alternating the two handles, on a new database
 * per round; returns what went wrong in each round (empty: nothing).
 */
async function rounds(
  dialect: ReturnType<typeof storeDialects>[number],
  inputs: Buffer[],
  expected: Omit<Figures, 'reports'> & { stored: number },
  /** The rollup entries input i may hold before writing them as it goes (undefined: the default). */
  held: (i: number) => number | undefined = () => undefined,
): Promise<string[]> {
  const problems: string[] = [];
  const rejectedDir = tempDir('dmarc-rollout-concurrent-');
  for (let round = 0; round < ROUNDS; round++) {
    const [a, b] = await twoHandles(dialect);
    try {
      const results: IngestResult[] = await Promise.all(
        inputs.map((bytes, i) => ingestInput((i % 2 === 0 ? a : b).db, { bytes }, `copy-${i}.xml`, { rejectedDir, ...(held(i) ? { rollupEntriesHeld: held(i) } : {}) })),
      );
      const wrong = results.filter((r) => r.status !== 'stored' && r.status !== 'duplicate');
      const stored = results.filter((r) => r.status === 'stored').length;
      const f = await figures(a);
      const got = { stored, counted: f.counted, pending: f.pending, rows: f.rows, rollupMessages: f.rollupMessages, rollupRecords: f.rollupRecords, rollupEntries: f.rollupEntries };
      if (wrong.length > 0) problems.push(`round ${round}: ${wrong.map((r) => `${r.status}: ${'reason' in r ? r.reason : ''}`).join('; ')}`);
      else if (JSON.stringify(got) !== JSON.stringify(expected)) problems.push(`round ${round}: figures ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
      if (f.reports !== stored) problems.push(`round ${round}: ${f.reports} reports in the store, ${stored} stored`);
    } finally {
      await a.close();
      await b.close();
    }
  }
  return problems;
}

for (const dialect of storeDialects()) {
  describe(`concurrent ingest of reports sharing rollup entries (${dialect.name})`, () => {
    it('stores one copy of a report ingested four times at once and counts it once', async () => {
      const problems = await rounds(dialect, [FIRST, FIRST, FIRST, FIRST], {
        stored: 1,
        counted: 1,
        pending: 0,
        rows: SOURCES,
        rollupMessages: sum(first),
        rollupRecords: SOURCES,
        rollupEntries: SOURCES,
      });
      assert.deepEqual(problems, [], `${problems.length} of ${ROUNDS} rounds went wrong`);
    });

    it('stores and counts both of two reports for the same day and sources ingested at once (records in opposite orders)', async () => {
      const problems = await rounds(dialect, [FIRST, SECOND, FIRST, SECOND], {
        stored: 2,
        counted: 2,
        pending: 0,
        rows: 2 * SOURCES,
        rollupMessages: sum(first) + sum(second),
        rollupRecords: 2 * SOURCES,
        rollupEntries: SOURCES,
      });
      assert.deepEqual(problems, [], `${problems.length} of ${ROUNDS} rounds went wrong`);
    });

    const both = { stored: 2, counted: 2, pending: 0, rows: 2 * SOURCES, rollupMessages: sum(first) + sum(second), rollupRecords: 2 * SOURCES, rollupEntries: SOURCES };

    it('stores and counts both when their rollup entries are too many to hold and are written batch by batch', async () => {
      // Past the cap a report's entries go out a sorted batch at a time, in the report's order (opposite
      // orders here): such reports of one domain queue for each other on Postgres.
      const problems = await rounds(dialect, [FIRST, SECOND, FIRST, SECOND], both, () => 50);
      assert.deepEqual(problems, [], `${problems.length} of ${ROUNDS} rounds went wrong`);
    });

    it('stores and counts both when only one writes its entries batch by batch (a retry after a deadlock)', async () => {
      // The batch-by-batch writer and the one-pass writer can deadlock on Postgres; the aborted report is stored again from its bytes.
      const problems = await rounds(dialect, [FIRST, SECOND, FIRST, SECOND], both, (i) => (i % 2 === 0 ? 50 : undefined));
      assert.deepEqual(problems, [], `${problems.length} of ${ROUNDS} rounds went wrong`);
    });

    it('counts a report once when its re-sent copy (a new report_id) is ingested at the same time', async () => {
      const problems = await rounds(dialect, [FIRST, RESENT, FIRST, RESENT], {
        stored: 2,
        counted: 1,
        pending: 0,
        rows: 2 * SOURCES,
        rollupMessages: sum(first),
        rollupRecords: SOURCES,
        rollupEntries: SOURCES,
      });
      assert.deepEqual(problems, [], `${problems.length} of ${ROUNDS} rounds went wrong`);
    });
  });
}
