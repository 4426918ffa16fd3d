/**
 * Scale benchmark: a tick over a large fleet, and the fleet API page, on
 * SQLite and on Postgres, each printed against a bare read of the same
 * rollups and raw rows in the same run.
 *
 * Per store, history and fleet size: BENCH_SIZES domains (default
 * 1000,10000), each established at none:100 with BENCH_DAYS (default 30,90)
 * days of daily reports from three reporters (two of the domain's servers and
 * one spoofer a report), holding on dwell so a tick decides and writes
 * nothing but its stored assessments. The reports of domain 0 are stored by
 * the real ingest; the rest are written by SQL in the same shape and rolled
 * up by the store's own function (rollUpStoredReports, as simulate's copies
 * are), checked: domain 1's rows and rollups read back equal to domain 0's.
 * Postgres is a temp cluster from test/helpers/postgres.ts.
 *
 * Printed:
 * - bare reads: loadRollupRows (what the engine reads now) and
 *   loadObservedRows (the raw rows it read before) for every domain over the
 *   look-back, no judging;
 * - first tick: every domain measured from its rollups and judged;
 * - tick with nothing new (the second): the stored decisions stand, nothing
 *   is measured; CPU per 1,000 domains;
 * - a late report for one domain in ten, then a tick: only those are
 *   measured again, so its cost follows what arrived;
 * - retention: pruning the raw rows past the look-back, in ticks' budgets;
 * - page: GET /api/v1/domains' work (fleetPage) after the tick.
 *
 * Run: node --import tsx bench/scale.ts  (env: BENCH_SIZES=1000,10000 BENCH_DAYS=30,90 BENCH_STORES=sqlite,postgres BENCH_PAGE=0 skips the page;
 * BENCH_BUILD=clone copies the template domain by SQL, see cloneHistory: 100,000 domains x 30 days in about 12 minutes;
 * BENCH_KEEP=<folder> keeps the SQLite stores there, for bench/healthz.ts)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { LOOKBACK_DAYS } from '../src/engine/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { inputsDigest } from '../src/engine/reuse.js';
import { runTick } from '../src/engine/tick.js';
import { assessmentMarksOf } from '../src/store/assessments.js';
import { fleetPage, REMEASURE_ENTRIES_PER_REQUEST, REMEASURE_PER_REQUEST } from '../src/fleet/fleet-page.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { loadObservedRows } from '../src/store/observations.js';
import { loadRollupRows, pruneRawRows, rollUpStoredReports } from '../src/store/rollups.js';
import { openStore, type Store } from '../src/store/open.js';
import type { StoreLocation } from '../src/store/location.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { aggregateReportXml, cleanRow, dayRange, spoofRow, type GeneratedRow } from '../test/helpers/reports.js';
import { stall, timed } from './loop-hold.js';

const SIZES = (process.env.BENCH_SIZES ?? '1000,10000').split(',').map(Number);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const HISTORY = (process.env.BENCH_DAYS ?? '30,90').split(',').map(Number);
const PAGE = process.env.BENCH_PAGE !== '0';
const CLONE = process.env.BENCH_BUILD === 'clone';
const REPORTERS = ['google.com', 'outlook.com', 'yahoo.com'];
const DAY_MS = 86_400_000;
const now = new Date('2026-06-30T12:00:00Z');
const RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example';

const work = mkdtempSync(join(tmpdir(), 'dmarc-rollout-bench-scale-'));
/** BENCH_KEEP=<folder>: the SQLite stores are built there and kept (for bench/healthz.ts), as the run leaves them. */
const KEEP = process.env.BENCH_KEEP;
let postgres: PostgresServer | undefined;

const dayOf = (d: number) => new Date(now.getTime() - d * DAY_MS).toISOString().slice(0, 10);
const rowsFor = (domain: string, n: number, d: number): GeneratedRow[] => [
  cleanRow(domain, `192.0.${n % 250}.1`, 120),
  cleanRow(domain, `192.0.${n % 250}.2`, 40),
  spoofRow(domain, `203.0.113.${(n + d) % 250}`, 3),
];

/** The columns ingest writes for a generated row (src/reports/store.ts rowValues), by SQL. */
function rowColumns(report: number, r: GeneratedRow) {
  return {
    report,
    source_ip: r.ip,
    count: r.count,
    disposition: 'none',
    dkim: r.dkim,
    spf: r.spf,
    header_from: r.headerFrom,
    envelope_from: null,
    envelope_to: null,
    reasons: '[]',
    auth_dkim: JSON.stringify(r.dkimDomain ? [{ domain: r.dkimDomain, selector: 's1', result: r.dkimResult ?? r.dkim, human_result: null }] : []),
    auth_spf: JSON.stringify([{ domain: r.spfDomain ?? r.headerFrom, scope: null, result: r.spfResult ?? r.spf, human_result: null }]),
  };
}

/** When the bench's domains were enrolled (and last changed, but for the stale-page step). */
const enrolled = (historyDays: number) => new Date(now.getTime() - (historyDays + 5) * DAY_MS).toISOString();

async function buildFleet(store: Store, size: number, HISTORY_DAYS: number): Promise<string[]> {
  const names = Array.from({ length: size }, (_, i) => `d${i}.bench.example`);
  const dns = new MemoryDns();
  const enrolledAt = enrolled(HISTORY_DAYS);
  for (let i = 0; i < names.length; i += 500) {
    await store.db
      .insertInto('domains')
      .values(
        names.slice(i, i + 500).map((domain) => ({
          domain,
          plan: 'default',
          provider: 'memory',
          stage_index: 0,
          state: 'active' as const,
          state_reason: null,
          // In force for 3 days: it holds on dwell (14 days at none:100), and a tick still reads the
          // look-back's 28 days of reports to class the senders.
          stage_since: new Date(now.getTime() - 3 * DAY_MS).toISOString(),
          last_record: RECORD,
          window_start: new Date(now.getTime() - 3 * DAY_MS).toISOString(),
          approved_stage_index: null,
          found_record: null,
          floor_index: null,
          report_uri: null,
          enrolled_at: enrolledAt,
          updated_at: enrolledAt,
        })),
      )
      .execute();
  }
  for (const domain of names) dns.set(`_dmarc.${domain}`, { txt: [RECORD], ttl: 3600 });
  // Domain 0 through the real ingest.
  for (let d = HISTORY_DAYS; d >= 1; d--) {
    for (const reporter of REPORTERS) {
      const xml = aggregateReportXml({ reporter, domain: names[0]!, day: dayOf(d), rows: rowsFor(names[0]!, 0, d) });
      const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:${reporter}/${d}`, { rejectedDir: join(work, 'rejected'), now: () => new Date(now.getTime() - (d - 1) * DAY_MS) });
      if (result.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(result)}`);
    }
  }
  // The rest by SQL, a day at a time.
  for (let d = HISTORY_DAYS; d >= 1; d--) {
    const { begin, end } = dayRange(dayOf(d));
    const receivedAt = new Date(now.getTime() - (d - 1) * DAY_MS).toISOString();
    const bySql = CLONE ? names.slice(1, 2) : names.slice(1);
    for (let i = 0; i < bySql.length; i += 400) {
      const chunk = bySql.slice(i, i + 400);
      await store.db.transaction().execute(async (trx) => {
        const reports = chunk.flatMap((domain) =>
          REPORTERS.map((reporter) => ({
            org: reporter,
            report_id: `${reporter}-${domain}-${dayOf(d)}`,
            domain,
            begin,
            end,
            content_hash: `bench-${domain}-${reporter}-${d}`,
            counted: 1,
            flag: null,
            rows_digest: `bench-${domain}-${reporter}-${d}`,
            adkim: 'r',
            aspf: 'r',
            duplicates: 0,
            source: `bench:${reporter}`,
            container: null,
            repaired: null,
            metadata: '{}',
            received_at: receivedAt,
          })),
        );
        const ids = await trx.insertInto('reports').values(reports).returning(['id', 'domain']).execute();
        const rows = ids.flatMap(({ id, domain }) => rowsFor(domain, Number(domain.slice(1, domain.indexOf('.'))), d).map((r) => rowColumns(Number(id), r)));
        for (let k = 0; k < rows.length; k += 800) await trx.insertInto('report_rows').values(rows.slice(k, k + 800)).execute();
        // Rolled up in the same transaction, by the store's function.
        await rollUpStoredReports(trx, ids.map((r) => Number(r.id)));
      });
    }
  }
  // The SQL-written rows must read back as the ingested ones do.
  const window = { fromEpoch: Math.floor(now.getTime() / 1000) - (HISTORY_DAYS + 1) * 86_400, toEpoch: Math.floor(now.getTime() / 1000) };
  const shape = (rows: Awaited<ReturnType<typeof loadRollupRows>>, domain: string) =>
    JSON.stringify(
      rows
        .map((r) => ({ ...r, disposition: null, policyDomain: r.policyDomain === domain ? 'D' : r.policyDomain, headerFrom: r.headerFrom === domain ? 'D' : r.headerFrom, authDkim: r.authDkim.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), authSpf: r.authSpf.map((a) => ({ ...a, domain: a.domain === domain ? 'D' : a.domain })), sourceIp: r.sourceIp.replace(/^192\.0\.\d+\./, '192.0.x.').replace(/^203\.0\.113\.\d+$/, 'spoofer') }))
        .sort((a, b) => a.begin - b.begin || a.reporter.localeCompare(b.reporter) || a.sourceIp.localeCompare(b.sourceIp)),
    );
  for (const load of [loadObservedRows, loadRollupRows]) {
    const ingested = shape(await load(store.db, names[0]!, window), names[0]!);
    const written = shape(await load(store.db, names[1]!, window), names[1]!);
    if (ingested !== written) throw new Error(`SQL-written ${load.name} differ from ingested ones:\n${ingested.slice(0, 600)}\n${written.slice(0, 600)}`);
  }
  if (CLONE) {
    await cloneHistory(store, names[1]!, names.slice(2));
    // The clones' rollups must read back as the ingested ones do too (a sample across the fleet).
    const ingested = shape(await loadRollupRows(store.db, names[0]!, window), names[0]!);
    for (let k = 2; k < names.length; k += Math.max(1, Math.floor(names.length / 25))) {
      const cloned = shape(await loadRollupRows(store.db, names[k]!, window), names[k]!);
      if (cloned !== ingested) throw new Error(`cloned rollups of ${names[k]} differ from ingested ones:\n${ingested.slice(0, 600)}\n${cloned.slice(0, 600)}`);
    }
  }
  // Fresh statistics, as autovacuum would have them on a store that grew over months.
  if (store.dialect === 'postgres') await sql`analyze`.execute(store.db);
  benchDns = dns;
  return names;
}

let benchDns: MemoryDns;

/**
 * BENCH_BUILD=clone: the template domain's reports (metadata only, their raw
 * rows as retention leaves them: pruned) and daily rollups copied by
 * INSERT ... SELECT to every other domain, its name replaced; minutes for
 * 100,000 domains where writing rows and rolling them up takes hours here.
 */
async function cloneHistory(store: Store, template: string, targets: string[]): Promise<void> {
  const swap = (col: string) => `replace(${col}, '${template}', d.domain)`;
  const reportCols = ['org', 'report_id', 'domain', 'begin', '"end"', 'content_hash', 'counted', 'flag', 'rows_digest', 'adkim', 'aspf', 'duplicates', 'source', 'container', 'repaired', 'metadata', 'received_at', 'rows_pruned_at'];
  const reportVals = reportCols.map((c) =>
    c === 'domain' ? 'd.domain' : c === 'report_id' || c === 'content_hash' || c === 'rows_digest' ? swap(`r.${c}`) : c === 'rows_pruned_at' ? 'r.received_at' : `r.${c}`,
  );
  const rollupCols = ['key', 'domain', 'day', 'reporter', 'begin', '"end"', 'adkim', 'aspf', 'source_ip', 'header_from', 'dkim', 'spf', 'reasons', 'auth_dkim', 'auth_spf', 'messages', 'records'];
  const rollupVals = rollupCols.map((c) =>
    c === 'key' ? `u.key || ':' || d.domain` : c === 'domain' ? 'd.domain' : ['header_from', 'auth_dkim', 'auth_spf'].includes(c) ? swap(`u.${c}`) : `u.${c}`,
  );
  for (let i = 0; i < targets.length; i += 2000) {
    const chunk = targets.slice(i, i + 2000);
    const list = sql.join(chunk.map((n) => sql.lit(n)));
    await store.db.transaction().execute(async (trx) => {
      await sql`insert into reports (${sql.raw(reportCols.join(', '))}) select ${sql.raw(reportVals.join(', '))} from reports r cross join domains d where r.domain = ${template} and d.domain in (${list}) order by d.domain, r.id`.execute(trx);
      await sql`insert into daily_rollups (${sql.raw(rollupCols.join(', '))}) select ${sql.raw(rollupVals.join(', '))} from daily_rollups u cross join domains d where u.domain = ${template} and d.domain in (${list})`.execute(trx);
      await sql`insert into rollup_marks (name, changes) select d.domain, m.changes from rollup_marks m cross join domains d where m.name = ${template} and d.domain in (${list})`.execute(trx);
    });
    if (i % 20_000 === 0) process.stderr.write(`  cloned ${i + chunk.length} of ${targets.length}\r`);
  }
  await sql`update reports set rows_pruned_at = received_at where domain = ${template}`.execute(store.db);
  await store.db.deleteFrom('report_rows').where('report', 'in', store.db.selectFrom('reports').select('id').where('domain', '=', template)).execute();
}

/**
 * BENCH_BUILD=clone: the first tick measures the template domains for real,
 * and every other domain gets the template's stored assessment with its own
 * marks and inputs digest (what the tick would store); the nothing-new tick
 * then proves it (every stored decision must stand) and a sample measured
 * again by a dry run must decide the same.
 */
async function cloneAssessments(store: Store, names: string[], at: Date): Promise<void> {
  const template = (await store.db.selectFrom('domain_assessments').selectAll().where('domain', '=', names[1]!).executeTakeFirstOrThrow());
  const plan = loadPlan('default');
  const enrolled = new Set(names);
  for (let i = 2; i < names.length; i += 500) {
    const chunk = names.slice(i, i + 500);
    const marks = await assessmentMarksOf(store.db, chunk);
    const rows = await store.db.selectFrom('domains').selectAll().where('domain', 'in', chunk).execute();
    await store.db
      .insertInto('domain_assessments')
      .values(
        rows.map((row) => {
          const m = marks.get(row.domain)!;
          return {
            ...template,
            domain: row.domain,
            assessed_at: at.toISOString(),
            last_report_id: m.lastReportId,
            rollup_changes: m.rollupChanges,
            inputs: inputsDigest({ row, plan, enrolled, configRules: [], storeRules: m.rules, acknowledgements: m.acknowledgements }),
            decision: template.decision?.replaceAll(names[1]!, row.domain) ?? null,
            decision_summary: template.decision_summary?.replaceAll(names[1]!, row.domain) ?? null,
          };
        }),
      )
      .execute();
  }
}

async function location(kind: 'sqlite' | 'postgres', size: number, days: number): Promise<StoreLocation> {
  if (kind === 'sqlite') return { kind, path: join(KEEP ?? work, `fleet-${size}-${days}.sqlite`) };
  postgres ??= await startPostgres();
  return { kind, connection: postgres.connection(await postgres.createDatabase(`fleet_${size}_${days}`)) };
}

const perThousand = (cpuMs: number, domains: number) => `${((cpuMs / Math.max(1, domains)) * 1000).toFixed(0)} ms per 1,000 domains`;
const s2 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

try {
  for (const size of SIZES) {
   for (const HISTORY_DAYS of HISTORY) {
    for (const kind of STORES) {
      const store = await openStore(await location(kind, size, HISTORY_DAYS));
      try {
        const built = await timed(() => buildFleet(store, size, HISTORY_DAYS));
        const names = built.value;
        const rows = size * HISTORY_DAYS * REPORTERS.length * 3;
        const rollups = Number((await store.db.selectFrom('daily_rollups').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
        console.log(`\n${kind}, ${size} domains, ${HISTORY_DAYS} days x ${REPORTERS.length} reporters: ${size * HISTORY_DAYS * REPORTERS.length} reports, ${rows} rows${CLONE ? ' (raw rows kept for the two template domains only: the rest as retention leaves them)' : ''}, ${rollups} rollups (built in ${(built.ms / 1000).toFixed(1)} s)`);
        const tick = (at: Date = now) => timed(() => runTick({ store, now: at, providerFor: () => benchDns }));

        // The window a tick reads for these domains: the engine's look-back.
        const fromEpoch = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
        // Above 10,000 cloned domains, the reads and the full re-measure take every tenth domain (figures per 1,000 of them).
        const sampled = CLONE && size > 10_000 ? names.filter((_, i) => i % 10 === 0) : names;
        const bareRead = (load: typeof loadRollupRows) =>
          timed(async () => {
            let n = 0;
            for (const domain of sampled) n += (await load(store.db, domain, { fromEpoch, toEpoch: Math.floor(now.getTime() / 1000) })).length;
            return n;
          });
        const bareRollups = await bareRead(loadRollupRows);
        const bareRows = await bareRead(loadObservedRows);
        console.log(`  bare read of the look-back's rollups (loadRollupRows per domain): ${bareRollups.value} rollups, ${s2(bareRollups.ms)} wall, ${s2(bareRollups.cpuMs)} CPU (${perThousand(bareRollups.cpuMs, sampled.length)})${sampled.length < size ? `, ${sampled.length} domains read` : ''}`);
        console.log(`  bare read of the same raw rows (loadObservedRows, what the tick read before): ${bareRows.value} rows, ${s2(bareRows.ms)} wall, ${s2(bareRows.cpuMs)} CPU (${perThousand(bareRows.cpuMs, sampled.length)})`);

        const first = CLONE
          ? await timed(async () => {
              const measured = await runTick({ store, now, providerFor: () => benchDns, domains: names.slice(0, 2) });
              await cloneAssessments(store, names, now);
              return measured;
            })
          : await tick();
        const decisions = new Map<string, number>();
        for (const r of first.value) decisions.set(r.decision?.action ?? r.error ?? 'none', (decisions.get(r.decision?.action ?? r.error ?? 'none') ?? 0) + 1);
        console.log(
          `  ${CLONE ? 'first tick of the two template domains, the rest of the assessments cloned' : 'first tick (measures every domain from its rollups, judges, stores assessments)'}: ${s2(first.ms)} wall, ${s2(first.cpuMs)} CPU (${perThousand(first.cpuMs, size)}; ${(first.cpuMs / bareRollups.cpuMs).toFixed(2)}x the bare read of the rollups, ${(first.cpuMs / bareRows.cpuMs).toFixed(2)}x the raw rows'); decisions ${JSON.stringify(Object.fromEntries(decisions))}`,
        );

        const second = await tick(new Date(now.getTime() + 60_000));
        const reused = second.value.filter((r) => r.unchanged).length;
        if (CLONE) {
          if (reused !== size) throw new Error(`cloned assessments: ${size - reused} of ${size} did not stand`);
          // A sample measured again (dry run) decides what the cloned assessment says.
          const sample = names.filter((_, i) => i % Math.max(1, Math.floor(size / 20)) === 0);
          const again = await runTick({ store, now: new Date(now.getTime() + 60_000), providerFor: () => benchDns, dryRun: true, domains: sample });
          const stood = new Map(second.value.map((r) => [r.domain, r.decision?.summary]));
          for (const r of again) if (r.decision?.summary !== stood.get(r.domain)) throw new Error(`cloned ${r.domain}: ${r.decision?.summary} != ${stood.get(r.domain)}`);
          console.log(`  (cloned store checked: every stored decision stood, and ${again.length} sampled domains measured again decide the same)`);
        }
        console.log(
          `  tick with nothing new: ${s2(second.ms)} wall, ${s2(second.cpuMs)} CPU in this process (${perThousand(second.cpuMs, size)}; ${((second.cpuMs / size) / (bareRollups.cpuMs / sampled.length)).toFixed(2)}x the bare read of the rollups); ${reused} of ${size} stored decisions stood; ${stall(second)}`,
        );

        // A late report (a fourth reporter, yesterday) for one domain in ten, through the real ingest.
        const late = names.filter((_, i) => i % 10 === 3);
        const arrived = new Date(now.getTime() + 120_000);
        const ingestLate = await timed(async () => {
          for (const domain of late) {
            const xml = aggregateReportXml({ reporter: 'late.example', domain, day: dayOf(1), rows: rowsFor(domain, 3, 1) });
            const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `bench:late/${domain}`, { rejectedDir: join(work, 'rejected'), now: () => arrived });
            if (result.status !== 'stored') throw new Error(`ingest: ${JSON.stringify(result)}`);
          }
        });
        const third = await tick(new Date(now.getTime() + 180_000));
        const measured = third.value.filter((r) => !r.unchanged).length;
        const perMeasured = (third.cpuMs - second.cpuMs * (reused > 0 ? (size - measured) / reused : 0)) / Math.max(1, measured);
        console.log(
          `  ${late.length} late reports (${late.length * 3} rows) ingested in ${s2(ingestLate.ms)}; the next tick: ${s2(third.ms)} wall, ${s2(third.cpuMs)} CPU, ${measured} domains measured again (about ${perMeasured.toFixed(1)} ms CPU each, against ${(first.cpuMs / size).toFixed(1)} ms in the first tick and ${(bareRollups.cpuMs / sampled.length).toFixed(1)} ms for a bare read of a domain's rollups); ${stall(third)}`,
        );

        // Retention: the raw rows past the look-back, pruned as ticks would (200,000 rows a call).
        const before = Math.floor(now.getTime() / 1000) - LOOKBACK_DAYS * 86_400;
        const pruned = await timed(async () => {
          let calls = 0;
          let total = 0;
          for (;;) {
            const r = await pruneRawRows(store.db, { before, maxRows: 200_000, now });
            calls++;
            total += r.rows;
            if (!r.more) return { calls, total };
          }
        });
        // Every domain measured again (a dry run never reuses) from what is left: the same decisions.
        const after = await timed(() => runTick({ store, now: new Date(now.getTime() + 240_000), providerFor: () => benchDns, dryRun: true, domains: sampled }));
        const thirdOf = new Map(third.value.map((r) => [r.domain, r.decision?.summary]));
        const same = after.value.every((r) => r.decision?.summary === thirdOf.get(r.domain));
        console.log(
          `  retention: ${pruned.value.total} raw rows older than the look-back pruned in ${pruned.value.calls} calls of at most 200,000 rows, ${s2(pruned.ms)} wall (${s2(pruned.cpuMs)} CPU); decisions after: ${same ? 'the same' : 'CHANGED'}`,
        );
        console.log(
          `  measuring every domain again from its rollups (a dry run, as every tick did before; no writes): ${s2(after.ms)} wall, ${s2(after.cpuMs)} CPU (${perThousand(after.cpuMs, sampled.length)}${sampled.length < size ? `, ${sampled.length} domains` : ''}; ${(after.cpuMs / bareRollups.cpuMs).toFixed(2)}x the bare read of the rollups); ${stall(after)}`,
        );
        if (!same) throw new Error('pruning raw rows changed a decision');

        if (!PAGE) continue;
        const ctx = { loadPlan };
        const page = await timed(() => fleetPage(store, now, ctx, { sort: 'authorised_fail_rate', order: 'desc', limit: 100 }));
        const pageQ = await timed(() => fleetPage(store, now, ctx, { q: 'd12', state: 'active', sort: 'spoofing_messages', order: 'desc', limit: 100, offset: 0 }));
        const remeasured = page.value.domains.filter((d) => d.assessed_at !== now.toISOString()).length;
        // Every domain changed since the tick: the page's first ones are measured again for the request, within its budgets.
        const later = new Date(now.getTime() + 60 * 60_000);
        await store.db.updateTable('domains').set({ updated_at: later.toISOString() }).execute();
        const stalePage = await timed(() => fleetPage(store, later, ctx, { limit: 100 }));
        console.log(`  fleet API page (100 of ${page.value.total}, sorted by fail rate): ${page.ms.toFixed(1)} ms, ${stall(page)} (${remeasured} measured again); filtered by name and state, sorted by spoofing: ${pageQ.ms.toFixed(1)} ms`);
        // The approvals queue looks for stale active domains across the whole fleet in one query (and measures one here).
        const approvals = await timed(() => fleetPage(store, later, ctx, { approvals: true, limit: 100, remeasure: 1 }));
        console.log(`  approvals queue over ${size} stale domains (one measured again): ${approvals.ms.toFixed(0)} ms; ${stall(approvals)}`);
        const staleMeasured = stalePage.value.domains.filter((d) => d.assessed_at === later.toISOString()).length;
        console.log(`  a page of 100 stale domains (${staleMeasured} measured again for the request, at most ${REMEASURE_PER_REQUEST} and ${REMEASURE_ENTRIES_PER_REQUEST} rollup entries; the rest left to the tick): ${stalePage.ms.toFixed(0)} ms, ${s2(stalePage.cpuMs)} CPU; ${stall(stalePage)}`);
        // The domains as the ticks measured them (a kept store is then a daemon's steady state, for bench/healthz.ts).
        await store.db.updateTable('domains').set({ updated_at: enrolled(HISTORY_DAYS) }).execute();
      } finally {
        await store.close();
        if (kind === 'sqlite' && KEEP === undefined) rmSync(join(work, `fleet-${size}-${HISTORY_DAYS}.sqlite`), { force: true });
      }
    }
   }
  }
} finally {
  await postgres?.stop();
  rmSync(work, { recursive: true, force: true });
}
