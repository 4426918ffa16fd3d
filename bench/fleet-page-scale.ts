/**
 * The fleet page at scale: every page shape GET /api/v1/domains and the web
 * page ask for (each sort both ways, filters sparse and dense, deep offsets,
 * a page of stale domains, the approvals queue) over BENCH_SIZE (default
 * 100,000) enrolled domains with stored assessments, on SQLite and on a temp
 * Postgres (test/helpers/postgres.ts). For each: the wall time and the
 * longest the event loop was held (monitorEventLoopDelay and a 10 ms probe,
 * what /healthz would have waited), against, in the same run, the listing's
 * previous statement shape (one query over domains LEFT JOIN
 * domain_assessments sorting the whole fleet, kept here only) and a bare
 * `select domain from domains limit 100`. The rows the new listing returns
 * are checked equal to the old shape's for every shape.
 *
 * The fleet is written by SQL in seconds: domains over two plans, three
 * stages and four states, 1 in 100 never verified (no stage_since), 1 in 50
 * never assessed, 1 in 20 of the rest with no fail rate (no authorised
 * mail), figures with many ties, 1 in 97 awaiting approval. The first
 * CLONED names get 30 days of reports from three reporters (domain 0's
 * through the real ingest, its reports and daily rollups copied to the
 * others as bench/scale.ts's cloneHistory does), so the stale page and the
 * approvals queue measure domains with a month of history; the rest have
 * none (their stored figures are synthetic and never measured here).
 *
 * Run: node --import tsx bench/fleet-page-scale.ts  (env: BENCH_SIZE=100000 BENCH_STORES=sqlite,postgres)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import { fleetPage, REMEASURE_ENTRIES_PER_REQUEST, REMEASURE_PER_REQUEST, type FleetPageQuery } from '../src/fleet/fleet-page.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { fleetRows, type FleetRowsQuery, type FleetSort } from '../src/store/assessments.js';
import { openStore, type Store } from '../src/store/open.js';
import type { Database } from '../src/store/schema.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { aggregateReportXml, cleanRow, spoofRow } from '../test/helpers/reports.js';
import { timed } from './loop-hold.js';

const SIZE = Number(process.env.BENCH_SIZE ?? 100_000);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const CLONED = 150;
const DAYS = 30;
const REPORTERS = ['google.com', 'outlook.com', 'yahoo.com'];
const DAY_MS = 86_400_000;
const now = new Date('2026-06-30T12:00:00Z');
const SORTS: FleetSort[] = ['domain', 'state', 'stage', 'days_in_stage', 'authorised_fail_rate', 'authorised_messages', 'spoofing_messages', 'blocking_sources'];
// The second plan is the default one under another name: the plan and stage filters have two to choose from.
const ctx = { loadPlan: (name: string) => loadPlan(name === 'other' ? 'default' : name) };

const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-fleet-page-'));
let postgres: PostgresServer | undefined;

const name = (i: number) => `d${String(i).padStart(6, '0')}.fleet.example`;

/** The fleet, written by SQL (see the header for its shape). */
async function buildFleet(store: Store): Promise<void> {
  const pg = store.dialect === 'postgres';
  const pad = (expr: string, width: number) => (pg ? `lpad((${expr})::text, ${width}, '0')` : `substr('${'0'.repeat(width)}' || (${expr}), -${width})`);
  await sql
    .raw(
      `insert into domains (domain, plan, provider, stage_index, state, state_reason, stage_since, last_record, window_start, approved_stage_index, found_record, floor_index, report_uri, tags, enrolled_at, updated_at)
       with recursive n(i) as (select 0 union all select i + 1 from n where i < ${SIZE - 1})
       select 'd' || ${pad('i', 6)} || '.fleet.example',
         case when i % 10 = 7 then 'other' else 'default' end, 'memory', i % 13,
         case when i % 100 < 85 or i < ${CLONED} then 'active' when i % 100 < 90 then 'paused' when i % 100 < 92 then 'halted' else 'completed' end, null,
         case when i % 100 = 42 then null else '2026-06-' || ${pad('1 + (i * 37) % 28', 2)} || 'T00:00:00.000Z' end,
         'v=DMARC1; p=none; rua=mailto:dmarc@reports.example', '2026-06-01T00:00:00.000Z', null, null, null, null, '[]',
         '2026-05-01T00:00:00.000Z', '2026-05-01T00:00:00.000Z'
       from n`,
    )
    .execute(store.db);
  await buildHistory(store);
  // Assessments: 1 in 50 never assessed; the figures' ties come from small moduli.
  await sql
    .raw(
      `insert into domain_assessments (domain, assessed_at, plan, stage_index, last_report_id, authorised_fail_rate, authorised_messages, spoofing_messages, blocking_sources, decision_action, decision_to, decision_summary)
       select d.domain, '${now.toISOString()}', d.plan, d.stage_index, coalesce(r.newest, 0),
         case when (k * 13) % 20 = 0 then null else ((k * 7919) % 1000) / 1000.0 end,
         (k * 104729) % 50000, (k * 31) % 700, k % 5,
         case when k % 97 = 0 then 'await-approval' else 'hold' end, null, 'synthetic'
       from (select domain, cast(substr(domain, 2, 6) as bigint) as k from domains) s join domains d on d.domain = s.domain
         -- Grouped, not max(id) per domain: Postgres answers that by walking reports backward by id, all of them for a domain with none.
         left join (select domain, max(id) as newest from reports group by domain) r on r.domain = d.domain
       where k % 50 <> 1`,
    )
    .execute(store.db);
  // Statistics and the visibility map as autovacuum would leave them on a store that grew over months (index-only scans).
  if (pg) await sql`vacuum analyze`.execute(store.db);
}

/** Domain 0's month of reports through the real ingest, copied to the next CLONED - 1 domains with their rollups. */
async function buildHistory(store: Store): Promise<void> {
  const template = name(0);
  for (let d = DAYS; d >= 1; d--) {
    const day = new Date(now.getTime() - d * DAY_MS).toISOString().slice(0, 10);
    for (const reporter of REPORTERS) {
      const xml = aggregateReportXml({ reporter, domain: template, day, rows: [cleanRow(template, '192.0.2.1', 120), cleanRow(template, '192.0.2.2', 40), spoofRow(template, `203.0.113.${d}`, 3)] });
      const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:${reporter}/${d}`, { rejectedDir: join(work, 'rejected'), now: () => new Date(now.getTime() - (d - 1) * DAY_MS) });
      if (result.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(result)}`);
    }
  }
  const swap = (col: string) => `replace(${col}, '${template}', d.domain)`;
  const reportCols = ['org', 'report_id', 'domain', 'begin', '"end"', 'content_hash', 'counted', 'flag', 'rows_digest', 'adkim', 'aspf', 'duplicates', 'source', 'container', 'repaired', 'metadata', 'received_at', 'rows_pruned_at'];
  const reportVals = reportCols.map((c) =>
    // The ingested report's hashes do not hold its domain's name: the copy's are made its own.
    c === 'domain' ? 'd.domain' : c === 'content_hash' || c === 'rows_digest' ? `r.${c} || ':' || d.domain` : c === 'report_id' ? swap(`r.${c}`) : c === 'rows_pruned_at' ? 'r.received_at' : `r.${c}`,
  );
  const rollupCols = ['key', 'domain', 'day', 'reporter', 'begin', '"end"', 'adkim', 'aspf', 'source_ip', 'header_from', 'dkim', 'spf', 'reasons', 'auth_dkim', 'auth_spf', 'messages', 'records'];
  const rollupVals = rollupCols.map((c) => (c === 'key' ? `u.key || ':' || d.domain` : c === 'domain' ? 'd.domain' : ['header_from', 'auth_dkim', 'auth_spf'].includes(c) ? swap(`u.${c}`) : `u.${c}`));
  const targets = Array.from({ length: CLONED - 1 }, (_, i) => name(i + 1));
  const list = sql.join(targets.map((n) => sql.lit(n)));
  await store.db.transaction().execute(async (trx) => {
    await sql`insert into reports (${sql.raw(reportCols.join(', '))}) select ${sql.raw(reportVals.join(', '))} from reports r cross join domains d where r.domain = ${template} and d.domain in (${list}) order by d.domain, r.id`.execute(trx);
    await sql`insert into daily_rollups (${sql.raw(rollupCols.join(', '))}) select ${sql.raw(rollupVals.join(', '))} from daily_rollups u cross join domains d where u.domain = ${template} and d.domain in (${list})`.execute(trx);
    await sql`insert into rollup_marks (name, changes) select d.domain, m.changes from rollup_marks m cross join domains d where m.name = ${template} and d.domain in (${list})`.execute(trx);
  });
}

/**
 * The listing's statement before migration 0015_fleet_sort (kept here only,
 * as the baseline): the count and the page in one query each over domains
 * LEFT JOIN domain_assessments, the page sorting the whole filtered fleet.
 */
async function previousFleetRows(db: Kysely<Database>, q: FleetRowsQuery): Promise<{ names: string[]; total: number }> {
  const filtered = () => {
    let query = db.selectFrom('domains as d').leftJoin('domain_assessments as a', 'a.domain', 'd.domain');
    if (q.state !== undefined) query = query.where('d.state', '=', q.state);
    if (q.plan !== undefined) query = query.where('d.plan', '=', q.plan);
    if (q.q !== undefined) query = query.where(sql<boolean>`${sql.ref('d.domain')} like ${`%${q.q}%`}`);
    if (q.stageIn !== undefined) query = query.where((eb) => eb.or(q.stageIn!.map((p) => eb.and([eb('d.plan', '=', p.plan), eb('d.stage_index', 'in', p.indices)]))));
    // With the fix to `awaiting_approval=false` (a domain never assessed is not awaiting), which costs nothing.
    const awaiting = (eb: any) =>
      eb.and([eb('a.decision_action', 'is not', null), eb('d.state', '=', 'active'), eb('a.decision_action', '=', 'await-approval'), eb.not(eb.exists(eb.selectFrom('intents as i').select('i.domain').whereRef('i.domain', '=', 'd.domain')))]);
    if (q.awaitingApproval !== undefined) query = query.where((eb) => (q.awaitingApproval ? awaiting(eb) : eb.not(awaiting(eb))));
    if (q.approvals) query = query.where((eb) => eb.or([awaiting(eb), eb('d.approved_stage_index', '>', eb.ref('d.stage_index'))]));
    return query;
  };
  const counted = await filtered().select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  let page = filtered().selectAll('d').select(['a.authorised_fail_rate', 'a.authorised_messages', 'a.spoofing_messages', 'a.blocking_sources', 'a.decision_action']);
  const dir = q.order;
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
      page = page.orderBy(nullsLast('d.stage_since')).orderBy('d.stage_since', dir === 'desc' ? 'asc' : 'desc');
      break;
    default:
      page = page.orderBy(nullsLast(`a.${q.sort}`)).orderBy(`a.${q.sort}`, dir);
  }
  const rows = await page.orderBy('d.domain', q.sort === 'domain' ? dir : 'asc').limit(q.limit).offset(q.offset).execute();
  return { names: rows.map((r) => r.domain), total: Number(counted.n) };
}

/**
 * The plans of every statement an unfiltered page runs, for each sort both
 * ways (first page and 99,900 deep), and those that sort rows themselves
 * (SQLite: a temporary B-tree; Postgres: a Sort node) instead of reading an
 * index in order. The statements are caught by a kysely plugin that
 * compiles each query as the store's executor will.
 */
async function sortingStatements(store: Store): Promise<{ statements: number; sorting: string[]; inRanges: number }> {
  const caught: CompiledQuery[] = [];
  const executor = store.db.getExecutor();
  const logged = store.db.withPlugin({
    transformQuery: (args) => {
      caught.push(executor.compileQuery(args.node, args.queryId));
      return args.node;
    },
    transformResult: async (args) => args.result,
  });
  for (const sort of SORTS) {
    for (const order of ['asc', 'desc'] as const) {
      for (const offset of [0, SIZE - 100]) await fleetRows(logged, { sort, order, limit: 100, offset });
    }
  }
  const sorting: string[] = [];
  let inRanges = 0;
  for (const q of caught) {
    // A walk by name (the never-assessed domains) reads a range of names a statement, or, when the fleet is no larger, all of them: sorting those is bounded.
    const nameWalk = /"a"\."domain" is null or/.test(q.sql);
    const plan = (await store.db.executeQuery<Record<string, string>>(CompiledQuery.raw(`${store.dialect === 'sqlite' ? 'explain query plan' : 'explain'} ${q.sql}`, [...q.parameters]))).rows.map((r) => r.detail ?? r['QUERY PLAN'] ?? '');
    if (!plan.some((line) => /TEMP B-TREE|^\s*(->\s*)?(Incremental )?Sort\b/.test(line))) continue;
    if (nameWalk) inRanges++;
    else sorting.push(`${q.sql}\n      ${plan.join('\n      ')}`);
  }
  return { statements: caught.length, sorting, inRanges };
}

interface Shape {
  label: string;
  query: FleetPageQuery & { sort: FleetSort; order: 'asc' | 'desc' };
}

function shapes(): Shape[] {
  const out: Shape[] = [];
  for (const sort of SORTS) for (const order of ['asc', 'desc'] as const) out.push({ label: `sort=${sort}&order=${order}`, query: { sort, order, limit: 100 } });
  const deep = SIZE - 100;
  out.push({ label: `sort=domain&offset=${deep}`, query: { sort: 'domain', order: 'asc', limit: 100, offset: deep } });
  out.push({ label: `sort=authorised_fail_rate&order=desc&offset=${deep} (the no-figure domains, some never assessed)`, query: { sort: 'authorised_fail_rate', order: 'desc', limit: 100, offset: deep } });
  out.push({ label: `sort=spoofing_messages&order=asc&offset=${SIZE / 2}`, query: { sort: 'spoofing_messages', order: 'asc', limit: 100, offset: SIZE / 2 } });
  out.push({ label: `sort=days_in_stage&order=desc&offset=${deep} (never verified last)`, query: { sort: 'days_in_stage', order: 'desc', limit: 100, offset: deep } });
  out.push({ label: 'q=0012 (sparse: 120 domains)', query: { q: '0012', sort: 'domain', order: 'asc', limit: 100 } });
  out.push({ label: 'q=0012&state=active&sort=spoofing_messages&order=desc', query: { q: '0012', state: 'active', sort: 'spoofing_messages', order: 'desc', limit: 100 } });
  out.push({ label: 'state=active&sort=authorised_fail_rate&order=desc (dense)', query: { state: 'active', sort: 'authorised_fail_rate', order: 'desc', limit: 100 } });
  out.push({ label: 'state=active&sort=authorised_fail_rate&order=desc&offset=5000 (dense)', query: { state: 'active', sort: 'authorised_fail_rate', order: 'desc', limit: 100, offset: 5000 } });
  out.push({ label: 'state=halted&sort=blocking_sources&order=desc (2,000 domains)', query: { state: 'halted', sort: 'blocking_sources', order: 'desc', limit: 100 } });
  out.push({ label: 'state=paused&sort=authorised_messages&order=desc (5,000 domains)', query: { state: 'paused', sort: 'authorised_messages', order: 'desc', limit: 100 } });
  out.push({ label: 'state=paused&sort=authorised_messages&order=desc&offset=4900 (its last page)', query: { state: 'paused', sort: 'authorised_messages', order: 'desc', limit: 100, offset: 4900 } });
  out.push({ label: 'stage=none:100&sort=spoofing_messages&order=desc&offset=7600 (the last page of 7,700 matches)', query: { stage: 'none:100', sort: 'spoofing_messages', order: 'desc', limit: 100, offset: 7600 } });
  // Past collectUpTo matches: its last page walks the whole index, 500 names a statement and more after.
  out.push({ label: 'q=9&sort=spoofing_messages&order=desc&offset=40900 (41,000 matches, the last page)', query: { q: '9', sort: 'spoofing_messages', order: 'desc', limit: 100, offset: 40_900 } });
  out.push({ label: 'plan=other&sort=stage&order=desc', query: { plan: 'other', sort: 'stage', order: 'desc', limit: 100 } });
  out.push({ label: 'stage=none:100&sort=days_in_stage&order=asc', query: { stage: 'none:100', sort: 'days_in_stage', order: 'asc', limit: 100 } });
  out.push({ label: 'awaiting_approval=true', query: { awaitingApproval: true, sort: 'domain', order: 'asc', limit: 100 } });
  out.push({ label: 'awaiting_approval=false&sort=spoofing_messages&order=desc', query: { awaitingApproval: false, sort: 'spoofing_messages', order: 'desc', limit: 100 } });
  out.push({ label: 'the web page\'s awaiting count (awaiting_approval, limit 1)', query: { awaitingApproval: true, sort: 'domain', order: 'asc', limit: 1 } });
  return out;
}

/** The plan/stage pairs a stage label stands for (as fleetPage resolves it). */
const stageIn = (label: string) => (label === 'none:100' ? [{ plan: 'default', indices: [0] }, { plan: 'other', indices: [0] }] : []);

function rowsQuery(q: Shape['query']): FleetRowsQuery {
  return {
    ...(q.state !== undefined ? { state: q.state } : {}),
    ...(q.plan !== undefined ? { plan: q.plan } : {}),
    ...(q.q !== undefined ? { q: q.q } : {}),
    ...(q.stage !== undefined ? { stageIn: stageIn(q.stage) } : {}),
    ...(q.awaitingApproval !== undefined ? { awaitingApproval: q.awaitingApproval } : {}),
    sort: q.sort,
    order: q.order,
    limit: q.limit ?? 100,
    offset: q.offset ?? 0,
  };
}

const ms = (t: { ms: number; loopMaxMs: number; probeMaxMs: number; probeCpuMs: number }) =>
  `${t.ms.toFixed(0).padStart(5)} ms, loop held ${t.loopMaxMs.toFixed(0).padStart(3)} ms (probe ${t.probeMaxMs.toFixed(0)} late, ${t.probeCpuMs.toFixed(0)} ms CPU)`;

try {
  for (const kind of STORES) {
    let store: Store;
    if (kind === 'sqlite') store = await openStore({ kind, path: join(work, 'fleet.sqlite') });
    else {
      postgres ??= await startPostgres();
      store = await openStore({ kind, connection: postgres.connection(await postgres.createDatabase('fleet')) });
    }
    try {
      const built = await timed(() => buildFleet(store));
      const assessed = Number((await store.db.selectFrom('domain_assessments').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
      console.log(`\n${kind}: ${SIZE} domains, ${assessed} assessed, ${CLONED} with ${DAYS} days of reports (built in ${(built.ms / 1000).toFixed(1)} s)`);
      const bare = await timed(() => store.db.selectFrom('domains').select('domain').limit(100).execute());
      console.log(`  bare select domain from domains limit 100: ${ms(bare)}`);
      let worstNew = 0;
      let worstOld = 0;
      for (const shape of shapes()) {
        const rq = rowsQuery(shape.query);
        const before = await timed(() => previousFleetRows(store.db, rq));
        const rows = await timed(() => fleetRows(store.db, rq));
        const page = await timed(() => fleetPage(store, now, ctx, shape.query));
        const names = rows.value.rows.map((r) => r.row.domain);
        if (JSON.stringify(names) !== JSON.stringify(before.value.names) || rows.value.total !== before.value.total) {
          throw new Error(`${shape.label}: the listing differs from the previous statement's\n${names.slice(0, 8).join(' ')} (${rows.value.total})\n${before.value.names.slice(0, 8).join(' ')} (${before.value.total})`);
        }
        // The page measured its stale domains (those never assessed) and read its rows again: the listing as it stands now.
        const after = (await fleetRows(store.db, rq)).rows.map((r) => r.row.domain);
        if (JSON.stringify(page.value.domains.map((d) => d.domain)) !== JSON.stringify(after)) throw new Error(`${shape.label}: the page differs from its rows`);
        worstNew = Math.max(worstNew, page.loopMaxMs);
        worstOld = Math.max(worstOld, before.loopMaxMs);
        console.log(`  ${shape.label} (${rows.value.total} match)\n    before: ${ms(before)}\n    now:    ${ms(rows)} (listing), ${ms(page)} (the whole page: figures' staleness, changes in flight); ${(before.ms / Math.max(0.1, rows.ms)).toFixed(1)}x faster, ${(rows.ms / Math.max(0.1, bare.ms)).toFixed(1)}x the bare read`);
      }
      console.log(`  longest event-loop hold over all shapes: before ${worstOld.toFixed(0)} ms, now ${worstNew.toFixed(0)} ms`);
      const plans = await sortingStatements(store);
      console.log(`  unfiltered pages, every sort both ways, first and last: ${plans.statements} statements, ${plans.sorting.length} sorting rows themselves (besides ${plans.inRanges} of the walk by name, a range of names each)${plans.sorting.map((p) => `\n    ${p}`).join('')}`);

      // The approvals queue over a fresh fleet: the stale active domains are looked for across all of it (none found).
      const queue = await timed(() => fleetPage(store, now, ctx, { approvals: true, limit: 100 }));
      console.log(`  approvals queue, nothing stale (${queue.value.total} waiting): ${ms(queue)}`);
      // Every domain changed since the tick: the page's first ones are measured again for the request, within its budgets.
      const later = new Date(now.getTime() + 60 * 60_000);
      await store.db.updateTable('domains').set({ updated_at: later.toISOString() }).execute();
      const stale = await timed(() => fleetPage(store, later, ctx, { limit: 100 }));
      const remeasured = stale.value.domains.filter((d) => d.assessed_at === later.toISOString()).length;
      console.log(`  a page of 100 stale domains (${remeasured} measured again, at most ${REMEASURE_PER_REQUEST} and ${REMEASURE_ENTRIES_PER_REQUEST} rollup entries; each has ${DAYS} days of reports): ${ms(stale)}`);
      const staleQueue = await timed(() => fleetPage(store, later, ctx, { approvals: true, limit: 100 }));
      console.log(`  approvals queue over a stale fleet (${REMEASURE_PER_REQUEST} measured again first): ${ms(staleQueue)}`);
    } finally {
      await store.close();
    }
  }
} finally {
  await postgres?.stop();
  rmSync(work, { recursive: true, force: true });
}
