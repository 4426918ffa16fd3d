/**
 * Stored assessments: each domain's latest stage-window figures and decision
 * (written by the tick, and by a view that had to measure a domain again),
 * and the fleet listing read from them: filtered, sorted and paged in SQL,
 * so a page of the fleet costs a page of rows however large the fleet is.
 * Which stored figures are stale is decided here too, from what changed
 * since they were measured.
 */
import { PostgresAdapter, sql, type Kysely, type SelectQueryBuilder, type Transaction } from 'kysely';
import type { Database, DomainRow, DomainState, StoredAssessment } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** SQLite allows 32766 bound parameters; stay far below it for any backend. */
const IN_CHUNK = 500;

/**
 * A report's id as an expression, not the column: Postgres answers max(id)
 * WHERE domain = ? (and id > ? AND domain = ?) by walking the primary key
 * backward and filtering by domain, every report for a domain with none (152
 * ms at 450,000 reports); `id + 0` leaves it the (domain, begin) index, the
 * domain's own reports. SQLite reads those either way.
 */
const reportId = (column: 'id' | 'r.id') => sql<number>`${sql.ref(column)} + 0`;

export interface AssessmentInput {
  domain: string;
  plan: string;
  stageIndex: number;
  assessedAt: Date;
  /** latestReportId() read before the figures were measured. */
  lastReportId: number;
  /** null when the plan could not be loaded (nothing to measure against). */
  figures: AssessmentFigures | null;
  /** What a tick may reuse the assessment by while nothing changes (src/engine/reuse.ts); absent: not reusable. */
  reuse?: { rollupChanges: number; inputs: string; recheckAt: string; decision: string };
}

/** The stage window's headline figures and the decision, as stored (src/engine/figures.ts makes them). */
export type AssessmentFigures = Pick<
  StoredAssessment,
  'authorised_fail_rate' | 'authorised_messages' | 'spoofing_messages' | 'blocking_sources' | 'decision_action' | 'decision_to' | 'decision_summary'
>;

/** Writes (or replaces) a domain's stored assessment. */
export async function saveAssessment(db: Db, a: AssessmentInput): Promise<void> {
  const values = {
    assessed_at: a.assessedAt.toISOString(),
    plan: a.plan,
    stage_index: a.stageIndex,
    last_report_id: a.lastReportId,
    authorised_fail_rate: a.figures?.authorised_fail_rate ?? null,
    authorised_messages: a.figures?.authorised_messages ?? 0,
    spoofing_messages: a.figures?.spoofing_messages ?? 0,
    blocking_sources: a.figures?.blocking_sources ?? 0,
    decision_action: a.figures?.decision_action ?? null,
    decision_to: a.figures?.decision_to ?? null,
    decision_summary: a.figures?.decision_summary ?? null,
    rollup_changes: a.reuse?.rollupChanges ?? 0,
    inputs: a.reuse?.inputs ?? null,
    recheck_at: a.reuse?.recheckAt ?? null,
    decision: a.reuse?.decision ?? null,
  };
  await db
    .insertInto('domain_assessments')
    .values({ domain: a.domain, ...values })
    .onConflict((oc) => oc.column('domain').doUpdateSet(values))
    .execute();
}

/** What a stored assessment is checked against before a tick reuses it (src/engine/reuse.ts), in one read. */
export interface AssessmentMarks {
  assessment: StoredAssessment | null;
  /** rollup_marks.changes for the domain (0: none yet). */
  rollupChanges: number;
  /** latestReportId(). */
  lastReportId: number;
  /**
   * The domain's and the global allowlist/abuse rules, and its reporter
   * acknowledgements, as count and newest id: rows there are only added or
   * deleted, never changed, so any change moves one of the two.
   */
  rules: string;
  acknowledgements: string;
}

/** A domain's stored assessment with the marks it is checked against; read before measuring. */
export async function assessmentMarks(db: Db, domain: string): Promise<AssessmentMarks> {
  return (await assessmentMarksOf(db, [domain])).get(domain) ?? { assessment: null, rollupChanges: 0, lastReportId: 0, rules: '', acknowledgements: '' };
}

/** assessmentMarks() for many domains in one read (at most IN_CHUNK a query): a tick reads them a chunk of the fleet at a time. */
export async function assessmentMarksOf(db: Db, domains: readonly string[]): Promise<Map<string, AssessmentMarks>> {
  const marks = new Map<string, AssessmentMarks>();
  for (let i = 0; i < domains.length; i += IN_CHUNK) {
    const rows = await db
      .selectFrom('domains as d')
      .leftJoin('domain_assessments as a', 'a.domain', 'd.domain')
      .leftJoin('rollup_marks as m', 'm.name', 'd.domain')
      .selectAll('a')
      .select((eb) => [
        'd.domain as mark_domain',
        'm.changes as mark_rollups',
        eb.selectFrom('reports as r').select((e) => e.fn.max(reportId('r.id')).as('x')).whereRef('r.domain', '=', 'd.domain').as('mark_report'),
        eb
          .selectFrom('source_rules as s')
          .select((e) => e.fn.countAll().as('x'))
          .where((e) => e.or([e('s.domain', '=', e.ref('d.domain')), e('s.domain', 'is', null)]))
          .as('mark_rules_n'),
        eb
          .selectFrom('source_rules as s')
          .select((e) => e.fn.max('s.id').as('x'))
          .where((e) => e.or([e('s.domain', '=', e.ref('d.domain')), e('s.domain', 'is', null)]))
          .as('mark_rules_id'),
        eb.selectFrom('reporter_acknowledgements as k').select((e) => e.fn.countAll().as('x')).whereRef('k.domain', '=', 'd.domain').as('mark_acks_n'),
        eb.selectFrom('reporter_acknowledgements as k').select((e) => e.fn.max('k.id').as('x')).whereRef('k.domain', '=', 'd.domain').as('mark_acks_id'),
      ])
      .where('d.domain', 'in', domains.slice(i, i + IN_CHUNK))
      .execute();
    for (const row of rows) {
      const { mark_domain, mark_rollups, mark_report, mark_rules_n, mark_rules_id, mark_acks_n, mark_acks_id, ...a } = row as unknown as StoredAssessment &
        Record<`mark_${string}`, unknown>;
      marks.set(String(mark_domain), {
        assessment: a.domain ? { ...a, rollup_changes: Number(a.rollup_changes), last_report_id: Number(a.last_report_id) } : null,
        rollupChanges: Number(mark_rollups ?? 0),
        lastReportId: Number(mark_report ?? 0),
        rules: `${Number(mark_rules_n ?? 0)}:${Number(mark_rules_id ?? 0)}`,
        acknowledgements: `${Number(mark_acks_n ?? 0)}:${Number(mark_acks_id ?? 0)}`,
      });
    }
  }
  return marks;
}

/**
 * Every enrolled domain by name, read `chunk` at a time by key with a turn of
 * the event loop between reads: SQLite answers synchronously, and one read of
 * 100,000 rows would hold off /healthz and every request for its length.
 */
export async function domainsInTurns(db: Db, chunk = 2000): Promise<DomainRow[]> {
  const all: DomainRow[] = [];
  for (let after: string | null = null; ; ) {
    let read = db.selectFrom('domains').selectAll().orderBy('domain').limit(chunk);
    if (after !== null) read = read.where('domain', '>', after);
    const rows = await read.execute();
    all.push(...rows);
    if (rows.length < chunk) return all;
    after = rows.at(-1)!.domain;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Every enrolled domain's name (attribution needs them all), read as domainsInTurns() does. */
export async function enrolledNames(db: Db, chunk = 10_000): Promise<Set<string>> {
  const names = new Set<string>();
  for (let after: string | null = null; ; ) {
    let read = db.selectFrom('domains').select('domain').orderBy('domain').limit(chunk);
    if (after !== null) read = read.where('domain', '>', after);
    const rows = await read.execute();
    for (const r of rows) names.add(r.domain);
    if (rows.length < chunk) return names;
    after = rows.at(-1)!.domain;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The newest report stored under `domain`'s record (its id), 0 when none: read before measuring, so a report arriving meanwhile marks the figures stale. */
export async function latestReportId(db: Db, domain: string): Promise<number> {
  const row = await db
    .selectFrom('reports')
    .select((eb) => eb.fn.max(reportId('id')).as('id'))
    .where('domain', '=', domain)
    .executeTakeFirst();
  return Number(row?.id ?? 0);
}

export type FleetSort = 'domain' | 'state' | 'stage' | 'days_in_stage' | 'authorised_fail_rate' | 'authorised_messages' | 'spoofing_messages' | 'blocking_sources';

/** What the fleet listing can be narrowed to (every field given must match), how it is sorted, and which page. */
export interface FleetRowsQuery {
  state?: DomainState;
  /** Domains at one of these (plan, stage index) pairs: a stage label resolved against each plan. */
  stageIn?: Array<{ plan: string; indices: number[] }>;
  plan?: string;
  provider?: string;
  /** Part of the domain name (lowercase). */
  q?: string;
  /** Active, nothing in flight, and the stored decision is await-approval. */
  awaitingApproval?: boolean;
  /** Awaiting approval, or approved and not yet moved (the approvals queue). */
  approvals?: boolean;
  sort: FleetSort;
  order: 'asc' | 'desc';
  limit: number;
  offset: number;
}

export interface FleetRow {
  row: DomainRow;
  assessment: StoredAssessment | null;
}

const ASSESSMENT_COLUMNS = [
  'assessed_at',
  'plan',
  'stage_index',
  'last_report_id',
  'authorised_fail_rate',
  'authorised_messages',
  'spoofing_messages',
  'blocking_sources',
  'decision_action',
  'decision_to',
  'decision_summary',
] as const;

/**
 * How fleetRows() bounds each statement (an option for tests): a filtered
 * fleet is counted `rangeNames` domain names a statement; a filter matching
 * at most `collectUpTo` domains has its matches sorted in one statement (a
 * sort of that many rows at most); more matches are found in order by
 * walking the sort's index `walkChunk` keys a statement at first, twice as
 * many each statement after up to 8 times that (the last page of a filter
 * walks the whole index: 500 keys a statement took 6 s of round trips on
 * Postgres at 100,000 domains).
 */
export interface FleetRowsTuning {
  rangeNames: number;
  collectUpTo: number;
  walkChunk: number;
}

// collectUpTo and 8 x walkChunk names are bound twice in a statement (the join's two sides): 16,000 and 8,000 parameters, under
// SQLite's 32,766. Sorting 8,000 matches held SQLite 25 to 35 ms at 100,000 domains; walking the index for them, 250 to 450 ms in all.
export const FLEET_ROWS_TUNING: FleetRowsTuning = { rangeNames: 5_000, collectUpTo: 8_000, walkChunk: IN_CHUNK };

/** Keys read per statement when a page (or the whole fleet, limit null) is read without filters. */
const PAGE_CHUNK = 10_000;

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * A run of the fleet in one sort's order that one index serves (migration
 * 0015_fleet_sort), without filters: a page of it and its size. `walk`
 * yields it a bounded statement at a time, filtered when asked.
 */
interface Segment {
  page(offset: number, limit: number): Promise<string[]>;
  count(): Promise<number>;
  walk(match: ((keys: string[]) => Promise<Set<string>>) | null): AsyncGenerator<string[]>;
}

/** A segment read by one ordered index walk: `keys` selects the domain names in order. */
function indexSegment(keys: () => SelectQueryBuilder<Database, any, { domain: string }>, count: () => Promise<number>, chunk: number): Segment {
  return {
    async page(offset, limit) {
      return (await keys().limit(limit).offset(offset).execute()).map((r) => r.domain);
    },
    count,
    async *walk(match) {
      for (let offset = 0, size = chunk; ; offset += size, size = Math.min(size * 2, chunk * 8)) {
        const names = (await keys().limit(size).offset(offset).execute()).map((r) => r.domain);
        if (match === null) yield names;
        else {
          const matched = names.length > 0 ? await match(names) : new Set<string>();
          yield names.filter((n) => matched.has(n));
        }
        if (names.length < size) return;
        await nextTurn();
      }
    },
  };
}

const emptySegment: Segment = {
  page: async () => [],
  count: async () => 0,
  async *walk() {},
};

/** [after, upTo] ranges of `size` domain names each (null: open end), in name order. */
async function* nameRanges(db: Db, size: number): AsyncGenerator<{ after: string | null; upTo: string | null }> {
  for (let after: string | null = null; ; ) {
    let edge = db.selectFrom('domains').select('domain').orderBy('domain').limit(1).offset(size - 1);
    if (after !== null) edge = edge.where('domain', '>', after);
    const upTo: string | null = (await edge.executeTakeFirst())?.domain ?? null;
    yield { after, upTo };
    if (upTo === null) return;
    after = upTo;
    await nextTurn();
  }
}

type Names = { after: string | null; upTo: string | null } | readonly string[];

/**
 * domains d LEFT JOIN domain_assessments a, both narrowed to `names` (a
 * range of names, or a list): Postgres does not carry a condition on
 * d.domain over to a.domain through the join, and hash-joined every
 * assessment for each range (115 ms a range of 5,000 at 100,000 domains).
 */
function fleetJoin(db: Db, names: Names): FilteredQuery {
  const r = names as { after: string | null; upTo: string | null };
  const terms: Array<['in' | '>' | '<=', string | readonly string[]]> = Array.isArray(names)
    ? [['in', names]]
    : [...(r.after !== null ? [['>', r.after] as ['>', string]] : []), ...(r.upTo !== null ? [['<=', r.upTo] as ['<=', string]] : [])];
  let query = db
    .selectFrom('domains as d')
    .leftJoin('domain_assessments as a', (join) => terms.reduce((on, [op, value]) => on.on('a.domain', op, value as string), join.onRef('a.domain', '=', 'd.domain')));
  for (const [op, value] of terms) query = query.where('d.domain', op, value as string);
  return query as unknown as FilteredQuery;
}

type Figure = 'authorised_fail_rate' | 'authorised_messages' | 'spoofing_messages' | 'blocking_sources';

/**
 * The fleet in `sort` order as the segments indexes serve, one after the
 * other. NULLs last in either direction, ties by domain name ascending: a
 * figure's domains with the figure, by it; then those without it (never
 * assessed, or no figure) by name. A domain never assessed has no row in
 * domain_assessments, so when there are any, that last segment is walked
 * by name a range at a time, each domain checked for its assessment.
 */
function segments(db: Db, sort: FleetSort, dir: 'asc' | 'desc', t: FleetRowsTuning, filters: (query: FilteredQuery) => FilteredQuery): Segment[] {
  const count = async (query: SelectQueryBuilder<Database, any, {}>) => Number((await query.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  const domains = () => db.selectFrom('domains').select('domain');
  const fleetSize = () => count(db.selectFrom('domains'));
  switch (sort) {
    case 'domain':
      return [indexSegment(() => domains().orderBy('domain', dir), fleetSize, t.walkChunk)];
    case 'state':
      return [indexSegment(() => domains().orderBy('state', dir).orderBy('domain'), fleetSize, t.walkChunk)];
    case 'stage':
      return [indexSegment(() => domains().orderBy('plan', dir).orderBy('stage_index', dir).orderBy('domain'), fleetSize, t.walkChunk)];
    case 'days_in_stage': {
      // Longest in stage first when descending: the earliest stage_since.
      const since = dir === 'desc' ? 'asc' : 'desc';
      return [
        indexSegment(() => domains().where('stage_since', 'is not', null).orderBy('stage_since', since).orderBy('domain'), () => count(db.selectFrom('domains').where('stage_since', 'is not', null)), t.walkChunk),
        // Ordered by the column too (all NULL here): Postgres does not take IS NULL for a constant, and would sort the segment.
        indexSegment(() => domains().where('stage_since', 'is', null).orderBy('stage_since').orderBy('domain'), () => count(db.selectFrom('domains').where('stage_since', 'is', null)), t.walkChunk),
      ];
    }
    default: {
      const figure: Figure = sort;
      const withFigure = () => count(db.selectFrom('domain_assessments').where(figure, 'is not', null));
      const measured = indexSegment(() => db.selectFrom('domain_assessments').select('domain').where(figure, 'is not', null).orderBy(figure, dir).orderBy('domain'), withFigure, t.walkChunk);
      const withoutCount = async () => (await fleetSize()) - (await withFigure());
      // Only assessed domains without the figure: one index walk. With never-assessed ones among them: by name, a range at a time.
      let unassessed: Promise<boolean> | undefined;
      const anyUnassessed = () => (unassessed ??= (async () => (await fleetSize()) > (await count(db.selectFrom('domain_assessments'))))());
      // Only the fail rate may be NULL in an assessment (no authorised mail); the counts never are.
      const byIndex =
        figure === 'authorised_fail_rate'
          ? indexSegment(() => db.selectFrom('domain_assessments').select('domain').where(figure, 'is', null).orderBy(figure).orderBy('domain'), withoutCount, t.walkChunk)
          : emptySegment;
      const byName = async function* (match: boolean): AsyncGenerator<string[]> {
        for await (const range of nameRanges(db, t.rangeNames)) {
          const joined = fleetJoin(db, range);
          const query = (match ? filters(joined) : joined)
            .select('d.domain')
            .where((eb) => eb.or([eb('a.domain', 'is', null), eb(`a.${figure}`, 'is', null)]))
            .orderBy('d.domain');
          yield (await query.execute()).map((r) => r.domain);
        }
      };
      const without: Segment = {
        async page(offset, limit) {
          if (!(await anyUnassessed())) return byIndex.page(offset, limit);
          const out: string[] = [];
          for await (const names of byName(false)) {
            const take = names.slice(offset, offset + limit - out.length);
            offset = Math.max(0, offset - names.length);
            out.push(...take);
            if (out.length >= limit) break;
          }
          return out;
        },
        count: withoutCount,
        async *walk(match) {
          if (!(await anyUnassessed())) yield* byIndex.walk(match);
          else yield* byName(match !== null);
        },
      };
      return [measured, without];
    }
  }
}

/** The ORDER BY of `sort` over domains d left join domain_assessments a: what the segments walk, as one expression. */
function orderedBy<Q extends SelectQueryBuilder<any, any, any>>(query: Q, sort: FleetSort, dir: 'asc' | 'desc'): Q {
  const nullsLast = (column: string) => sql`(${sql.ref(column)} is null)`;
  let q: SelectQueryBuilder<any, any, any> = query;
  switch (sort) {
    case 'domain':
      return q.orderBy('d.domain', dir) as Q;
    case 'state':
      q = q.orderBy('d.state', dir);
      break;
    case 'stage':
      q = q.orderBy('d.plan', dir).orderBy('d.stage_index', dir);
      break;
    case 'days_in_stage':
      q = q.orderBy(nullsLast('d.stage_since')).orderBy('d.stage_since', dir === 'desc' ? 'asc' : 'desc');
      break;
    default:
      q = q.orderBy(nullsLast(`a.${sort}`)).orderBy(`a.${sort}`, dir);
  }
  return q.orderBy('d.domain') as Q;
}

type FilteredQuery = SelectQueryBuilder<Database & { d: Database['domains']; a: Database['domain_assessments'] }, 'd' | 'a', {}>;

/** The listing's filters as WHERE terms over domains d left join domain_assessments a. */
function filterBy(q: FleetRowsQuery): ((query: FilteredQuery) => FilteredQuery) | null {
  const terms: Array<(query: FilteredQuery) => FilteredQuery> = [];
  if (q.state !== undefined) terms.push((query) => query.where('d.state', '=', q.state!));
  if (q.plan !== undefined) terms.push((query) => query.where('d.plan', '=', q.plan!));
  if (q.provider !== undefined) terms.push((query) => query.where('d.provider', '=', q.provider!));
  if (q.q !== undefined) {
    const like = `%${q.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    terms.push((query) => query.where(sql<boolean>`${sql.ref('d.domain')} like ${like} escape '\\'`));
  }
  if (q.stageIn !== undefined) {
    const pairs = q.stageIn.filter((p) => p.indices.length > 0);
    terms.push((query) =>
      pairs.length === 0
        ? query.where(sql<boolean>`1 = 0`)
        : query.where((eb) => eb.or(pairs.map((p) => eb.and([eb('d.plan', '=', p.plan), eb('d.stage_index', 'in', p.indices)])))),
    );
  }
  // `is not null` first: a domain never assessed is not awaiting (false, not SQL's unknown, so NOT keeps it).
  const awaiting = (eb: any) =>
    eb.and([
      eb('a.decision_action', 'is not', null),
      eb('d.state', '=', 'active'),
      eb('a.decision_action', '=', 'await-approval'),
      eb.not(eb.exists(eb.selectFrom('intents as i').select('i.domain').whereRef('i.domain', '=', 'd.domain'))),
    ]);
  if (q.awaitingApproval !== undefined) terms.push((query) => query.where((eb) => (q.awaitingApproval ? awaiting(eb) : eb.not(awaiting(eb)))));
  if (q.approvals) terms.push((query) => query.where((eb) => eb.or([awaiting(eb), eb('d.approved_stage_index', '>', eb.ref('d.stage_index'))])));
  if (terms.length === 0) return null;
  return (query) => terms.reduce((acc, term) => term(acc), query);
}

/**
 * One page of the fleet with each domain's stored assessment (null when
 * never assessed), and how many match in all. Every statement is bounded
 * whatever the fleet's size (SQLite answers synchronously: one long
 * statement holds off /healthz), with a turn of the event loop between:
 * - unfiltered, the page's names come from the sort's index (migration
 *   0015_fleet_sort) by LIMIT/OFFSET over it, no sort;
 * - filtered, the matches are counted a range of names at a time; a few
 *   (collectUpTo) are sorted in one statement, more are found in order by
 *   walking the sort's index a chunk of keys at a time, each chunk checked
 *   against the filter (so a deep page of a sparse filter walks far: the
 *   walk is bounded per statement, not in all);
 * then the page's rows are read by name.
 */
export async function fleetRows(db: Db, q: FleetRowsQuery, t: FleetRowsTuning = FLEET_ROWS_TUNING): Promise<{ rows: FleetRow[]; total: number }> {
  const filters = filterBy(q);
  if (filters !== null && db.getExecutor().adapter instanceof PostgresAdapter) return filteredOnServer(db, q, filters);
  const segs = segments(db, q.sort, q.order, t, filters ?? ((query) => query));
  let names: string[] = [];
  let total: number;
  if (filters === null) {
    total = Number((await db.selectFrom('domains').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    let skip = q.offset;
    for (const seg of segs) {
      let got = 0;
      while (names.length < q.limit) {
        const want = Math.min(q.limit - names.length, PAGE_CHUNK);
        const chunk = await seg.page(skip + got, want);
        names.push(...chunk);
        got += chunk.length;
        if (chunk.length < want) break;
        await nextTurn();
      }
      if (names.length >= q.limit) break;
      // The segment ran out: the page goes on in the next one.
      skip = got > 0 ? 0 : skip - (await seg.count());
    }
  } else {
    // Count the matches a range of names at a time, keeping them while they are few.
    total = 0;
    let few: string[] | null = [];
    for await (const range of nameRanges(db, t.rangeNames)) {
      if (few !== null) {
        const room = t.collectUpTo - total;
        const found = (await filters(fleetJoin(db, range)).select('d.domain').limit(room + 1).execute()).map((r) => r.domain);
        if (found.length <= room) {
          few.push(...found);
          total += found.length;
          continue;
        }
        few = null;
      }
      total += Number((await filters(fleetJoin(db, range)).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    }
    if (few !== null) {
      if (few.length > 0) {
        // At most collectUpTo rows sorted in one statement.
        const page = orderedBy(fleetJoin(db, few).select('d.domain'), q.sort, q.order).limit(q.limit).offset(q.offset);
        names = (await page.execute()).map((r) => r.domain);
      }
    } else {
      const match = async (keys: string[]) => new Set((await filters(fleetJoin(db, keys)).select('d.domain').execute()).map((r) => r.domain));
      let skip = q.offset;
      walk: for (const seg of segs) {
        for await (const matched of seg.walk(match)) {
          const take = matched.slice(skip, skip + q.limit - names.length);
          skip = Math.max(0, skip - matched.length);
          names.push(...take);
          if (names.length >= q.limit) break walk;
        }
      }
    }
  }
  return { total, rows: await rowsByName(db, names) };
}

/**
 * A filtered page on Postgres: one statement counts the matches, one sorts
 * them for the page. The bounded statements above exist for SQLite, which
 * runs a statement on the event loop; Postgres runs it on the server while
 * the loop goes on, and there walking the sort's index a chunk at a time
 * only added round trips: at 100,000 domains the last page of a filter
 * matching 41,000 took 614 ms walked and 132 ms sorted at once, a dense
 * filter's page 5,000 deep 128 and 323 ms (bench/fleet-page-scale.ts). A
 * sort is bounded by the fleet's size and the store's statement timeout.
 */
async function filteredOnServer(db: Db, q: FleetRowsQuery, filters: (query: FilteredQuery) => FilteredQuery): Promise<{ rows: FleetRow[]; total: number }> {
  const matching = () => filters(fleetJoin(db, { after: null, upTo: null }));
  const total = Number((await matching().select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  if (total <= q.offset) return { total, rows: [] };
  const names = (await orderedBy(matching().select('d.domain'), q.sort, q.order).limit(q.limit).offset(q.offset).execute()).map((r) => r.domain);
  return { total, rows: await rowsByName(db, names) };
}

/** The domains' rows and stored assessments, in the order of `names`, IN_CHUNK a read. */
async function rowsByName(db: Db, names: readonly string[]): Promise<FleetRow[]> {
  const byName = new Map<string, FleetRow>();
  for (let i = 0; i < names.length; i += IN_CHUNK) {
    if (i > 0) await nextTurn();
    const rows = await fleetJoin(db, names.slice(i, i + IN_CHUNK))
      .selectAll('d')
      .select(ASSESSMENT_COLUMNS.map((c) => `a.${c} as a_${c}` as const))
      .select(sql<number>`case when a.domain is null then 0 else 1 end`.as('a_present'))
      .execute();
    for (const r of rows) {
      const record = r as unknown as Record<string, unknown>;
      const row = Object.fromEntries(Object.entries(record).filter(([k]) => !k.startsWith('a_'))) as unknown as DomainRow;
      const assessment = record.a_present
        ? ({
            domain: row.domain,
            ...Object.fromEntries(ASSESSMENT_COLUMNS.map((c) => [c, record[`a_${c}`]])),
          } as unknown as StoredAssessment)
        : null;
      if (assessment) {
        // Postgres returns double precision as a number already; SQLite may return integers for whole rates.
        assessment.authorised_messages = Number(assessment.authorised_messages);
        assessment.spoofing_messages = Number(assessment.spoofing_messages);
        assessment.last_report_id = Number(assessment.last_report_id);
      }
      byName.set(row.domain, { row, assessment });
    }
  }
  // A domain unenrolled between the reads is left out.
  return names.flatMap((n) => byName.get(n) ?? []);
}

/**
 * The domains among `rows` whose stored figures no longer stand: never
 * measured, measured at another plan or stage, the domain changed since
 * (approved, paused, resumed...), a report stored under it since, or an
 * allowlist entry or reporter acknowledgement added since.
 */
export async function staleAssessments(db: Db, rows: readonly FleetRow[]): Promise<Set<string>> {
  const stale = new Set<string>();
  const measured = rows.filter((r) => {
    const a = r.assessment;
    const fresh = a !== null && a.plan === r.row.plan && a.stage_index === r.row.stage_index && a.assessed_at >= r.row.updated_at;
    if (!fresh) stale.add(r.row.domain);
    return fresh;
  });
  if (measured.length === 0) return stale;
  const globalRule = await db
    .selectFrom('source_rules')
    .select((eb) => eb.fn.max('added_at').as('at'))
    .where('domain', 'is', null)
    .executeTakeFirst();
  for (let i = 0; i < measured.length; i += IN_CHUNK) {
    const chunk = measured.slice(i, i + IN_CHUNK);
    const names = chunk.map((r) => r.row.domain);
    const [reports, rules, acks] = await Promise.all([
      db.selectFrom('reports').select(['domain', (eb) => eb.fn.max('id').as('id')]).where('domain', 'in', names).groupBy('domain').execute(),
      db.selectFrom('source_rules').select(['domain', (eb) => eb.fn.max('added_at').as('at')]).where('domain', 'in', names).groupBy('domain').execute(),
      db.selectFrom('reporter_acknowledgements').select(['domain', (eb) => eb.fn.max('at').as('at')]).where('domain', 'in', names).groupBy('domain').execute(),
    ]);
    const newestReport = new Map(reports.map((r) => [r.domain, Number(r.id)]));
    const newestRule = new Map(rules.map((r) => [r.domain, String(r.at)]));
    const newestAck = new Map(acks.map((r) => [r.domain, String(r.at)]));
    // A turn of the event loop per chunk: over a whole fleet on SQLite these reads would otherwise hold it.
    await new Promise((resolve) => setImmediate(resolve));
    for (const { row, assessment } of chunk) {
      const a = assessment!;
      const ruleAt = [newestRule.get(row.domain), globalRule?.at ? String(globalRule.at) : undefined].filter((x): x is string => x !== undefined);
      if (
        (newestReport.get(row.domain) ?? 0) > a.last_report_id ||
        ruleAt.some((at) => at > a.assessed_at) ||
        (newestAck.get(row.domain) ?? '') > a.assessed_at
      ) {
        stale.add(row.domain);
      }
    }
  }
  return stale;
}

/**
 * Active domains with nothing in flight whose stored figures are stale, by
 * the same rules as staleAssessments() (for the approvals queue, which must
 * not miss a domain that became ready since the last tick): at most `limit`
 * of them among the next `scan` domains by name after `after`, and where
 * the scan stopped (null at the end of the fleet). The caller walks
 * the fleet a chunk at a time, so no one read holds SQLite for long.
 * `at`: only domains at this plan and stage index (a stage before a gated
 * one: no other domain can come to wait for approval), read by the
 * (plan, stage_index, domain) index whatever their state.
 */
export async function staleActiveDomains(
  db: Db,
  opts: { limit: number; after: string | null; scan: number; at?: { plan: string; stageIndex: number } },
): Promise<{ stale: string[]; last: string | null }> {
  let chunk = db.selectFrom('domains').select(['domain', 'state']).orderBy('domain').limit(opts.scan);
  if (opts.after !== null) chunk = chunk.where('domain', '>', opts.after);
  // With the stage given, the state is checked here, not in SQL: SQLite would walk the (state, domain) index instead.
  chunk = opts.at !== undefined ? chunk.where('plan', '=', opts.at.plan).where('stage_index', '=', opts.at.stageIndex) : chunk.where('state', '=', 'active');
  const read = await chunk.execute();
  const last = read.length < opts.scan ? null : read.at(-1)!.domain;
  const names = read.filter((r) => r.state === 'active').map((r) => r.domain);
  if (names.length === 0) return { stale: [], last };
  const rows = await db
    .selectFrom('domains as d')
    .leftJoin('domain_assessments as a', 'a.domain', 'd.domain')
    .select('d.domain')
    .where('d.domain', 'in', names)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('intents as i').select('i.domain').whereRef('i.domain', '=', 'd.domain'))))
    .where((eb) =>
      eb.or([
        eb('a.domain', 'is', null),
        eb('a.plan', '!=', eb.ref('d.plan')),
        eb('a.stage_index', '!=', eb.ref('d.stage_index')),
        eb('a.assessed_at', '<', eb.ref('d.updated_at')),
        eb.exists(eb.selectFrom('reports as r').select('r.id').whereRef('r.domain', '=', 'd.domain').where(reportId('r.id'), '>', eb.ref('a.last_report_id'))),
        eb.exists(
          eb
            .selectFrom('source_rules as s')
            .select('s.id')
            .where((inner) => inner.or([inner('s.domain', 'is', null), inner('s.domain', '=', inner.ref('d.domain'))]))
            .whereRef('s.added_at', '>', 'a.assessed_at'),
        ),
        eb.exists(eb.selectFrom('reporter_acknowledgements as k').select('k.id').whereRef('k.domain', '=', 'd.domain').whereRef('k.at', '>', 'a.assessed_at')),
      ]),
    )
    .orderBy('d.domain')
    .limit(opts.limit)
    .execute();
  return { stale: rows.map((r) => r.domain), last };
}

/**
 * How many domains are in each state (for the fleet page's counts), a state
 * a read over the (state, domain) index with a turn between: one grouped
 * read held SQLite 11 ms at 100,000 domains, most of it in the one state
 * most domains are in.
 */
export async function domainsPerState(db: Db): Promise<Record<DomainState, number>> {
  const counts: Record<DomainState, number> = { active: 0, paused: 0, halted: 0, completed: 0 };
  for (const state of Object.keys(counts) as DomainState[]) {
    counts[state] = Number((await db.selectFrom('domains').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', state).executeTakeFirstOrThrow()).n);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return counts;
}

/**
 * The plans domains are enrolled on (to resolve a stage label against each),
 * one index seek a plan (the next plan after the last): DISTINCT read every
 * domain's entry, 7.5 ms at 100,000 domains on SQLite.
 */
export async function enrolledPlans(db: Db): Promise<string[]> {
  const plans: string[] = [];
  for (;;) {
    let next = db.selectFrom('domains').select('plan').orderBy('plan').limit(1);
    if (plans.length > 0) next = next.where('plan', '>', plans.at(-1)!);
    const row = await next.executeTakeFirst();
    if (!row) return plans;
    plans.push(row.plan);
  }
}
