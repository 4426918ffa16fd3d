/**
 * Store once. A report is identified by (org, report_id, policy domain,
 * begin, end): report ids collide across reporters and some reporters reuse
 * them across date ranges, so no smaller key is safe. Per identity:
 *  - the first copy is stored and counted;
 *  - a later copy with the same content hash (the normalised report, so the
 *    same XML plain, gzipped or mailed is one report) is a duplicate: the
 *    stored row's `duplicates` goes up, nothing else is written;
 *  - a later copy with a different hash is a changed copy: it is stored, with
 *    `counted = 0` and a flag naming the copy it differs from.
 * Reporters also re-send a report under a new report_id (a retry after a
 * delivery error, a second mailing), often with its records in another order
 * or laid out differently. So a report with a new identity whose reporter,
 * policy domain, date range and rows digest (src/report-model/digest.ts: the
 * records as a set, not the XML) equal a stored copy's is a re-sent copy:
 * stored, `counted = 0`, flagged with the copy it repeats. A second report
 * for the same day with other rows (a reporter that splits a day) counts.
 * The first stored copy keeps counting because the engine may already have
 * measured and decided on it; silently swapping the figures under a past
 * decision would make the audit log lie. The flag puts the conflict in front
 * of a person instead.
 *
 * A report's rows are written in batches as the parser streams them, so
 * memory does not grow with the report, and it is decided and counted in one
 * transaction at the end, so an interrupted ingest leaves nothing counted
 * and nothing half visible. On Postgres the whole report is one transaction
 * (a pool serves everyone else); on SQLite, whose one connection every
 * query of the daemon shares, a big report is staged in short transactions
 * (see ReportWriter). A counted report's rows
 * are summed by rollup entry as they stream (a report has far fewer distinct
 * entries than rows) and the sums written in one pass, in key order, at the
 * end of the transaction: several daemons on one Postgres (or two sources of
 * one daemon) storing reports of the same domain, reporter and day add to
 * the same entries, and a common lock order keeps them from deadlocking.
 * Should Postgres still abort a report's transaction for a conflict
 * (deadlock, serialization failure, a lost race on the content hash), the
 * whole report is stored again from its input (a file or bytes in memory,
 * both read from the start again), a few times with backoff.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { CompiledQuery, PostgresAdapter, SqliteAdapter, sql, type ControlledTransaction, type Insertable, type Kysely } from 'kysely';
import { applyRollups, markRollupChange, RollupBatch, rollUpStoredReports } from '../store/rollups.js';
import { dropStagedRollups, mergeStagedRollups, stageRollups } from '../store/staged-rollups.js';
import { pauseCheckpoints, type PausedCheckpoints } from '../store/checkpoint.js';
import type { DailyRollupsTable as RollupEntry, Database, NewReportRecord, ReportsTable } from '../store/schema.js';
import { RowsDigest } from '../report-model/digest.js';
import type { ReportHeader, ReportRecord } from '../report-model/model.js';
import { AppError } from '../errors.js';
import { budgetSubject, type Spent } from './budget.js';
import { readReport, type ParseOptions, type ReadReport } from './parse.js';
import type { RawInput } from './streams.js';

export type StoredOutcome =
  | { status: 'stored'; id: number; counted: boolean; flag: string | null; report: ReadReport }
  | { status: 'duplicate'; id: number; report: ReadReport };

interface ExistingCopy {
  id: number;
  content_hash: string;
  counted: number;
}

/** Rows per INSERT statement (12 columns each: well under every dialect's parameter limit). */
const ROWS_PER_INSERT = 400;

const PENDING = 'pending:';

function rowValues(reportId: number, r: ReportRecord): NewReportRecord {
  return {
    report: reportId,
    source_ip: r.source_ip,
    count: r.count,
    disposition: r.disposition,
    dkim: r.dkim,
    spf: r.spf,
    header_from: r.header_from,
    envelope_from: r.envelope_from,
    envelope_to: r.envelope_to,
    reasons: JSON.stringify(r.reasons),
    auth_dkim: JSON.stringify(r.auth_dkim),
    auth_spf: JSON.stringify(r.auth_spf),
  };
}

const ROW_COLUMNS = [
  'report',
  'source_ip',
  'count',
  'disposition',
  'dkim',
  'spf',
  'header_from',
  'envelope_from',
  'envelope_to',
  'reasons',
  'auth_dkim',
  'auth_spf',
] as const;

/**
 * A full batch's INSERT, compiled by kysely once per connection dialect and
 * reused: building the query tree for every batch cost more than SQLite's
 * own work. The cached SQL is used only after checking that kysely binds the
 * parameters row by row in ROW_COLUMNS order.
 */
const compiledInserts = new WeakMap<object, string | null>();

async function insertRows(trx: Kysely<Database>, rows: NewReportRecord[]): Promise<void> {
  const params = (): unknown[] => rows.flatMap((r) => ROW_COLUMNS.map((c) => r[c] ?? null));
  const cacheKey = trx.getExecutor().adapter;
  const cached = rows.length === ROWS_PER_INSERT ? compiledInserts.get(cacheKey) : undefined;
  if (cached) {
    await trx.executeQuery(CompiledQuery.raw(cached, params()));
    return;
  }
  const query = trx.insertInto('report_rows').values(rows);
  if (rows.length === ROWS_PER_INSERT && cached === undefined) {
    const compiled = query.compile();
    const ours = params();
    const same = compiled.parameters.length === ours.length && compiled.parameters.every((v, i) => v === ours[i]);
    compiledInserts.set(cacheKey, same ? compiled.sql : null);
  }
  await query.execute();
}

async function copiesOf(db: Kysely<Database>, h: ReportHeader, exceptId?: number): Promise<ExistingCopy[]> {
  let q = db
    .selectFrom('reports')
    .select(['id', 'content_hash', 'counted'])
    .where('org', '=', h.metadata.org)
    .where('report_id', '=', h.metadata.report_id)
    .where('domain', '=', h.policy.domain)
    .where('begin', '=', h.metadata.begin)
    .where('end', '=', h.metadata.end)
    .where('content_hash', 'not like', `${PENDING}%`);
  if (exceptId !== undefined) q = q.where('id', '!=', exceptId);
  return (await q.orderBy('id').execute()) as ExistingCopy[];
}

function changedFlag(copies: ExistingCopy[]): string {
  const first = copies.find((c) => c.counted === 1) ?? copies[0]!;
  return `changed copy: same report as #${first.id} (content ${first.content_hash.slice(0, 12)}) with different content; #${first.id} is the one counted`;
}

interface RepeatedCopy {
  id: number;
  report_id: string;
  counted: number;
}

/**
 * A stored report of the same reporter, policy domain and date range with the
 * same rows, under another report_id: one read of the rows-digest index.
 */
async function repeatedCopy(db: Kysely<Database>, h: ReportHeader, rowsDigest: string, exceptId: number): Promise<RepeatedCopy | null> {
  const copy = await db
    .selectFrom('reports')
    .select(['id', 'report_id', 'counted'])
    .where('rows_digest', '=', rowsDigest)
    .where('domain', '=', h.policy.domain)
    // Some reporters change the case of their org_name between sends.
    .where(sql<string>`lower(org)`, '=', h.metadata.org.toLowerCase())
    .where('begin', '=', h.metadata.begin)
    .where('end', '=', h.metadata.end)
    .where('id', '!=', exceptId)
    .orderBy('counted', 'desc')
    .orderBy('id')
    .executeTakeFirst();
  return copy ? { id: Number(copy.id), report_id: copy.report_id, counted: Number(copy.counted) } : null;
}

function resentFlag(copy: RepeatedCopy): string {
  return `re-sent copy: same reporter, domain, date range and rows as #${copy.id} (report_id ${copy.report_id}) under a new report_id; ${
    copy.counted === 1 ? `#${copy.id} is the one counted` : `neither is counted (#${copy.id} is not counted either)`
  }`;
}

function metadataJson(report: ReadReport): string {
  const { metadata, policy } = report.header;
  return JSON.stringify({
    email: metadata.email,
    extra_contact_info: metadata.extra_contact_info,
    errors: metadata.errors,
    generator: metadata.generator,
    version: metadata.version,
    namespace: metadata.namespace,
    member: report.member,
    policy_published: policy,
    figures: report.figures,
  });
}

/**
 * Attempts at storing one report when Postgres aborts its transaction for a
 * conflict with a concurrent writer (another replica or source storing a
 * report that shares rollup entries or its content hash).
 */
const STORE_ATTEMPTS = 5;
/** Upper bound of the random wait before the second attempt; it doubles for each attempt after. */
const RETRY_JITTER_MS = 100;

/** The advisory-lock class (first key) under which reports that write their rollups as they go queue per policy domain. */
const SPILL_LOCK_CLASS = 0x0d3a_0012;

/**
 * A report that writes its rollup entries as it goes (past
 * ROLLUP_ENTRIES_HELD) takes them in its own order, not in key order. On
 * Postgres it first waits for any other such report of the same policy
 * domain (a transaction advisory lock, released at commit or rollback), so
 * two of them never deadlock with each other; it holds no rollup entry while
 * it waits, so it waits without the store's lock_timeout (Postgres still
 * detects a deadlock). Against an ordinary report a deadlock stays possible,
 * and the retry of storeReport covers it. SQLite runs one writer at a time
 * already.
 */
async function serialiseSpills(trx: Kysely<Database>, domain: string): Promise<void> {
  if (!(trx.getExecutor().adapter instanceof PostgresAdapter)) return;
  // The other report may take minutes (it is a big one): wait it out rather than fail at the store's lock_timeout.
  const { rows } = await sql<{ previous: string }>`select current_setting('lock_timeout') as previous, set_config('lock_timeout', '0', true)`.execute(trx);
  await sql`select pg_advisory_xact_lock(${SPILL_LOCK_CLASS}, hashtext(${domain}))`.execute(trx);
  await sql`select set_config('lock_timeout', ${rows[0]!.previous}, true)`.execute(trx);
}

/** The advisory-lock class under which copies of one reporter's report for a domain and range queue. */
const COPIES_LOCK_CLASS = 0x0d3a_0016;

/**
 * Before a report looks for the copies it may repeat (same file, changed
 * copy, re-sent copy), it waits on Postgres for any other report of the same
 * reporter, policy domain and range still being stored, so it sees that one
 * committed: without this, two copies ingested at once by two daemons each
 * saw no other and both counted. Taken after the rows are written and
 * before any rollup entry is (only a report past ROLLUP_ENTRIES_HELD holds
 * some already; a deadlock with it is retried). Read committed reads each
 * statement afresh, so the checks after the wait see the other copy.
 */
async function serialiseCopies(trx: Kysely<Database>, h: ReportHeader): Promise<void> {
  if (!(trx.getExecutor().adapter instanceof PostgresAdapter)) return;
  const identity = JSON.stringify([h.metadata.org.toLowerCase(), h.policy.domain, h.metadata.begin, h.metadata.end]);
  await sql`select pg_advisory_xact_lock(${COPIES_LOCK_CLASS}, hashtext(${identity}))`.execute(trx);
}

/**
 * Distinct rollup entries of one report summed in memory before they are
 * written: a report's entries are written in one pass, in key order, at the
 * end of its transaction, so two writers adding to the same entries lock them
 * in the same order and cannot deadlock. A real report has far fewer
 * distinct entries than rows (a source repeats across rows); only a report
 * past this many (a hostile or pathological one) writes them as it goes, a
 * sorted batch at a time, and then relies on the retry of storeReport.
 * About 0.5 KB an entry: the cap holds memory near 10 MB.
 */
export const ROLLUP_ENTRIES_HELD = 20_000;

/** Postgres's SQLSTATE on an error or any of its causes. */
function sqlState(e: unknown): string | null {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return null;
}

/**
 * Why a failed attempt is worth another: Postgres chose it as a deadlock
 * victim (40P01) or aborted it for serialization (40001), or it lost the
 * race of storing the same content to a writer whose copy then vanished (a
 * unique violation, 23505, with no stored twin to call it a duplicate of).
 * SQLite runs one writer at a time, so none of these happens there.
 */
function retryableConflict(e: unknown): string | null {
  const state = sqlState(e);
  if (state === '40P01') return 'deadlock';
  if (state === '40001') return 'serialization failure';
  if (state === '23505') return 'unique violation';
  return null;
}

function isUniqueViolation(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /UNIQUE constraint|duplicate key value|unique/i.test(msg);
}

export interface StoreOptions extends Omit<ParseOptions, 'sink'> {
  /** Where the report came from (file path, imap:..., upload:...). */
  source: string;
  now?: () => Date;
  /** Distinct rollup entries held before writing them as it goes (default ROLLUP_ENTRIES_HELD; tests lower it). */
  rollupEntriesHeld?: number;
  /** Staged rollup entries merged per statement when the report counts (default APPLY_SLICE; tests lower it to hold that transaction open across many turns). */
  mergeSlice?: number;
}

/**
 * Parses `input` and stores it once. Throws the parser's ReportError (after
 * taking back anything written) when the input is not a usable report.
 */
export async function storeReport(db: Kysely<Database>, input: RawInput, options: StoreOptions): Promise<StoredOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await storeOnce(db, input, options);
    } catch (e) {
      const why = retryableConflict(e);
      if (!why || attempt >= STORE_ATTEMPTS) throw e;
      // Everything this attempt wrote was rolled back, its budget charge with it; the input (a file or bytes in memory) is read again from its start.
      // Exponential, with jitter: writers that collided do not collide again in step.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * RETRY_JITTER_MS * 2 ** (attempt - 1)));
    }
  }
}

async function storeOnce(db: Kysely<Database>, input: RawInput, options: StoreOptions): Promise<StoredOutcome> {
  const now = options.now ?? (() => new Date());
  const first = await writePass(db, input, options, now, false);
  if (first.kind === 'done') return first.outcome;
  // Same identity was already stored. Equal hash: a duplicate. Otherwise a changed copy, stored uncounted.
  const { report, copies } = first;
  const same = copies.find((c) => c.content_hash === report.contentHash);
  if (same) return countDuplicate(db, input, report, same.id);
  const second = await writePass(db, input, options, now, true);
  if (second.kind === 'done') return second.outcome;
  // The input changed between the two reads (it should not): report what the second read saw.
  const again = second.copies.find((c) => c.content_hash === second.report.contentHash);
  if (again) return countDuplicate(db, input, second.report, again.id);
  throw new AppError('conflict', `${options.source}: input changed while it was being stored`);
}

/**
 * Spends the report's records from its reporter's budget through `t`, the
 * transaction that stores the report, as its last statement before the
 * commit (on a shared store the counter's row stays locked until then).
 */
async function spendBudget(t: Kysely<Database>, input: RawInput, report: ReadReport): Promise<Spent | null> {
  return input.budget ? input.budget.spend(budgetSubject(report.header.metadata), report.figures.records, t) : null;
}

/**
 * A duplicate: the stored copy's count goes up. Its records are spent like
 * any report's, in the same transaction (it was read in full; one report
 * sent again and again is a flood like any other).
 */
async function countDuplicate(db: Kysely<Database>, input: RawInput, report: ReadReport, id: number): Promise<StoredOutcome> {
  let spent: Spent | null = null;
  try {
    await db.transaction().execute(async (t) => {
      await t.updateTable('reports').set((eb) => ({ duplicates: eb('duplicates', '+', 1) })).where('id', '=', id).execute();
      spent = await spendBudget(t, input, report);
    });
  } catch (e) {
    (spent as Spent | null)?.giveBack();
    throw e;
  }
  return { status: 'duplicate', id, report };
}

type PassResult =
  | { kind: 'done'; outcome: StoredOutcome }
  | { kind: 'known'; report: ReadReport; copies: ExistingCopy[] };

/** The reports row a report starts as, before it is read to the end. */
type StartingReport = Omit<Insertable<ReportsTable>, 'content_hash' | 'counted' | 'staged_at'>;

/**
 * Where one report's rows go while it streams, and the transaction that
 * then decides whether and how it counts. Two ways, one outcome:
 *  - whole (Postgres): one transaction from the first row to the decision,
 *    on one of the pool's connections; the rest of the daemon uses the
 *    others. A failure rolls everything back.
 *  - staged (SQLite): the daemon has one connection, and a transaction open
 *    for the minutes a big report takes to read held every page, sign-in and
 *    tick for those minutes. The report row is written first, as staged
 *    (`staged_at` set, a `pending:` hash, no domain, not counted: no query of
 *    the engine, the pages or dedup finds it), its rows (and rollup sums
 *    past the ones held in memory) in a transaction committed whenever it
 *    has been open STAGED_HOLD_MS, and the decision (dedup, counted,
 *    rollups, budget) in the last one; a small report is all one
 *    transaction. A failure deletes the staged report; a process that dies
 *    leaves it staged, never counted, and the next ingest deletes it: at
 *    once on the same host (its pid is gone), else once it has made no
 *    progress for STALE_STAGED_MS (deleteStaleStaged).
 */
interface ReportWriter {
  readonly id: number;
  /** The transaction holding the whole report (whole), null when staged. */
  readonly whole: ControlledTransaction<Database> | null;
  rows(rows: NewReportRecord[]): Promise<void>;
  /** Runs `work` in the transaction writing the report (staged: the one open now, committed after if it has been open for STAGED_HOLD_MS). */
  run(work: (t: Kysely<Database>) => Promise<void>): Promise<void>;
  /** The transaction the report is decided and counted in (whole: the one already open; staged: the one open now, or a new one). */
  deciding(): Promise<ControlledTransaction<Database>>;
  /** Takes back everything written (after a failure, or for a duplicate found at the end), then settles. */
  discard(): Promise<void>;
  /** From now until settle(), the store's checkpoints are made in a worker thread (staged: src/store/checkpoint.ts). */
  checkpointsElsewhere(): Promise<void>;
  /** Once the report is stored or discarded: the checkpoints back where they were. Never fails. */
  settle(): Promise<void>;
}

async function insertBatch(t: Kysely<Database>, rows: NewReportRecord[]): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) await insertRows(t, rows.slice(i, i + ROWS_PER_INSERT));
}

async function wholeWriter(db: Kysely<Database>, values: StartingReport): Promise<ReportWriter> {
  const trx = await db.startTransaction().execute();
  let open = true;
  try {
    const inserted = await trx
      .insertInto('reports')
      .values({ ...values, content_hash: `${PENDING}${randomUUID()}`, counted: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    const id = Number(inserted.id);
    return {
      id,
      whole: trx,
      rows: (rows) => insertBatch(trx, rows),
      run: (work) => work(trx),
      deciding: async () => trx,
      discard: async () => {
        if (!open) return;
        open = false;
        await trx.rollback().execute();
      },
      checkpointsElsewhere: async () => undefined,
      settle: async () => undefined,
    };
  } catch (e) {
    await trx.rollback().execute().catch(() => undefined);
    throw e;
  }
}

/** A staged report's transaction is committed once open this long: the longest another query waits for an ingest (about). */
const STAGED_HOLD_MS = 25;
/** A staged report still being stored after this long is a big one: its checkpoints are made in a worker from then on. */
const CHECKPOINTS_ELSEWHERE_AFTER_MS = 1000;
/** A staged report with no progress for this long belongs to a process that died: deleted, its input ingestable again. */
export const STALE_STAGED_MS = 10 * 60_000;
/** Rows of a discarded staged report deleted per transaction (short, like the batches that wrote them). */
const DISCARD_ROWS_PER_TRANSACTION = 5000;

async function stagedWriter(db: Kysely<Database>, values: StartingReport, now: () => Date): Promise<ReportWriter> {
  // A report is written in a transaction that is committed (as staged) whenever it has been open for STAGED_HOLD_MS:
  // a small report is written, decided and counted in one transaction, a big one in short ones.
  let open: ControlledTransaction<Database> | null = await db.startTransaction().execute();
  let openedAt = performance.now();
  const startedAt = openedAt;
  let committed = false;
  let paused: Promise<PausedCheckpoints | null> | null = null;
  let id: number;
  try {
    const inserted = await open
      .insertInto('reports')
      // No domain yet: what reads a domain's reports (the tick's and the page's staleness marks) does not see it until it counts.
      .values({ ...values, domain: '', content_hash: `${PENDING}${STAGED_BY}:${randomUUID()}`, counted: 0, staged_at: now().getTime() })
      .returning('id')
      .executeTakeFirstOrThrow();
    id = Number(inserted.id);
  } catch (e) {
    await open.rollback().execute().catch(() => undefined);
    throw e;
  }
  const current = async (): Promise<ControlledTransaction<Database>> => {
    if (!open) {
      open = await db.startTransaction().execute();
      openedAt = performance.now();
      // A write first: the transaction takes the file's write lock now (waiting out another process's as
      // busy_timeout allows), where a read first could fail later on upgrading if another process wrote meanwhile.
      await open.updateTable('reports').set({ staged_at: now().getTime() }).where('id', '=', id).execute();
    }
    return open;
  };
  const run = async (work: (t: Kysely<Database>) => Promise<void>): Promise<void> => {
    const t = await current();
    await work(t);
    if (performance.now() - openedAt < STAGED_HOLD_MS) return;
    await t.commit().execute();
    open = null;
    committed = true;
    // A big report (it takes seconds): the checkpoints its writes call for are made in a worker from now on.
    if (!paused && performance.now() - startedAt > CHECKPOINTS_ELSEWHERE_AFTER_MS) await checkpointsElsewhere();
    // The queries that waited for the store go first.
    await turn();
  };
  const checkpointsElsewhere = async () => {
    if (paused) return;
    // Settings are changed through the store's connection, which the open transaction holds: what it staged is committed first.
    if (open) {
      await open.commit().execute();
      open = null;
      committed = true;
    }
    paused = pauseCheckpoints(db).catch(() => null);
    await paused;
  };
  const settle = async () => {
    const p = paused;
    paused = null;
    // A checkpoint that fails here is made by a later commit.
    if (p) await (await p)?.resume().catch(() => undefined);
  };
  return {
    id,
    whole: null,
    rows: (rows) => run((t) => insertBatch(t, rows)),
    run,
    deciding: async () => {
      // A report staged over several transactions: what the open one staged is committed first and the queries waiting
      // get a turn, so the decision's transaction holds only the decision (a small report stays one transaction).
      if (committed && open) {
        await open.commit().execute();
        open = null;
        await turn();
      }
      return current();
    },
    discard: async () => {
      const t = open as ControlledTransaction<Database> | null;
      open = null;
      try {
        if (t) await t.rollback().execute().catch(() => undefined);
        if (committed) await deleteStaged(db, id);
      } finally {
        await settle();
      }
    },
    checkpointsElsewhere,
    settle,
  };
}

/** Deletes a staged report (never a stored one) and its rows, a short transaction per few thousand rows. */
async function deleteStaged(db: Kysely<Database>, id: number): Promise<void> {
  await dropStagedRollups(db, id, { between: turn });
  for (;; await turn()) {
    const staged = await db.selectFrom('reports').select('id').where('id', '=', id).where('staged_at', 'is not', null).executeTakeFirst();
    if (!staged) return;
    const batch = db.selectFrom('report_rows').select('id').where('report', '=', id).orderBy('id').limit(DISCARD_ROWS_PER_TRANSACTION);
    const deleted = await db.deleteFrom('report_rows').where('id', 'in', batch).executeTakeFirst();
    if (Number(deleted.numDeletedRows) > 0) continue;
    await db.deleteFrom('reports').where('id', '=', id).where('staged_at', 'is not', null).execute();
    return;
  }
}

/** When each store's stale staged reports were last looked for. */
const staleLookedFor = new WeakMap<Kysely<Database>, number>();

/** Who stages a report: this host and process, in its `pending:` hash, so a process on the same host sees that its owner died. */
const STAGED_BY = `${hostname()}:${process.pid}`;

/** Whether the process that staged a report (per its `pending:<host>:<pid>:…` hash) is known to be gone: on this host, and no such pid. */
function ownerGone(contentHash: string): boolean {
  const [host, pid] = contentHash.slice(PENDING.length).split(':');
  if (host !== hostname() || !pid || !/^\d+$/.test(pid)) return false;
  if (Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Deletes staged reports whose process died mid-ingest (nothing of theirs
 * was counted): on this host, as soon as its pid is gone; from anywhere,
 * once it made no progress for STALE_STAGED_MS. At most once a minute per
 * store handle (the first report of a process looks at once). Returns how
 * many went.
 */
export async function deleteStaleStaged(db: Kysely<Database>, now: Date): Promise<number> {
  const last = staleLookedFor.get(db);
  if (last !== undefined && Math.abs(now.getTime() - last) < 60_000) return 0;
  staleLookedFor.set(db, now.getTime());
  // By the staged_at index (ordered by id, SQLite walked the whole table in id order: 3.7 s at 9 M reports).
  const staged = await db.selectFrom('reports').select(['id', 'content_hash', 'staged_at']).where('staged_at', 'is not', null).orderBy('staged_at').limit(1000).execute();
  const stale = staged.filter((r) => Number(r.staged_at) < now.getTime() - STALE_STAGED_MS || ownerGone(r.content_hash));
  for (const { id } of stale) await deleteStaged(db, Number(id));
  // Sums left by a process that died between counting a report and deleting its staged sums.
  const orphans = await db
    .selectFrom('staged_rollups')
    .select('report')
    .distinct()
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('reports').select('reports.id').where('reports.staged_at', 'is not', null).whereRef('reports.id', '=', 'staged_rollups.report'))))
    .limit(100)
    .execute();
  for (const { report } of orphans) await dropStagedRollups(db, Number(report), { between: turn });
  return stale.length;
}

/** The longest a report's parsing and storing runs without letting the event loop take a turn. */
const TURN_EVERY_MS = 10;
/** Rollup entries written per statement group at a staged report's decision, with a turn of the event loop between. */
const APPLY_SLICE = 2000;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Entries added to a staged report's sums per call of its writer: one statement's worth (see stageRollups). */
const STAGE_SLICE = 400;

/**
 * Adds entries to a staged report's sums in key order, a statement at a time
 * in the report's transaction, which is committed (and the event loop given a
 * turn) once open STAGED_HOLD_MS: slices of 2,000 entries held the loop 60 to
 * 120 ms each at 40 MB.
 */
async function stageInSlices(w: ReportWriter, report: number, entries: RollupEntry[]): Promise<void> {
  entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 0; i < entries.length; i += STAGE_SLICE) {
    const slice = entries.slice(i, i + STAGE_SLICE);
    await w.run((t) => stageRollups(t, report, slice));
  }
}

/** SQLite: one connection for the whole daemon, so a report is staged (see ReportWriter). */
function stagesReports(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof SqliteAdapter;
}

function withoutBudget(input: RawInput): RawInput {
  if (!input.budget) return input;
  const { budget: _spentByTheStore, ...rest } = input as RawInput & { budget?: unknown };
  return rest as RawInput;
}

/**
 * One read of the input. When the identity is new (or `storeChanged`), the
 * report and its rows are written as they stream (see ReportWriter) and the
 * report decided and counted at the end; when copies already exist, only the
 * hash is computed (no rows written).
 */
async function writePass(
  db: Kysely<Database>,
  input: RawInput,
  options: StoreOptions,
  now: () => Date,
  storeChanged: boolean,
): Promise<PassResult> {
  let writer: ReportWriter | null = null;
  let reportRowId = 0;
  let copies: ExistingCopy[] = [];
  let flag: string | null = null;
  // A counted report's rows are summed into the daily rollups as they stream (src/store/rollups.ts).
  let rollup: RollupBatch | null = null;
  const touched = new Set<string>();
  // Whole: entries past the cap were written as they went. Staged: summed in staged_rollups, merged when the report counts.
  let spilled = false;
  let stagedEntries = false;
  let reportDomain = '';
  const rowsDigest = new RowsDigest();
  const staged = stagesReports(db);
  let lastTurn = performance.now();
  try {
    const report = await readReport(input, {
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      sink: {
        header: async (h) => {
          copies = await copiesOf(db, h);
          if (copies.length > 0 && !storeChanged) return;
          if (copies.length > 0) flag = changedFlag(copies);
          const values: StartingReport = {
            org: h.metadata.org,
            report_id: h.metadata.report_id,
            domain: h.policy.domain,
            begin: h.metadata.begin,
            end: h.metadata.end,
            flag,
            rows_digest: null,
            adkim: h.policy.adkim,
            aspf: h.policy.aspf,
            duplicates: 0,
            source: options.source,
            container: null,
            repaired: null,
            metadata: '{}',
            received_at: now().toISOString(),
          };
          if (staged) await deleteStaleStaged(db, now());
          writer = staged ? await stagedWriter(db, values, now) : await wholeWriter(db, values);
          reportRowId = writer.id;
          if (!flag) {
            rollup = new RollupBatch({ org: h.metadata.org, domain: h.policy.domain, begin: h.metadata.begin, end: h.metadata.end, adkim: h.policy.adkim, aspf: h.policy.aspf });
            touched.add(h.policy.domain);
            reportDomain = h.policy.domain;
          }
        },
        records: async (batch) => {
          // A report in memory (a mail, an upload) is parsed and, on SQLite, stored without real I/O: nothing else
          // would run until it ends (not a timer, not a request), so the event loop gets a turn every few ms.
          if (performance.now() - lastTurn > TURN_EVERY_MS) {
            await turn();
            lastTurn = performance.now();
          }
          const w = writer as ReportWriter | null;
          if (!w) return;
          for (const record of batch) rowsDigest.add(record);
          await w.rows(batch.map((r) => rowValues(reportRowId, r)));
          if (rollup) {
            for (const record of batch) rollup.add(record);
            // Summed until the report is whole, then written in one pass in key order (see ROLLUP_ENTRIES_HELD).
            if (rollup.size > (options.rollupEntriesHeld ?? ROLLUP_ENTRIES_HELD)) {
              if (!w.whole) {
                // Staged rows are not counted yet, so neither may their rollups be: summed in staged_rollups, merged at the decision.
                await stageInSlices(w, reportRowId, rollup.take());
                stagedEntries = true;
                return;
              }
              if (!spilled) await serialiseSpills(w.whole, reportDomain);
              for (const name of rollup.names()) touched.add(name);
              await applyRollups(w.whole, rollup.take(), 1);
              spilled = true;
              // Many header_from names (a hostile report): mark them now rather than hold them all.
              if (touched.size > 1000) {
                await markRollupChange(w.whole, touched);
                touched.clear();
              }
            }
          }
        },
      },
    });
    const w = writer as ReportWriter | null;
    if (!w) return { kind: 'known', report, copies };
    const held = rollup as RollupBatch | null;
    if (stagedEntries && held && held.size > 0) {
      await stageInSlices(w, reportRowId, held.take());
    }
    // The merge writes every staged entry in one transaction: its commit must not copy them into the file on this thread.
    if (stagedEntries) await w.checkpointsElsewhere();
    const t = await w.deciding();
    await serialiseCopies(t, report.header);
    // Another writer may have stored the same report meanwhile: re-check inside the transaction.
    const twin = await t.selectFrom('reports').select(['id']).where('content_hash', '=', report.contentHash).executeTakeFirst();
    if (twin) {
      await w.discard();
      writer = null;
      return { kind: 'done', outcome: await countDuplicate(db, input, report, Number(twin.id)) };
    }
    if (!flag) {
      const others = await copiesOf(t, report.header, reportRowId);
      if (others.length > 0) flag = changedFlag(others);
    }
    const digest = rowsDigest.digest();
    if (!flag) {
      const repeated = await repeatedCopy(t, report.header, digest, reportRowId);
      if (repeated) flag = resentFlag(repeated);
    }
    // The content hash first: a concurrent writer of the same report waits here on the unique index
    // (and then loses with a unique violation) before it touches any rollup entry.
    await t
      .updateTable('reports')
      .set({
        content_hash: report.contentHash,
        domain: report.header.policy.domain,
        staged_at: null,
        rows_digest: digest,
        counted: flag ? 0 : 1,
        flag,
        container: report.container,
        repaired: report.repaired,
        metadata: metadataJson(report),
      })
      .where('id', '=', reportRowId)
      .execute();
    const summed = rollup as RollupBatch | null;
    if (summed && flag) {
      // It turned out not to count: nothing was added, unless a very diverse report spilled (then take its rows out again).
      if (spilled) await rollUpStoredReports(t, [reportRowId], -1);
    } else if (stagedEntries) {
      // Staged past the cap: its sums merged by SQL in key order, with turns of the event loop between slices,
      // the header_from names of each slice marked as it is merged.
      await markRollupChange(t, touched);
      await mergeStagedRollups(t, reportRowId, { slice: options.mergeSlice ?? APPLY_SLICE, between: turn, touched: (names) => markRollupChange(t, names) });
    } else if (summed) {
      for (const name of summed.names()) touched.add(name);
      const entries = summed.take();
      if (w.whole) await applyRollups(t, entries, 1);
      else {
        // In key order across slices, as applyRollups orders one call; the event loop takes turns between them.
        entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        for (let i = 0; i < entries.length; i += APPLY_SLICE) {
          await applyRollups(t, entries.slice(i, i + APPLY_SLICE), 1);
          if (i + APPLY_SLICE < entries.length) await turn();
        }
      }
      await markRollupChange(t, touched);
    }
    const spent = await spendBudget(t, input, report);
    try {
      await t.commit().execute();
    } catch (e) {
      spent?.giveBack();
      throw e;
    }
    writer = null;
    // Merged (or not counted): the staged sums go, a slice at a time; any a failure here leaves go with the next stale sweep.
    if (stagedEntries) await dropStagedRollups(db, reportRowId, { between: turn }).catch(() => undefined);
    await w.settle();
    return { kind: 'done', outcome: { status: 'stored', id: reportRowId, counted: !flag, flag, report } };
  } catch (e) {
    const w = writer as ReportWriter | null;
    if (w) await w.discard().catch(() => undefined);
    if (isUniqueViolation(e)) {
      // Lost a race with a concurrent writer of the same content: that copy stands.
      const report = await readReport(withoutBudget(input), options.limits ? { limits: options.limits } : {});
      const twin = await db.selectFrom('reports').select(['id']).where('content_hash', '=', report.contentHash).executeTakeFirst();
      if (twin) return { kind: 'done', outcome: await countDuplicate(db, input, report, Number(twin.id)) };
    }
    throw e;
  }
}
