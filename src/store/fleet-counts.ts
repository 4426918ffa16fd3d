/**
 * Fleet-wide counts for the metrics scrape, read a range of domain names a
 * statement with a turn of the event loop between. One GROUP BY over
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
 * Reports stored under a policy domain (a report being staged has none yet,
 * src/reports/store.ts), counted by ranges of the enrolled names over the
 * (domain, begin) index: the ranges are open at both ends, so reports of
 * domains nobody enrolled are counted too.
 */
export async function storedReports(db: Kysely<Database>, range = RANGE): Promise<number> {
  const parts = await overRanges(db, range, async (from, to) => {
    // A staged report's domain is '' until it is stored: counted out here, still inside the index.
    let q = db.selectFrom('reports').select((eb) => eb.fn.countAll<number>().as('n')).where('domain', '>', '');
    if (from !== null) q = q.where('domain', '>=', from);
    if (to !== null) q = q.where('domain', '<', to);
    return Number((await q.executeTakeFirstOrThrow()).n);
  });
  return parts.reduce((a, b) => a + b, 0);
}

/** Rows of `table` (one a rejected input or a change in flight: tables that stay small), one statement. */
export async function countRows(db: Kysely<Database>, table: 'rejected_inputs' | 'intents'): Promise<number> {
  return Number((await db.selectFrom(table).select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow()).n);
}
