/**
 * Measuring a domain with very many rollup entries (a 400 MB report gives
 * one domain 100,000 in a day) without holding the event loop, on SQLite and
 * Postgres: its rollups are read a page at a time (each SQLite page a seek
 * in an index, never a scan or a sort) and exactly equal one whole read; the
 * engine measures them in steps to the same figures as from one whole read;
 * and setImmediate callbacks run meanwhile, at least one per page read and
 * per thousand rows the engine walks (counted, not timed). The engine's
 * stepped sort keeps Array#sort's order, ties included. A stale fleet page
 * measures the domains that fit its budget of work (rollup entries), shows
 * the rest as the tick stored them (their assessed_at says when), and the
 * tick measures them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import fc from 'fast-check';
import { Kysely, SqliteDialect, type CompiledQuery } from 'kysely';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { assessDomain, rollupRange, runTick } from '../src/engine/tick.js';
import { fleetPage, REMEASURE_ENTRIES_PER_REQUEST } from '../src/fleet/fleet-page.js';
import { runInTurns, runSteps, sortInSteps, STEP_ROWS } from '../src/engine/steps.js';
import { loadPlan } from '../src/plans/index.js';
import { getDomain } from '../src/store/domains.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { countRollupEntries, loadRollupRows } from '../src/store/rollups.js';
import type { Database } from '../src/store/schema.js';
import type { ObservedRow } from '../src/engine/types.js';
import { tempStore } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';
import { LARGE_DOMAIN_RECORD, writeLargeDomain, type LargeDomain } from './helpers/large-domain.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const D = 'big.example';
const ENTRIES = 3_000;
/** Small pages, so the fixture's few thousand entries take dozens (the daemon reads 1,000 a page). */
const PAGE = 97;
const nowSeconds = NOW.getTime() / 1000;
const RANGE = { fromEpoch: nowSeconds - 40 * 86_400, toEpoch: nowSeconds + 86_400 };

/** A rollup entry as the engine reads it, or as the table holds it, in one comparable form. */
const fromObserved = (r: ObservedRow) =>
  JSON.stringify([r.policyDomain, r.reporter, r.begin, r.end, r.sourceIp, r.headerFrom, r.count, r.dkim, r.spf, r.adkim, r.aspf, (r.reasons ?? []).map((x) => [x.type, x.comment]), r.authDkim.map((x) => [x.domain, x.selector, x.result]), r.authSpf.map((x) => [x.domain, x.result])]);

/** Counts setImmediate callbacks that run until stop() (a turn of the event loop each). */
function turnCounter(): { stop(): number } {
  let turns = 0;
  let running = true;
  const turn = () => {
    if (!running) return;
    turns += 1;
    setImmediate(turn);
  };
  setImmediate(turn);
  return {
    stop: () => {
      running = false;
      return turns;
    },
  };
}

for (const dialect of storeDialects()) {
  describe(`a domain with ${ENTRIES.toLocaleString('en')} rollup entries, on ${dialect.name}`, () => {
    let store: Store;
    let big: LargeDomain;

    before(async () => {
      store = await dialect.open();
      big = await writeLargeDomain(store, { domain: D, now: NOW, entries: ENTRIES });
    });
    after(async () => {
      await store?.close();
    });

    it('is read a page at a time to exactly the rollups one whole read returns', async () => {
      // One statement each for the two reads, as the engine read them before (its filters, no paging).
      const firstDay = Math.floor(RANGE.fromEpoch / 86_400) - 31;
      const lastDay = Math.floor(RANGE.toEpoch / 86_400);
      const whole = store.db
        .selectFrom('daily_rollups')
        .selectAll()
        .where('day', '>=', firstDay)
        .where('day', '<=', lastDay)
        .where('end', '>=', RANGE.fromEpoch)
        .where('begin', '<=', RANGE.toEpoch);
      const entries = [...(await whole.where('domain', '=', D).execute()), ...(await whole.where('header_from', '=', D).where('domain', '!=', D).execute())];
      const expected = entries
        .map((e) =>
          JSON.stringify([e.domain, e.reporter, Number(e.begin), Number(e.end), e.source_ip, e.header_from, Number(e.messages), e.dkim, e.spf, e.adkim, e.aspf, JSON.parse(e.reasons), JSON.parse(e.auth_dkim), JSON.parse(e.auth_spf)]),
        )
        .sort();
      const paged = await loadRollupRows(store.db, D, RANGE, { pageSize: PAGE });
      assert.ok(paged.length > 20 * PAGE, `${paged.length} entries: many pages`);
      assert.ok(paged.some((r) => r.policyDomain !== D), 'the second read (the domain under another record) is in the fixture');
      assert.deepEqual(paged.map(fromObserved).sort(), expected);
    });

    it('is measured in steps to the same figures as from one whole read, the event loop turning at every page and step', async () => {
      const row = (await getDomain(store.db, D))!;
      const plan = loadPlan('default');
      const once = await assessDomain(store, row, plan, NOW, { rollupPageSize: 1_000_000_000 });
      const counter = turnCounter();
      const paged = await assessDomain(store, row, plan, NOW, { rollupPageSize: PAGE });
      const turns = counter.stop();
      assert.ok(once.metrics.sources.length > 2 * STEP_ROWS, 'the engine has thousands of sources to class and sort');
      assert.ok(once.metrics.spoofing.messages > 0 && once.metrics.authorised.messages > 0);
      assert.deepEqual(paged.metrics, once.metrics);
      assert.deepEqual(paged.snapshot, once.snapshot);
      // A page is a turn; so is every STEP_ROWS rows of each of the engine's passes (at least three over every row).
      const pages = Math.floor(big.entries / PAGE);
      const steps = 3 * Math.floor(big.entries / STEP_ROWS);
      assert.ok(turns >= pages + steps, `${turns} turns of the event loop while measuring, expected at least ${pages} pages + ${steps} steps`);
    });
  });
}

describe('the pages of a large domain’s read on SQLite', () => {
  it('are each a seek in an index of daily_rollups, never a scan or a temporary sort', async () => {
    const file = tempStore().db;
    const store = await openSqliteStore(file);
    await writeLargeDomain(store, { domain: D, now: NOW, entries: 1_500 });
    await store.close();
    // The same file through a kysely that records every statement it runs.
    const statements: CompiledQuery[] = [];
    const sqlite = new SqliteDatabase(file);
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }), log: (event) => void statements.push(event.query) });
    try {
      const rows = await loadRollupRows(db, D, RANGE, { pageSize: PAGE });
      assert.ok(statements.length >= rows.length / PAGE, `${statements.length} statements for ${rows.length} entries`);
      const shapes = new Set<string>();
      for (const q of statements) {
        const plan = sqlite
          .prepare(`explain query plan ${q.sql}`)
          .all(...(q.parameters as unknown[]))
          .map((r) => (r as { detail: string }).detail);
        assert.equal(plan.length, 1, `${q.sql}: ${plan.join('; ')}`);
        assert.match(plan[0]!, /^SEARCH daily_rollups USING INDEX daily_rollups_(domain|header_from)_day \((domain|header_from)=\? AND day(=\? AND rowid>\?|>\? AND day<\?)\)$/, q.sql);
        shapes.add(plan[0]!);
      }
      assert.equal(shapes.size, 4, `both reads, both shapes of page: ${[...shapes].join('; ')}`);
    } finally {
      await db.destroy();
    }
  });
});

describe('sortInSteps', () => {
  it('sorts as Array#sort does, equal items in their order, pausing along the way', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 0, maxLength: 4 * STEP_ROWS + 7, size: "max" }), (values) => {
        const items = values.map((v, i) => ({ v, i }));
        const expected = [...items].sort((a, b) => a.v - b.v);
        let pauses = 0;
        const steps = sortInSteps(items, (a, b) => a.v - b.v);
        for (let step = steps.next(); !step.done; step = steps.next()) pauses += 1;
        assert.deepEqual(items, expected);
        if (values.length > STEP_ROWS) assert.ok(pauses >= Math.floor(values.length / STEP_ROWS));
      }),
      { numRuns: 60 },
    );
    assert.deepEqual(runSteps(sortInSteps([3, 1, 2], (a, b) => a - b)), [1, 2, 3]);
  });

  it('given turns, lets setImmediate callbacks run between its steps', async () => {
    const items = Array.from({ length: 5 * STEP_ROWS }, (_, i) => (i * 7919) % 5003);
    const counter = turnCounter();
    await runInTurns(sortInSteps(items, (a, b) => a - b));
    const turns = counter.stop();
    assert.deepEqual(items, [...items].sort((a, b) => a - b));
    assert.ok(turns >= 5, `${turns} turns`);
  });
});

for (const dialect of storeDialects()) {
  describe(`a stale fleet page over its budget of work, on ${dialect.name}`, () => {
    let store: Store;
    const dns = new MemoryDns();
    const names = [D, 's0.example', 's1.example', 's2.example'];
    const TICKED = new Date(NOW.getTime() - 2 * 3_600_000);

    before(async () => {
      store = await dialect.open();
      for (const name of names) {
        // The large domain more than a request's whole default budget.
        await writeLargeDomain(store, { domain: name, now: NOW, entries: name === D ? REMEASURE_ENTRIES_PER_REQUEST + 1_000 : 5 });
        dns.set(`_dmarc.${name}`, { txt: [LARGE_DOMAIN_RECORD], ttl: 3600 });
      }
      await runTick({ store, now: TICKED, providerFor: () => dns });
      // A person acted on every domain since the tick: every stored assessment is stale.
      await store.db.updateTable('domains').set({ updated_at: new Date(NOW.getTime() - 3_600_000).toISOString() }).execute();
    });
    after(async () => {
      await store?.close();
    });

    const stored = async () => Object.fromEntries((await store.db.selectFrom('domain_assessments').select(['domain', 'assessed_at']).execute()).map((a) => [a.domain, a.assessed_at]));

    it('answers with the domains past its budget of work as stored (their assessed_at), and the tick measures them', async () => {
      assert.deepEqual(await stored(), Object.fromEntries(names.map((n) => [n, TICKED.toISOString()])), 'the tick measured every domain');
      const sizes = await Promise.all(names.map((n) => countRollupEntries(store.db, n, rollupRange({ window_start: null }, NOW), 1_000_000)));
      const small = sizes[1]!;
      assert.ok(sizes[0]! > 10 * small && sizes.slice(1).every((n) => n === small), `entries: ${sizes.join(', ')}`);
      assert.equal(await countRollupEntries(store.db, D, rollupRange({ window_start: null }, NOW), 99), 100, 'counted no further than asked');
      // A budget for two of the small domains: the large one (first by name) does not fit and is not measured;
      // s0 and s1 are, s2 is past the budget. The page answers with the stored figures for those two.
      const page = await fleetPage(store, NOW, { loadPlan }, { limit: null, remeasureEntries: 2 * small + small - 1 });
      const expected = { [D]: TICKED.toISOString(), 's0.example': NOW.toISOString(), 's1.example': NOW.toISOString(), 's2.example': TICKED.toISOString() };
      assert.deepEqual(Object.fromEntries(page.domains.map((d) => [d.domain, d.assessed_at])), expected);
      // Those shown as stored say their figures are stale.
      assert.deepEqual(Object.fromEntries(page.domains.map((d) => [d.domain, d.figures_stale])), { [D]: true, 's0.example': false, 's1.example': false, 's2.example': true });
      assert.ok(page.domains.every((d) => d.next_decision !== null), 'with the figures and decision measured or stored');
      assert.deepEqual(await stored(), expected);
      // The tick catches up; the page then shows what it measured.
      await runTick({ store, now: NOW, providerFor: () => dns });
      const after = await fleetPage(store, NOW, { loadPlan }, { limit: null, remeasure: 0 });
      assert.deepEqual(
        after.domains.map((d) => [d.domain, d.assessed_at, d.figures_stale]),
        names.map((n) => [n, NOW.toISOString(), false]),
      );
    });

    it('measures what its default budget allows: every small stale domain, not the large one, which takes a place', async () => {
      await store.db.updateTable('domains').set({ updated_at: new Date(NOW.getTime() + 60_000).toISOString() }).execute();
      const later = new Date(NOW.getTime() + 120_000);
      const page = await fleetPage(store, later, { loadPlan }, { limit: null });
      assert.deepEqual(
        page.domains.map((d) => [d.domain, d.assessed_at]),
        names.map((n) => [n, n === D ? NOW.toISOString() : later.toISOString()]),
      );
      // A domain passed over takes one of the request's places (so a request never counts its way through the fleet).
      await store.db.updateTable('domains').set({ updated_at: new Date(later.getTime() + 60_000).toISOString() }).execute();
      const last = new Date(later.getTime() + 120_000);
      const two = await fleetPage(store, last, { loadPlan }, { limit: null, remeasure: 2 });
      assert.deepEqual(
        two.domains.map((d) => [d.domain, d.assessed_at]),
        [
          [D, NOW.toISOString()],
          ['s0.example', last.toISOString()],
          ['s1.example', later.toISOString()],
          ['s2.example', later.toISOString()],
        ],
      );
    });
  });
}
