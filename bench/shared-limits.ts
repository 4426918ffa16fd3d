/**
 * What counting the limits in the store costs (src/store/counters.ts): one
 * take (a sign-in attempt, an SMTP MAIL FROM, a report's records) on SQLite
 * and on Postgres, printed against the per-process count it replaced (a Map
 * of timestamps, as the sign-in limiter kept) and against a bare
 * `select 1` on the same store in the same run. Subjects rotate over 1,000
 * client addresses, the store holding their slices as it would in use. On
 * Postgres also the reporter budget in ingest: small reports (three
 * reporters) ingested with no budget, the per-process budget and the
 * store's, interleaved twice, per report.
 *
 * Run: node --import tsx bench/shared-limits.ts  (env: BENCH_TAKES=5000 BENCH_REPORTS=400 BENCH_STORES=sqlite,postgres)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { ingestInput } from '../src/reports/index.js';
import { ReporterBudget } from '../src/reports/budget.js';
import { takeFromLimit, type SharedLimit } from '../src/store/counters.js';
import { aggregateReportXml, cleanRow } from '../test/helpers/reports.js';
import { openStore, type Store } from '../src/store/open.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';

const TAKES = Number(process.env.BENCH_TAKES ?? 5000);
const REPORTS = Number(process.env.BENCH_REPORTS ?? 400);
const STORES = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',') as Array<'sqlite' | 'postgres'>;
const limit: SharedLimit = { name: 'bench', limit: 1_000_000, windowMs: 3_600_000 };
const subject = (i: number) => `192.0.2.${i % 250}.${Math.floor(i / 250) % 4}`;

async function timed(label: string, n: number, run: (i: number) => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(200, n); i++) await run(i);
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await run(i);
  const us = Number(process.hrtime.bigint() - started) / 1e3 / n;
  console.log(`  ${label.padEnd(40)} ${us.toFixed(1).padStart(8)} µs/op`);
  return us;
}

/** The per-process count the store replaced: timestamps per client, filtered to the window. */
function memoryTake(): (i: number) => void {
  const clients = new Map<string, number[]>();
  return (i) => {
    const now = Date.now();
    const key = subject(i);
    const times = (clients.get(key) ?? []).filter((t) => t > now - limit.windowMs);
    times.push(now);
    clients.set(key, times);
  };
}

console.log(`shared limits: ${TAKES} takes over 1,000 subjects`);
const memory = await timed('in-process Map (before)', TAKES, memoryTake());
let postgres: PostgresServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'bench-limits-'));
try {
  for (const kind of STORES) {
    let store: Store;
    let database = '';
    if (kind === 'sqlite') store = await openStore({ kind, path: join(dir, 'store.sqlite') });
    else {
      postgres ??= await startPostgres();
      database = await postgres.createDatabase('limits');
      store = await openStore({ kind, connection: postgres.connection(database) });
    }
    console.log(`${kind}:`);
    const bare = await timed('select 1 (bare round trip)', TAKES, () => sql`select 1`.execute(store.db));
    const take = await timed('takeFromLimit (one attempt)', TAKES, (i) => takeFromLimit(store.db, limit, subject(i), 1, new Date()));
    console.log(`  take = ${(take / bare).toFixed(1)}x a bare round trip, ${(take / memory).toFixed(0)}x the in-process Map (+${((take - memory) / 1000).toFixed(2)} ms per take)`);
    if (kind === 'postgres') {
      // The daemon's arrangement: the budget on a pool of its own.
      const side = await openStore({ kind, connection: { ...postgres!.connection(database), poolSize: 2 } });
      const per: Record<string, number[]> = { none: [], process: [], store: [] };
      let n = 0;
      for (let round = 0; round < 2; round++) {
        for (const mode of ['none', 'process', 'store'] as const) {
          const budget = mode === 'none' ? undefined : new ReporterBudget(1e9, Date.now, mode === 'store' ? side.db : undefined);
          const started = process.hrtime.bigint();
          for (let i = 0; i < REPORTS; i++, n++) {
            const domain = `d${n}.example`;
            const xml = aggregateReportXml({ reporter: `r${i % 3}.example`, domain, day: '2026-06-10', rows: [cleanRow(domain, '192.0.2.1', 3), cleanRow(domain, '192.0.2.2', 4)] });
            await ingestInput(store.db, { bytes: Buffer.from(xml), ...(budget ? { budget } : {}) }, `bench-${n}`, { rejectedDir: join(dir, 'rejected') });
          }
          per[mode]!.push(Number(process.hrtime.bigint() - started) / 1e6 / REPORTS);
        }
      }
      const best = (mode: string) => Math.min(...per[mode]!);
      for (const mode of ['none', 'process', 'store']) console.log(`  ingest, budget ${mode.padEnd(8)} ${per[mode]!.map((ms) => ms.toFixed(2)).join(' / ')} ms/report`);
      console.log(`  store budget = ${(best('store') / best('process')).toFixed(2)}x the per-process one (best runs), +${(best('store') - best('process')).toFixed(2)} ms per report`);
      await side.close();
    }
    await store.close();
  }
} finally {
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
}
