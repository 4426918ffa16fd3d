/**
 * Fleet-wide counts for the metrics scrape, read a range of domain names
 * (or report ids) a statement with a turn of the event loop between. One GROUP BY over
 * 100,000 domains, or a count(*) over millions of reports, is one SQLite
 * statement of 60 to 100 ms that holds the event loop (and /healthz) for
 * its length, every scrape; in ranges of RANGE names each statement is a
 * few milliseconds and the sum is the same.
 */
import { sql, type Kysely } from 'kysely';
import type { Database, DomainState } from './schema.js';

/** Enrolled domain names a statement (the functions take another, for tests). */
const RANGE = 2000;

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** The enrolled names that start each range after the first: the ranges [-, b1), [b1, b2), … [bn, -) cover every name. */
async function rangeStarts(db: Kysely<Database>, range: number): Promise<string[]> {
  const starts: string[] = [];
  for (let after: string | null = null; ; ) {
    let next = db.selectFrom('domains').select('domain').orderBy('domain').limit(1).offset(range);
    if (after !== null) next = next.where('domain', '>=', after);
    const row = await next.executeTakeFirst();
    if (!row) return starts;
    starts.push(row.domain);
    after = row.domain;
    await turn();
  }
}

/** Runs `count` over each range of names in turn; a range is (from, to), either open. */
async function overRanges<T>(db: Kysely<Database>, range: number, count: (from: string | null, to: string | null) => Promise<T>): Promise<T[]> {
  const starts = await rangeStarts(db, range);
  const out: T[] = [];
  for (let i = 0; i <= starts.length; i++) {
    out.push(await count(i === 0 ? null : starts[i - 1]!, starts[i] ?? null));
    await turn();
  }
  return out;
}

export interface StageCount {
  plan: string;
  stage_index: number;
  state: DomainState;
  domains: number;
}

/** Enrolled domains per plan, stage index and state. */
export async function domainsPerStage(db: Kysely<Database>, range = RANGE): Promise<StageCount[]> {
  const sums = new Map<string, StageCount>();
  const parts = await overRanges(db, range, (from, to) => {
    let q = db.selectFrom('domains').select(['plan', 'stage_index', 'state', (eb) => eb.fn.countAll<number>().as('n')]);
    if (from !== null) q = q.where('domain', '>=', from);
    if (to !== null) q = q.where('domain', '<', to);
    return q.groupBy(['plan', 'stage_index', 'state']).execute();
  });
  for (const rows of parts) {
    for (const r of rows) {
      const key = JSON.stringify([r.plan, r.stage_index, r.state]);
      const sum = sums.get(key) ?? { plan: r.plan, stage_index: Number(r.stage_index), state: r.state, domains: 0 };
      sum.domains += Number(r.n);
      sums.set(key, sum);
    }
  }
  return [...sums.values()];
}

/**
 * Report ids a statement when counting stored reports (the function takes
 * another, for tests). Warm, 200,000 took about 7 ms on SQLite; cold (a
 * store bigger than the memory caching it, 27 million reports) reading
 * their index pages is part of the statement, and a scrape held the event
 * loop over 100 ms: 50,000.
 */
const ID_RANGE = 50_000;

/**
 * Reports stored (a report still being staged, src/reports/store.ts, is
 * not yet), counted ID_RANGE ids a statement over the staged_at index: its
 * entries for stored reports (staged_at null) are in id order, so each
 * statement reads a run of small index entries, never the table.
 */
export async function storedReports(db: Kysely<Database>, idRange = ID_RANGE): Promise<number> {
  // The lowest and highest id one at a time: SQLite reads min() and max() of a key from its ends only alone in a statement.
  const low = await db.selectFrom('reports').select('id').orderBy('id', 'asc').limit(1).executeTakeFirst();
  const high = await db.selectFrom('reports').select('id').orderBy('id', 'desc').limit(1).executeTakeFirst();
  if (!low || !high) return 0;
  let total = 0;
  for (let from = Number(low.id) - 1; from < Number(high.id); from += idRange) {
    const part = await db
      .selectFrom('reports')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('staged_at', 'is', null)
      .where('id', '>', from)
      .where('id', '<=', from + idRange)
      .executeTakeFirstOrThrow();
    total += Number(part.n);
    await turn();
  }
  return total;
}

/** Rows of `table` (one a rejected input or a change in flight: tables that stay small), one statement. */
export async function countRows(db: Kysely<Database>, table: 'rejected_inputs' | 'intents'): Promise<number> {
  return Number((await db.selectFrom(table).select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow()).n);
}
