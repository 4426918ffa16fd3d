/**
 * Stored assessments: each domain's latest stage-window figures and decision
 * (written by the tick, and by a view that had to measure a domain again),
 * and the fleet listing read from them: filtered, sorted and paged in SQL,
 * so a page of the fleet costs a page of rows however large the fleet is.
 * Which stored figures are stale is decided here too, from what changed
 * since they were measured.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, DomainRow, DomainState, StoredAssessment } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** SQLite allows 32766 bound parameters; stay far below it for any backend. */
const IN_CHUNK = 500;

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
        eb.selectFrom('reports as r').select((e) => e.fn.max('r.id').as('x')).whereRef('r.domain', '=', 'd.domain').as('mark_report'),
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
    .select((eb) => eb.fn.max('id').as('id'))
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

/** One page of the fleet with each domain's stored assessment (null when never assessed), and how many match in all. */
export async function fleetRows(db: Db, q: FleetRowsQuery): Promise<{ rows: FleetRow[]; total: number }> {
  const filtered = () => {
    let query = db.selectFrom('domains as d').leftJoin('domain_assessments as a', 'a.domain', 'd.domain');
    if (q.state !== undefined) query = query.where('d.state', '=', q.state);
    if (q.plan !== undefined) query = query.where('d.plan', '=', q.plan);
    if (q.provider !== undefined) query = query.where('d.provider', '=', q.provider);
    if (q.q !== undefined) query = query.where(sql<boolean>`${sql.ref('d.domain')} like ${`%${q.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} escape '\\'`);
    if (q.stageIn !== undefined) {
      const pairs = q.stageIn.filter((p) => p.indices.length > 0);
      query =
        pairs.length === 0
          ? query.where(sql<boolean>`1 = 0`)
          : query.where((eb) => eb.or(pairs.map((p) => eb.and([eb('d.plan', '=', p.plan), eb('d.stage_index', 'in', p.indices)]))));
    }
    const awaiting = (eb: any) =>
      eb.and([
        eb('d.state', '=', 'active'),
        eb('a.decision_action', '=', 'await-approval'),
        eb.not(eb.exists(eb.selectFrom('intents as i').select('i.domain').whereRef('i.domain', '=', 'd.domain'))),
      ]);
    if (q.awaitingApproval !== undefined) query = query.where((eb) => (q.awaitingApproval ? awaiting(eb) : eb.not(awaiting(eb))));
    if (q.approvals) query = query.where((eb) => eb.or([awaiting(eb), eb('d.approved_stage_index', '>', eb.ref('d.stage_index'))]));
    return query;
  };
  const counted = await filtered()
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  let page = filtered()
    .selectAll('d')
    .select(ASSESSMENT_COLUMNS.map((c) => `a.${c} as a_${c}` as const))
    .select(sql<number>`case when a.domain is null then 0 else 1 end`.as('a_present'));
  const dir = q.order;
  // NULLs last whichever the direction, the same on SQLite (NULLs sort low) and Postgres (NULLs sort high).
  const nullsLast = (column: string) => sql`case when ${sql.ref(column)} is null then 1 else 0 end`;
  switch (q.sort) {
    case 'domain':
      break;
    case 'state':
      page = page.orderBy('d.state', dir);
      break;
    case 'stage':
      page = page.orderBy('d.plan', dir).orderBy('d.stage_index', dir);
      break;
    case 'days_in_stage':
      // Longest in stage first when descending: the earliest stage_since.
      page = page.orderBy(nullsLast('d.stage_since')).orderBy('d.stage_since', dir === 'desc' ? 'asc' : 'desc');
      break;
    default:
      page = page.orderBy(nullsLast(`a.${q.sort}`)).orderBy(`a.${q.sort}`, dir);
  }
  const rows = await page.orderBy('d.domain', q.sort === 'domain' ? dir : 'asc').limit(q.limit).offset(q.offset).execute();
  return {
    total: Number(counted.n),
    rows: rows.map((r) => {
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
      return { row, assessment };
    }),
  };
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
 * of them among the next `scan` active domains by name after `after`, and
 * where the scan stopped (null at the end of the fleet). The caller walks
 * the fleet a chunk at a time, so no one read holds SQLite for long.
 */
export async function staleActiveDomains(db: Db, opts: { limit: number; after: string | null; scan: number }): Promise<{ stale: string[]; last: string | null }> {
  let chunk = db.selectFrom('domains').select('domain').where('state', '=', 'active').orderBy('domain').limit(opts.scan);
  if (opts.after !== null) chunk = chunk.where('domain', '>', opts.after);
  const names = (await chunk.execute()).map((r) => r.domain);
  if (names.length === 0) return { stale: [], last: null };
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
        eb.exists(eb.selectFrom('reports as r').select('r.id').whereRef('r.domain', '=', 'd.domain').whereRef('r.id', '>', 'a.last_report_id')),
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
  return { stale: rows.map((r) => r.domain), last: names.length < opts.scan ? null : names.at(-1)! };
}

/** How many domains are in each state (for the fleet page's counts), in one grouped read. */
export async function domainsPerState(db: Db): Promise<Record<DomainState, number>> {
  const counts: Record<DomainState, number> = { active: 0, paused: 0, halted: 0, completed: 0 };
  const rows = await db.selectFrom('domains').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
  for (const r of rows) counts[r.state] = Number(r.n);
  return counts;
}

/** The plans domains are enrolled on (to resolve a stage label against each). */
export async function enrolledPlans(db: Db): Promise<string[]> {
  return (await db.selectFrom('domains').select('plan').distinct().execute()).map((r) => r.plan);
}
