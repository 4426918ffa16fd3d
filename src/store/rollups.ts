/**
 * Daily rollups: what the engine reads instead of raw report rows. One entry
 * per domain (policy_published), report range (a UTC day for a daily report),
 * reporter and source identity: the IP, header_from, the receiver's DKIM and
 * SPF verdicts, its override reasons, the DKIM d=/selector and SPF domains
 * with their results, and the alignment modes. Those are exactly the fields
 * the engine classes and attributes mail by (src/engine/sources.ts,
 * metrics.ts); what it never reads (envelope_from/to, disposition, the
 * results' human text) is left out, so rows that differ only there add up.
 * Keeping the range (begin, end) and not only the day keeps the engine's
 * figures exactly what it measured from rows: a report over a local-time day
 * covers two UTC days, and the look-back and the stage window cut on a
 * report's own begin and end.
 *
 * Ingest adds a counted report's rows here in the transaction that stores
 * them (src/reports/store.ts), summed over the whole report and written in
 * key order at its end, once it is known to count (a very diverse report
 * writes as it goes, and a copy that then ends up not counted is taken out
 * again before commit), so rollups always equal the rows of counted reports. Each change bumps a per-name counter
 * (rollup_marks: the policy domain and every header_from), which the tick
 * compares with the one its stored assessment was measured at.
 *
 * Raw rows older than the retention setting are pruned in bounded batches
 * (pruneRawRows); rollups, the reports' metadata and their hashes (for
 * dedup) stay.
 */
import { createHash } from 'node:crypto';
import { PostgresAdapter, sql, type Kysely, type Transaction } from 'kysely';
import type { ObservedRow } from './observed.js';
import type { DailyRollupsTable, Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

const DAY_SECONDS = 86_400;

/** Entries per INSERT (16 columns each: far below SQLite's and Postgres's parameter limits). */
const ENTRIES_PER_INSERT = 400;

/** The report a set of rows belongs to, as far as rollups need it. */
export interface RollupReport {
  org: string;
  domain: string;
  begin: number;
  end: number;
  adkim: string | null;
  aspf: string | null;
}

/** A row as ingest parses it or as report_rows stores it (parsed): the fields rollups keep. */
export interface RollupRecord {
  source_ip: string;
  count: number;
  header_from: string | null;
  dkim: string | null;
  spf: string | null;
  reasons: ReadonlyArray<{ type?: string | null; comment?: string | null }>;
  auth_dkim: ReadonlyArray<{ domain?: string | null; selector?: string | null; result?: string | null }>;
  auth_spf: ReadonlyArray<{ domain?: string | null; result?: string | null }>;
}

/** One rollup entry as it is stored: the table's row. */
type Entry = DailyRollupsTable;

/** `s` only when the receiver saw strict alignment; absent or anything else is relaxed (RFC 7489 6.3). */
const mode = (value: string | null | undefined): 'r' | 's' => (value?.toLowerCase() === 's' ? 's' : 'r');

/**
 * Rows of one report summed by identity. Rows are added as they stream;
 * take() hands out what was summed (and forgets it). Memory is the report's
 * distinct identities; a caller that must bound it takes a part early.
 */
export class RollupBatch {
  private readonly entries_ = new Map<string, Entry>();
  private readonly prefix: string;
  private readonly adkim: 'r' | 's';
  private readonly aspf: 'r' | 's';

  constructor(private readonly report: RollupReport) {
    this.adkim = mode(report.adkim);
    this.aspf = mode(report.aspf);
    this.prefix = JSON.stringify([report.domain, report.org, report.begin, report.end, this.adkim, this.aspf]);
  }

  add(r: RollupRecord): void {
    // Compact arrays, in the report's order (the engine names signatures in that order).
    const reasons = JSON.stringify(r.reasons.map((x) => [x.type?.toLowerCase() ?? null, x.comment ?? null]));
    const dkim = JSON.stringify(r.auth_dkim.map((x) => [x.domain ?? null, x.selector ?? null, x.result ?? null]));
    const spf = JSON.stringify(r.auth_spf.map((x) => [x.domain ?? null, x.result ?? null]));
    const identity = `${this.prefix}${JSON.stringify([r.source_ip, r.header_from, r.dkim, r.spf])}${reasons}${dkim}${spf}`;
    const key = createHash('sha256').update(identity).digest('base64url');
    const known = this.entries_.get(key);
    if (known) {
      known.messages += r.count;
      known.records += 1;
      return;
    }
    this.entries_.set(key, {
      key,
      domain: this.report.domain,
      day: Math.floor(this.report.begin / DAY_SECONDS),
      reporter: this.report.org,
      begin: this.report.begin,
      end: this.report.end,
      adkim: this.adkim,
      aspf: this.aspf,
      source_ip: r.source_ip,
      header_from: r.header_from,
      dkim: r.dkim,
      spf: r.spf,
      reasons,
      auth_dkim: dkim,
      auth_spf: spf,
      messages: r.count,
      records: 1,
    });
  }

  get size(): number {
    return this.entries_.size;
  }

  /** The header_from names seen since the last take() (for the change marks). */
  names(): Set<string> {
    const names = new Set<string>();
    for (const e of this.entries_.values()) if (e.header_from) names.add(e.header_from);
    return names;
  }

  take(): Entry[] {
    const out = [...this.entries_.values()];
    this.entries_.clear();
    return out;
  }
}

/**
 * Adds (sign 1) or takes out (sign -1) summed rows. Entries emptied by a
 * take-out are deleted, so the table holds only what counted reports hold.
 */
export async function applyRollups(db: Db, given: Entry[], sign: 1 | -1): Promise<void> {
  // One entry per key a statement (Postgres refuses to update a row twice in one INSERT ... ON CONFLICT).
  const byKey = new Map<string, Entry>();
  for (const e of given) {
    const known = byKey.get(e.key);
    if (known) byKey.set(e.key, { ...known, messages: known.messages + e.messages, records: known.records + e.records });
    else byKey.set(e.key, e);
  }
  // In key order: two ingests adding to the same entries take their row locks in the same order (no deadlock on Postgres).
  const entries = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 0; i < entries.length; i += ENTRIES_PER_INSERT) {
    const chunk = entries.slice(i, i + ENTRIES_PER_INSERT).map((e) => ({ ...e, messages: sign * e.messages, records: sign * e.records }));
    await db
      .insertInto('daily_rollups')
      .values(chunk)
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          messages: eb('daily_rollups.messages', '+', eb.ref('excluded.messages')),
          records: eb('daily_rollups.records', '+', eb.ref('excluded.records')),
        })),
      )
      .execute();
    if (sign < 0) {
      await db
        .deleteFrom('daily_rollups')
        .where(
          'key',
          'in',
          chunk.map((e) => e.key),
        )
        .where('records', '<=', 0)
        .execute();
    }
  }
}

/** Marks that what the engine reads for these names changed (the policy domain and the header_from names). */
export async function markRollupChange(db: Db, names: Iterable<string>): Promise<void> {
  const list = [...new Set(names)].sort();
  for (let i = 0; i < list.length; i += ENTRIES_PER_INSERT) {
    await db
      .insertInto('rollup_marks')
      .values(list.slice(i, i + ENTRIES_PER_INSERT).map((name) => ({ name, changes: 1 })))
      .onConflict((oc) => oc.column('name').doUpdateSet((eb) => ({ changes: eb('rollup_marks.changes', '+', 1) })))
      .execute();
  }
}

/** How many times the rollups `domain`'s figures read from changed (0: never). Read before measuring. */
export async function rollupChanges(db: Db, domain: string): Promise<number> {
  const row = await db.selectFrom('rollup_marks').select('changes').where('name', '=', domain).executeTakeFirst();
  return Number(row?.changes ?? 0);
}

/** A report_rows row as stored, parsed back into what rollups keep. */
export function storedRecord(row: {
  source_ip: string;
  count: number | string | bigint;
  header_from: string | null;
  dkim: string | null;
  spf: string | null;
  reasons: string | null;
  auth_dkim: string | null;
  auth_spf: string | null;
}): RollupRecord {
  return {
    source_ip: row.source_ip,
    count: Number(row.count),
    header_from: row.header_from,
    dkim: row.dkim,
    spf: row.spf,
    reasons: row.reasons ? JSON.parse(row.reasons) : [],
    auth_dkim: row.auth_dkim ? JSON.parse(row.auth_dkim) : [],
    auth_spf: row.auth_spf ? JSON.parse(row.auth_spf) : [],
  };
}

/**
 * Adds (or takes out) the rollups of reports already stored with their rows,
 * reading the rows back a page at a time: the backfill of migration
 * 0012_daily_rollups, a report that turned out not to count, and copies
 * written by SQL (simulate, benchmarks). Returns the rows read.
 */
export async function rollUpStoredReports(db: Db, reportIds: number[], sign: 1 | -1 = 1): Promise<number> {
  // Taking a report back out (it turned out not to count) changes nothing anyone measured: no marks.
  const mark = sign > 0;
  let read = 0;
  for (let i = 0; i < reportIds.length; i += 200) {
    const ids = reportIds.slice(i, i + 200);
    const reports = await db
      .selectFrom('reports')
      .select(['id', 'org', 'domain', 'begin', 'end', 'adkim', 'aspf'])
      .where('id', 'in', ids)
      .execute();
    const batches = new Map(reports.map((r) => [Number(r.id), new RollupBatch({ ...r, begin: Number(r.begin), end: Number(r.end) })]));
    const names = new Set<string>(mark ? reports.map((r) => r.domain) : []);
    // The rows of the page's reports in id order, a few thousand at a time (a big report is read in pages too).
    let after = 0;
    for (;;) {
      const rows = await db
        .selectFrom('report_rows')
        .select(['id', 'report', 'source_ip', 'count', 'header_from', 'dkim', 'spf', 'reasons', 'auth_dkim', 'auth_spf'])
        .where('report', 'in', ids)
        .where('id', '>', after)
        .orderBy('id')
        .limit(5000)
        .execute();
      if (rows.length === 0) break;
      after = Number(rows.at(-1)!.id);
      read += rows.length;
      for (const row of rows) batches.get(Number(row.report))!.add(storedRecord(row));
      const entries = [];
      for (const batch of batches.values()) {
        if (batch.size === 0) continue;
        if (mark) for (const name of batch.names()) names.add(name);
        entries.push(...batch.take());
      }
      await applyRollups(db, entries, sign);
    }
    await markRollupChange(db, names);
  }
  return read;
}

/** Rolls up every counted report's stored rows, 500 reports at a time (migration 0012_daily_rollups). */
export async function backfillRollups(db: Db): Promise<number> {
  let after = 0;
  let read = 0;
  for (;;) {
    const ids = (await db.selectFrom('reports').select('id').where('counted', '=', 1).where('id', '>', after).orderBy('id').limit(500).execute()).map((r) => Number(r.id));
    if (ids.length === 0) return read;
    after = ids.at(-1)!;
    read += await rollUpStoredReports(db, ids);
  }
}

/** Rollup entries a statement when the engine reads a domain on Postgres (a page a round trip; the event loop waits on none). */
export const ROLLUP_PAGE = 1_000;

/**
 * Rollup entries a statement on SQLite. A statement runs on the event loop,
 * and reading the pages of a store bigger than the memory that caches it is
 * part of the statement: a domain's entries lie where the days put them, a
 * page of the file each when cold. At 100,000 domains with 90 days (a 48 GB
 * store on 24 GB of memory) a domain read cold in 1,000-entry statements
 * held the loop 80 to 181 ms, in 100-entry statements 40 to 55 ms, for the
 * same wall time; warm, 22 against 4 ms.
 */
export const SQLITE_ROLLUP_PAGE = 100;

/** The rollup entries a statement for the store's dialect. */
export const rollupPageSize = (db: Db): number => (db.getExecutor().adapter instanceof PostgresAdapter ? ROLLUP_PAGE : SQLITE_ROLLUP_PAGE);

/**
 * The rollups a domain's record may govern over a time range: those under
 * its record, and those whose header_from is the domain under another
 * record (two indexed reads), as the engine's rows. A report is found when
 * its range ends in [fromEpoch, ...) and began at most 31 days before
 * fromEpoch (no receiver sends longer reports; the day index serves the read).
 *
 * Read `pageSize` entries a statement with a turn of the event loop between
 * pages: SQLite answers synchronously, and a domain a 400 MB report gave
 * 100,000 entries took 0.6 s to read in one statement, holding every other
 * request (and /healthz) meanwhile. On SQLite a page continues after the
 * last one's (day, rowid), which the (domain, day) and (header_from, day)
 * indexes hold in that order (every SQLite index ends with the rowid), so
 * each page is a seek in the index, not a scan or a sort. Postgres has no
 * such column: there a read larger than a page runs again under a cursor in
 * a transaction (one index scan, one snapshot) and its rows are fetched a
 * page at a time. A report stored between two SQLite pages may be half
 * read; it bumps the domain's rollup mark, read before measuring, so what
 * was measured is stale and measured again (src/engine/reuse.ts). (A
 * VACUUM, which the daemon never runs, may renumber rowids: one run by hand
 * during a read could make it skip or repeat a page's entries until the
 * domain is next measured.)
 */
export async function loadRollupRows(db: Db, domain: string, range: { fromEpoch: number; toEpoch: number }, opts: { pageSize?: number } = {}): Promise<ObservedRow[]> {
  const out: ObservedRow[] = [];
  const toRow = rollupRowReader();
  await forEachRollupPage(db, domain, range, opts.pageSize ?? rollupPageSize(db), (page) => {
    for (const r of page) out.push(toRow(r));
  });
  return out;
}

/**
 * How many rollup entries loadRollupRows() would read for `domain` over
 * `range`, counted up to `atMost + 1` and no further (a LIMIT under the
 * count, on the same indexes as the read): what a request with a budget of
 * work asks before measuring a domain.
 */
export async function countRollupEntries(db: Db, domain: string, range: { fromEpoch: number; toEpoch: number }, atMost: number): Promise<number> {
  let counted = 0;
  for (const read of rollupReads(domain, range)) {
    const limit = atMost + 1 - counted;
    if (limit <= 0) break;
    const row = await db
      .selectFrom(read(db).clearSelect().select('day').limit(limit).as('entries'))
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    counted += Number(row?.n ?? 0);
  }
  return counted;
}

/** The engine's two reads of a domain's rollups over a range (see loadRollupRows), as queries to page or count. */
function rollupReads(domain: string, range: { fromEpoch: number; toEpoch: number }) {
  const firstDay = Math.floor(range.fromEpoch / DAY_SECONDS) - 31;
  const lastDay = Math.floor(range.toEpoch / DAY_SECONDS);
  const base = (q: Db) =>
    q
      .selectFrom('daily_rollups')
      .select(ROLLUP_COLUMNS)
      .where('day', '>=', firstDay)
      .where('day', '<=', lastDay)
      .where('end', '>=', range.fromEpoch)
      .where('begin', '<=', range.toEpoch);
  return [(q: Db) => base(q).where('domain', '=', domain), (q: Db) => base(q).where('header_from', '=', domain).where('domain', '!=', domain)];
}

/** The columns the engine reads, as selected. */
type RollupColumns = Pick<Entry, 'reporter' | 'begin' | 'end' | 'domain' | 'adkim' | 'aspf' | 'source_ip' | 'header_from' | 'dkim' | 'spf' | 'reasons' | 'auth_dkim' | 'auth_spf' | 'messages'>;
const ROLLUP_COLUMNS = ['reporter', 'begin', 'end', 'domain', 'adkim', 'aspf', 'source_ip', 'header_from', 'dkim', 'spf', 'reasons', 'auth_dkim', 'auth_spf', 'messages'] as const;

/** Unique cursor names for reads inside a caller's Postgres transaction. */
let cursors = 0;

async function forEachRollupPage(
  db: Db,
  domain: string,
  range: { fromEpoch: number; toEpoch: number },
  pageSize: number,
  each: (page: RollupColumns[]) => void,
): Promise<void> {
  const firstDay = Math.floor(range.fromEpoch / DAY_SECONDS) - 31;
  const reads = rollupReads(domain, range);
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    for (const read of reads) {
      // Most domains fit in a page: one statement, as for SQLite. A larger one is read again under a cursor.
      const first = await read(db).limit(pageSize + 1).execute();
      if (first.length <= pageSize) {
        if (first.length > 0) each(first);
        continue;
      }
      await turn();
      const viaCursor = async (trx: Db) => {
        const cursor = sql.id(`rollup_page_${++cursors}`);
        await sql`declare ${cursor} no scroll cursor for ${read(trx)}`.execute(trx);
        for (;;) {
          const { rows } = await sql<RollupColumns>`fetch forward ${sql.lit(pageSize)} from ${cursor}`.execute(trx);
          if (rows.length > 0) each(rows);
          if (rows.length < pageSize) break;
          await turn();
        }
        await sql`close ${cursor}`.execute(trx);
      };
      if (db.isTransaction) await viaCursor(db);
      else await (db as Kysely<Database>).transaction().execute(viaCursor);
    }
    return;
  }
  for (const read of reads) {
    // Two shapes of page, each an index seek: the rest of a day after a rowid (domain or header_from = ?, day = ?,
    // rowid > ?), and the days after one (day > ?). A day with more entries than a page is read in several.
    let day = firstDay - 1;
    let afterRowid: number | null = null;
    for (;;) {
      const rows: Array<RollupColumns & { day: number; rowid_: number }> = await (afterRowid === null
        ? read(db).where('day', '>', day).select(['day', sql<number>`rowid`.as('rowid_')]).orderBy('day').orderBy(sql`rowid`)
        : read(db).where('day', '=', day).where(sql<number>`rowid`, '>', afterRowid).select(['day', sql<number>`rowid`.as('rowid_')]).orderBy(sql`rowid`)
      )
        .limit(pageSize)
        .execute();
      if (rows.length > 0) each(rows);
      if (rows.length === pageSize) {
        const last = rows.at(-1)!;
        day = Number(last.day);
        afterRowid = Number(last.rowid_);
      } else if (afterRowid !== null) {
        // The rest of that day is read: on from the next.
        afterRowid = null;
      } else break;
      await turn();
    }
  }
}

/**
 * Turns rollup columns into the engine's rows. The same sender's identity
 * repeats every day: each distinct text is parsed once per reader (one
 * reader a domain's read, over all its pages).
 */
function rollupRowReader(): (r: RollupColumns) => ObservedRow {
  const parsed = new Map<string, unknown>();
  const parse = <T>(text: string, make: (raw: any[]) => T): T => {
    let value = parsed.get(text) as T | undefined;
    if (value === undefined) parsed.set(text, (value = make(JSON.parse(text) as any[])));
    return value;
  };
  const reasonsOf = (raw: any[]) => raw.map(([type, comment]) => ({ type, comment }));
  const dkimOf = (raw: any[]) => raw.map(([d, selector, result]) => ({ domain: d, selector, result }));
  const spfOf = (raw: any[]) => raw.map(([d, result]) => ({ domain: d, result }));
  return (r) => ({
    reporter: r.reporter,
    begin: Number(r.begin),
    end: Number(r.end),
    policyDomain: r.domain,
    sourceIp: r.source_ip,
    count: Number(r.messages),
    headerFrom: r.header_from,
    dkim: r.dkim,
    spf: r.spf,
    disposition: null,
    adkim: r.adkim === 's' ? 's' : 'r',
    aspf: r.aspf === 's' ? 's' : 'r',
    reasons: parse(r.reasons, reasonsOf),
    authDkim: parse(r.auth_dkim, dkimOf),
    authSpf: parse(r.auth_spf, spfOf),
  });
}

export interface PruneResult {
  /** Reports whose raw rows were deleted this call. */
  reports: number;
  rows: number;
  /** True when older rows are left for the next call (the budget ran out). */
  more: boolean;
}

/**
 * Raw rows deleted a statement when pruning. SQLite answers synchronously: the 2
 * million rows of a 400 MB report deleted in one statement would hold the
 * daemon (its /healthz, its API) for seconds, 90 days after it arrived.
 */
export const PRUNE_ROWS_PER_STATEMENT = 5_000;

/**
 * Deletes the raw rows of reports that ended before `before`, at most
 * `maxRows` rows a call (whole reports), and marks each report
 * `rows_pruned_at`. Reports keep their metadata, content hash and rows
 * digest, so a copy arriving again is still a duplicate; the rollups stay,
 * so the engine's figures do not change. A report bigger than the budget is
 * pruned on its own. Small reports go up to 200 and `rowsPerStatement` rows
 * a transaction; a report with more rows than that loses them a slice a
 * statement, with a turn of the event loop between, and is marked in the
 * transaction that deletes its last slice (stopped half-way, it is still
 * due and the next call finishes it).
 */
export async function pruneRawRows(db: Kysely<Database>, opts: { before: number; maxRows: number; now: Date; rowsPerStatement?: number }): Promise<PruneResult> {
  const result: PruneResult = { reports: 0, rows: 0, more: false };
  const perStatement = opts.rowsPerStatement ?? PRUNE_ROWS_PER_STATEMENT;
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const markPruned = (trx: Transaction<Database>, ids: number[]) => trx.updateTable('reports').set({ rows_pruned_at: opts.now.toISOString() }).where('id', 'in', ids).execute();
  // A staged report (still being stored on SQLite, see src/reports/store.ts) keeps its rows until it is stored.
  const due = () => db.selectFrom('reports').select('id').where('rows_pruned_at', 'is', null).where('end', '<', opts.before).where('staged_at', 'is', null);
  for (;;) {
    const left = opts.maxRows - result.rows;
    // Oldest first, a thousand reports a read (each read walks the reports still holding rows).
    const candidates = left <= 0 ? [] : await due().orderBy('end').orderBy('id').limit(1000).execute();
    if (candidates.length === 0) {
      result.more = left <= 0 && (await due().limit(1).execute()).length > 0;
      return result;
    }
    const ids = candidates.map((c) => Number(c.id));
    const rowsOf = new Map<number, number>();
    for (let i = 0; i < ids.length; i += 500) {
      const counts = await db
        .selectFrom('report_rows')
        .select(['report', (eb) => eb.fn.countAll<number>().as('n')])
        .where('report', 'in', ids.slice(i, i + 500))
        .groupBy('report')
        .execute();
      for (const c of counts) rowsOf.set(Number(c.report), Number(c.n));
    }
    const take: number[] = [];
    let rows = 0;
    for (const id of ids) {
      const n = rowsOf.get(id) ?? 0;
      // Whole reports only; one bigger than the whole budget goes on its own when nothing else was pruned.
      if (rows + n > left && (take.length > 0 || result.rows > 0)) break;
      take.push(id);
      rows += n;
    }
    if (take.length === 0) {
      result.more = true;
      return result;
    }
    // Small reports 200 and `perStatement` rows a transaction; a big one in slices. A turn of the event loop after each.
    let batch: number[] = [];
    let batchRows = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const ids = batch;
      batch = [];
      batchRows = 0;
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('report_rows').where('report', 'in', ids).execute();
        await markPruned(trx, ids);
      });
      await turn();
    };
    for (const id of take) {
      const n = rowsOf.get(id) ?? 0;
      if (n > perStatement) {
        await flush();
        for (let left = n; left > perStatement; left -= perStatement) {
          const slice = db.selectFrom('report_rows').select('id').where('report', '=', id).orderBy('id').limit(perStatement);
          await db.deleteFrom('report_rows').where('id', 'in', slice).execute();
          await turn();
        }
        // The last slice (and any row the count missed) with the mark.
        await db.transaction().execute(async (trx) => {
          await trx.deleteFrom('report_rows').where('report', '=', id).execute();
          await markPruned(trx, [id]);
        });
        await turn();
        continue;
      }
      if (batch.length === 200 || batchRows + n > perStatement) await flush();
      batch.push(id);
      batchRows += n;
    }
    await flush();
    result.reports += take.length;
    result.rows += rows;
  }
}
