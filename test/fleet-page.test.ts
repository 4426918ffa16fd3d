/**
 * Stored assessments on SQLite and Postgres: the tick stores each domain's
 * figures and decision; the fleet listing reads them a page at a time,
 * filtered and sorted in SQL, and measures again only the domains whose
 * figures went stale (a report, a person's action since). The API serves
 * the page, and /healthz is answered while a slow page is still being built.
 * Real engine, real ingest, the in-memory zone. The listing's order for
 * every sort both ways, filtered and paged, equals a plain sort of the same
 * fleet (NULL figures, ties, domains never assessed), and on SQLite no
 * statement of an unfiltered page sorts in a temporary B-tree.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import type { DnsProvider } from '../src/dns/provider.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { approve } from '../src/fleet/actions.js';
import { FLEET_SORTS, fleetPage, REMEASURE_PER_REQUEST } from '../src/fleet/fleet-page.js';
import { domainOverview } from '../src/fleet/views.js';
import { loadPlan } from '../src/plans/index.js';
import type { Store } from '../src/store/open.js';
import { storeDialects } from './helpers/dialects.js';
import { domainRow } from './helpers/domain-rows.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { aggregateReportXml, cleanRow, spoofRow } from './helpers/reports.js';
import { formSignIn } from './helpers/web.js';
import { createWorld, type Delivery, type World } from './helpers/world.js';
import { renderFleetPage } from '../src/web/pages.js';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { FLEET_ROWS_TUNING, fleetRows, saveAssessment, type FleetRowsQuery, type FleetRowsTuning, type FleetSort } from '../src/store/assessments.js';
import { getDomain, insertDomain } from '../src/store/domains.js';
import type { Database } from '../src/store/schema.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const LATER = new Date('2026-06-15T13:00:00Z');

for (const dialect of storeDialects()) {
  describe(`the fleet listing on ${dialect.name}`, () => {
    let store: Store;
    let fleet: FleetFixture;
    let w: World<DnsProvider>;

    before(async () => {
      store = await dialect.open();
      fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
      // The fixture's world stands at NOW; the daemon ticks there.
      w = fleet.world;
      await w.tick();
    });
    after(async () => {
      await store?.close();
    });
    const ctx = () => ({ loadPlan: fleet.loadPlan });

    it('a tick stores every judged domain’s figures and decision, and the listing shows what a fresh measurement shows', async () => {
      const stored = await store.db.selectFrom('domain_assessments').selectAll().orderBy('domain').execute();
      assert.deepEqual(stored.map((a) => a.domain), [fleet.gated, fleet.paused, fleet.spoofed, fleet.steady]);
      for (const a of stored) {
        // The paused domain was last judged by the fixture's first tick, before it was paused; a tick leaves it alone since.
        assert.equal(a.assessed_at, a.domain === fleet.paused ? new Date(NOW.getTime() - 6 * 86_400_000).toISOString() : NOW.toISOString(), a.domain);
      }
      const page = await fleetPage(store, NOW, ctx(), { limit: null, remeasure: 0 });
      for (const listed of page.domains) {
        const live = await domainOverview(store, listed.domain, NOW, ctx());
        const { assessed_at: _listedAt, ...fromStore } = listed;
        const { assessed_at: _liveAt, ...measured } = live!;
        if (listed.domain === fleet.paused) continue; // judged before it was paused: measured again when a page shows it (below)
        assert.deepEqual(fromStore, measured, `${listed.domain}: the stored figures differ from a fresh measurement`);
      }
      const gated = page.domains.find((d) => d.domain === fleet.gated)!;
      assert.equal(gated.awaiting_approval, true);
      const spoofed = page.domains.find((d) => d.domain === fleet.spoofed)!;
      assert.equal(spoofed.spoofing_messages, 5 * 75);
    });

    it('pages, filters and sorts in SQL: totals, next offsets, figures-less domains last', async () => {
      const first = await fleetPage(store, NOW, ctx(), { remeasure: 0, sort: 'authorised_messages', order: 'desc', limit: 2 });
      assert.equal(first.total, 4);
      assert.equal(first.next_offset, 2);
      assert.deepEqual(first.domains.map((d) => d.domain), [fleet.gated, fleet.spoofed]);
      const rest = await fleetPage(store, NOW, ctx(), { remeasure: 0, sort: 'authorised_messages', order: 'desc', limit: 2, offset: 2 });
      assert.equal(rest.next_offset, null);
      assert.equal(rest.domains.length, 2);
      const byRate = await fleetPage(store, NOW, ctx(), { remeasure: 0, sort: 'authorised_fail_rate', order: 'asc', limit: null });
      assert.equal(byRate.domains.at(-1)!.authorised_fail_rate, null, 'a domain without authorised mail sorts last either way');
      const byRateDesc = await fleetPage(store, NOW, ctx(), { remeasure: 0, sort: 'authorised_fail_rate', order: 'desc', limit: null });
      assert.equal(byRateDesc.domains.at(-1)!.authorised_fail_rate, null);
      assert.deepEqual((await fleetPage(store, NOW, ctx(), { remeasure: 0, state: 'paused' })).domains.map((d) => d.domain), [fleet.paused]);
      assert.deepEqual((await fleetPage(store, NOW, ctx(), { remeasure: 0, q: 'SPOOF' })).domains.map((d) => d.domain), [fleet.spoofed]);
      assert.deepEqual((await fleetPage(store, NOW, ctx(), { remeasure: 0, q: '%' })).domains, [], 'LIKE wildcards in the search are literal');
      const all = await fleetPage(store, NOW, ctx(), { remeasure: 0, limit: null });
      const awaiting = (await fleetPage(store, NOW, ctx(), { remeasure: 0, awaitingApproval: true })).domains.map((d) => d.domain);
      assert.ok(awaiting.includes(fleet.gated));
      assert.deepEqual(awaiting, all.domains.filter((d) => d.awaiting_approval).map((d) => d.domain));
      const atNone = await fleetPage(store, NOW, ctx(), { remeasure: 0, stage: 'none:100', limit: null });
      assert.equal(atNone.total, 4);
      assert.equal((await fleetPage(store, NOW, ctx(), { remeasure: 0, stage: 'reject:100' })).total, 0);
    });

    it('lists under awaiting approval a domain that came to wait since the last tick: the stale ones at a stage before a gated one are measured first', async () => {
      const row = (await getDomain(store.db, fleet.gated))!;
      // Stored as a tick before it might have: holding, measured before the domain last changed.
      await saveAssessment(store.db, {
        domain: fleet.gated,
        plan: row.plan,
        stageIndex: row.stage_index,
        assessedAt: new Date(Date.parse(row.updated_at) - 60_000),
        lastReportId: 0,
        figures: { authorised_fail_rate: null, authorised_messages: 0, spoofing_messages: 0, blocking_sources: 0, decision_action: 'hold', decision_to: null, decision_summary: 'holding' },
      });
      const unmeasured = (await fleetPage(store, NOW, ctx(), { remeasure: 0, awaitingApproval: true })).domains.map((d) => d.domain);
      assert.ok(!unmeasured.includes(fleet.gated), 'nothing measured: the stored hold stands');
      const page = await fleetPage(store, NOW, ctx(), { awaitingApproval: true });
      assert.deepEqual(page.domains.map((d) => d.domain), [...unmeasured, fleet.gated].sort());
      assert.equal(page.domains.find((d) => d.domain === fleet.gated)!.assessed_at, NOW.toISOString(), 'measured for this request');
    });

    it('measures again only the domains whose figures went stale: a report stored since, a person’s approval since', async () => {
      const day = NOW.toISOString().slice(0, 10);
      const xml = aggregateReportXml({ reporter: 'yahoo.com', domain: fleet.spoofed, day, rows: [cleanRow(fleet.spoofed, '192.0.2.30', 10), spoofRow(fleet.spoofed, '203.0.113.67', 25)] });
      await w.moveTo(LATER);
      assert.equal((await w.send([{ at: LATER.getTime(), xml, source: 'late.xml' }]))[0]?.status, 'stored');
      await approve(store, fleet.gated, fleet.loadPlan, { actor: 'test:operator', now: LATER });
      const page = await fleetPage(store, LATER, ctx(), { limit: null });
      const at = Object.fromEntries(page.domains.map((d) => [d.domain, d.assessed_at]));
      assert.equal(at[fleet.spoofed], LATER.toISOString(), 'a new report: measured again');
      assert.equal(at[fleet.gated], LATER.toISOString(), 'approved since: measured again');
      assert.equal(at[fleet.steady], NOW.toISOString(), 'nothing new: the tick’s figures stand');
      assert.equal(at[fleet.paused], LATER.toISOString(), 'paused after it was last measured: measured again, now stored');
      assert.equal(page.domains.find((d) => d.domain === fleet.gated)!.approved_stage, 'quarantine:100');
      // Stored now: the next listing measures nothing.
      const again = await fleetPage(store, new Date(LATER.getTime() + 60_000), ctx(), { limit: null });
      assert.deepEqual(
        again.domains.map((d) => d.assessed_at),
        page.domains.map((d) => d.assessed_at),
      );
    });
  });
}

for (const dialect of storeDialects()) describe(`GET /api/v1/domains on a fleet whose reports came after the last tick, on ${dialect.name}`, () => {
  let store: Store;
  let server: RunningApiServer;
  const viewer = generateToken();
  const names = Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, '0')}.example`);

  before(async () => {
    const w = await createWorld({ dialect, start: new Date(NOW.getTime() - 3 * 86_400_000) });
    store = w.store;
    await w.enrol(names, { actor: 'test:setup' });
    // The first stage established (and every domain measured) before the reports below arrive: all of them stale now.
    await w.tick(w.later(60_000));
    const deliveries: Delivery[] = [];
    for (const d of [2, 1]) {
      const day = new Date(NOW.getTime() - d * 86_400_000).toISOString().slice(0, 10);
      for (const [i, name] of names.entries()) {
        const xml = aggregateReportXml({ reporter: 'google.com', domain: name, day, rows: [cleanRow(name, '192.0.2.10', 100 + i), spoofRow(name, '203.0.113.9', i)] });
        deliveries.push({ at: NOW.getTime(), xml, source: `${name}-${day}` });
      }
    }
    await w.send(deliveries);
    await w.moveTo(NOW);
    server = await startApiServer({
      config: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 64 * 1024, trust_proxy: false },
      tokens: new TokenSet([{ name: 'vera', role: 'viewer', sha256: viewer.sha256 }]),
      logger: pino({ level: 'silent' }),
      context: { store, now: () => NOW, loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) },
    });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });

  it('answers /healthz while a page is still being measured, then returns the page filtered and sorted as asked', async () => {
    let listDone = false;
    const list = fetch(`${server.url}/api/v1/domains?q=d3&order=desc&limit=5`, { headers: { authorization: `Bearer ${viewer.token}` } }).then(async (res) => {
      listDone = true;
      return { status: res.status, body: (await res.json()) as { domains: Array<{ domain: string; spoofing_messages: number }>; total: number; next_offset: number | null } };
    });
    // Sent after the list request: answered first only if measuring the page's domains yields to the event loop.
    await new Promise((r) => setTimeout(r, 5));
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(listDone, false, '/healthz waited for the fleet page');
    const { status, body } = await list;
    assert.equal(status, 200);
    assert.equal(body.total, 10);
    assert.equal(body.next_offset, 5);
    assert.deepEqual(body.domains.map((d) => d.domain), ['d39.example', 'd38.example', 'd37.example', 'd36.example', 'd35.example']);
    assert.deepEqual(body.domains.map((d) => d.spoofing_messages), [78, 76, 74, 72, 70], 'measured for this request: two days of reports');
    // A request measures at most REMEASURE_PER_REQUEST of the 35 still stale (the first measured its page's five): the rest keep the tick's figures and say when.
    const page = async () =>
      (await (await fetch(`${server.url}/api/v1/domains?sort=spoofing_messages&order=desc&limit=40`, { headers: { authorization: `Bearer ${viewer.token}` } })).json()) as {
        domains: Array<{ domain: string; spoofing_messages: number; assessed_at: string }>;
      };
    const partly = await page();
    assert.equal(partly.domains.filter((d) => d.assessed_at !== NOW.toISOString()).length, 35 - REMEASURE_PER_REQUEST, 'left stale, with their assessed_at');
    // The next request measures those; stored, sorting on the figures now orders the whole fleet by them.
    const all = await page();
    assert.deepEqual(all.domains.map((d) => d.domain), [...names].reverse());
    const bad = await fetch(`${server.url}/api/v1/domains?limit=5000`, { headers: { authorization: `Bearer ${viewer.token}` } });
    assert.equal(bad.status, 400);
  });

  it('the fleet page shows one page, filtered in SQL, with the whole fleet’s counts', async () => {
    const { session } = await formSignIn(server.url, viewer.token);
    const res = await fetch(`${server.url}/?q=d1`, { headers: { cookie: session! } });
    assert.equal(res.status, 200);
    const page = await res.text();
    const rows = [...page.matchAll(/<tr data-domain="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(rows, names.filter((n) => n.startsWith('d1')));
    assert.match(page, /<strong>40<\/strong>all/, 'the counts are over the whole fleet, not the page');
  });

  it('a page of a larger fleet links to the pages before and after it', () => {
    const html = renderFleetPage(
      { user: { name: 'vera', role: 'viewer' }, csrfToken: 'x' },
      { domains: [], filter: { q: 'shop' }, counts: { all: 1000, byState: { active: 1000 }, awaiting: 3 }, pager: { offset: 200, total: 1000, nextOffset: 400, prevOffset: 0 } },
    );
    assert.match(html, /rel="prev" href="\/\?q=shop"/);
    assert.match(html, /rel="next" href="\/\?q=shop&(amp;)?offset=400"/);
    assert.match(html, /<strong>3<\/strong><span class="badge badge-approval">/);
  });
});

/** One domain of the sorted-fleet suite: its row's sort columns and its stored figures (null: never assessed). */
interface Listed {
  domain: string;
  plan: string;
  stage_index: number;
  state: 'active' | 'paused' | 'halted' | 'completed';
  stage_since: string | null;
  figures: { authorised_fail_rate: number | null; authorised_messages: number; spoofing_messages: number; blocking_sources: number; decision_action: string } | null;
}

const FIGURES = ['authorised_fail_rate', 'authorised_messages', 'spoofing_messages', 'blocking_sources'] as const;

/** The listing's order by a plain sort: NULLs (and never-assessed domains) last either way, ties by name ascending (by name in the given direction when sorting by name). */
function sortedPlainly(fleet: readonly Listed[], sort: FleetSort, order: 'asc' | 'desc'): string[] {
  const sign = order === 'desc' ? -1 : 1;
  const cmp = (x: string | number, y: string | number) => (x < y ? -1 : x > y ? 1 : 0);
  const nullsLast = <T extends string | number>(x: T | null, y: T | null, dir: number) => {
    if (x === null || y === null) return (x === null ? 1 : 0) - (y === null ? 1 : 0);
    return dir * cmp(x, y);
  };
  return [...fleet]
    .sort((x, y) => {
      const byName = cmp(x.domain, y.domain);
      switch (sort) {
        case 'domain':
          return sign * byName;
        case 'state':
          return sign * cmp(x.state, y.state) || byName;
        case 'stage':
          return sign * (cmp(x.plan, y.plan) || x.stage_index - y.stage_index) || byName;
        case 'days_in_stage':
          // Longest in stage first when descending: the earliest stage_since.
          return nullsLast(x.stage_since, y.stage_since, -sign) || byName;
        default:
          return nullsLast(x.figures?.[sort] ?? null, y.figures?.[sort] ?? null, sign) || byName;
      }
    })
    .map((d) => d.domain);
}

/** The statements a listing ran on SQLite that sort rows in a temporary B-tree (EXPLAIN QUERY PLAN), with their plans. */
function sortsInTempTrees(path: string, statements: ReadonlyArray<{ sql: string; parameters: readonly unknown[] }>): string[] {
  const db = new SqliteDatabase(path, { readonly: true });
  try {
    return statements.flatMap((s) => {
      const plan = (db.prepare(`explain query plan ${s.sql}`).all(...(s.parameters as unknown[])) as Array<{ detail: string }>).map((r) => r.detail);
      return plan.some((d) => /TEMP B-TREE/.test(d)) ? [`${s.sql}\n  ${plan.join('\n  ')}`] : [];
    });
  } finally {
    db.close();
  }
}

for (const dialect of storeDialects()) describe(`the fleet listing's order on ${dialect.name}: every sort both ways equals a plain sort, NULLs and never-assessed domains last, ties by name`, () => {
  let store: Store;
  const fleet: Listed[] = [];
  const states = ['active', 'paused', 'halted', 'completed'] as const;
  // Small bounds, so a few dozen domains take every path a large fleet takes: counted and walked several names a statement,
  // a filter's few matches sorted at once, more walked through the index a few keys at a time.
  const small: FleetRowsTuning = { rangeNames: 7, collectUpTo: 5, walkChunk: 4 };

  const assess = async (d: Listed, i: number) => {
    d.figures = {
      // Ties on every figure; no fail rate (no authorised mail) for one in five.
      authorised_fail_rate: i % 5 === 2 ? null : (i % 4) / 8,
      authorised_messages: (i * 7) % 5,
      spoofing_messages: (i * 3) % 4,
      blocking_sources: i % 2,
      decision_action: i % 6 === 0 ? 'await-approval' : 'hold',
    };
    await saveAssessment(store.db, {
      domain: d.domain,
      plan: d.plan,
      stageIndex: d.stage_index,
      assessedAt: NOW,
      lastReportId: 0,
      figures: { ...d.figures, decision_to: null, decision_summary: 'test' },
    });
  };

  before(async () => {
    store = await dialect.open();
    for (let i = 0; i < 41; i++) {
      const d: Listed = {
        // Names not in the order they were enrolled in.
        domain: `${String.fromCharCode(97 + ((i * 11) % 26))}${i}.sort.example`,
        plan: i % 3 === 0 ? 'other' : 'default',
        stage_index: i % 4,
        state: states[i % 7 === 3 ? 2 : i % 5 === 1 ? 1 : i % 9 === 4 ? 3 : 0]!,
        // Never verified (no stage_since) for one in six; the rest on four days: ties.
        stage_since: i % 6 === 5 ? null : new Date(NOW.getTime() - (i % 4) * 86_400_000).toISOString(),
        figures: null,
      };
      fleet.push(d);
      await insertDomain(store.db, domainRow(d.domain, NOW, { plan: d.plan, stage_index: d.stage_index, state: d.state, stage_since: d.stage_since }));
      // One in eight never assessed.
      if (i % 8 !== 7) await assess(d, i);
    }
  });
  after(async () => {
    await store?.close();
  });

  const check = async (label: string) => {
    const filters: Array<{ name: string; query: Partial<FleetRowsQuery>; keep: (d: Listed) => boolean }> = [
      { name: 'no filter', query: {}, keep: () => true },
      { name: 'state=active (many)', query: { state: 'active' }, keep: (d) => d.state === 'active' },
      { name: 'q=1 (a few)', query: { q: '1' }, keep: (d) => d.domain.includes('1') },
      { name: 'plan=other, stage index 1 or 2', query: { stageIn: [{ plan: 'other', indices: [1, 2] }] }, keep: (d) => d.plan === 'other' && [1, 2].includes(d.stage_index) },
      {
        name: 'awaiting approval',
        query: { awaitingApproval: true },
        keep: (d) => d.state === 'active' && d.figures?.decision_action === 'await-approval',
      },
      {
        name: 'not awaiting approval',
        query: { awaitingApproval: false },
        keep: (d) => !(d.state === 'active' && d.figures?.decision_action === 'await-approval'),
      },
    ];
    for (const tuning of [FLEET_ROWS_TUNING, small]) {
      for (const sort of FLEET_SORTS) {
        for (const order of ['asc', 'desc'] as const) {
          for (const f of filters) {
            const expected = sortedPlainly(fleet.filter(f.keep), sort, order);
            const at = `${label}, ${f.name}, sort=${sort}&order=${order}, ${tuning === small ? 'small bounds' : 'default bounds'}`;
            const whole = await fleetRows(store.db, { ...f.query, sort, order, limit: 1000, offset: 0 }, tuning);
            assert.deepEqual(whole.rows.map((r) => r.row.domain), expected, at);
            assert.equal(whole.total, expected.length, at);
            // Page by page (pages of 6: some cross from the domains with the figure to those without), and the same total on each.
            const paged: string[] = [];
            for (let offset = 0; offset < expected.length + 6; offset += 6) {
              const page = await fleetRows(store.db, { ...f.query, sort, order, limit: 6, offset }, tuning);
              assert.equal(page.total, expected.length, `${at}, offset ${offset}`);
              paged.push(...page.rows.map((r) => r.row.domain));
            }
            assert.deepEqual(paged, expected, `${at}, paged`);
          }
        }
      }
    }
  };

  it('with domains never assessed among them', async () => {
    assert.ok(fleet.some((d) => d.figures === null) && fleet.some((d) => d.figures !== null && d.figures.authorised_fail_rate === null));
    await check('some never assessed');
  });

  it('once every domain is assessed (the domains without a figure read from its index)', async () => {
    for (const [i, d] of fleet.entries()) if (d.figures === null) await assess(d, i);
    await check('all assessed');
  });

  if (dialect.name === 'sqlite') {
    it('every statement of an unfiltered page is served by an index: nothing sorted in a temporary B-tree (SQLite EXPLAIN QUERY PLAN)', async () => {
      // A second handle on the same file that logs each statement it runs.
      const path = dialect.cliEnv(store).DMARC_ROLLOUT_DB!;
      const statements: Array<{ sql: string; parameters: readonly unknown[] }> = [];
      const logged = new Kysely<Database>({
        dialect: new SqliteDialect({ database: new SqliteDatabase(path) }),
        log: (event) => {
          if (event.level === 'query') statements.push({ sql: event.query.sql, parameters: event.query.parameters });
        },
      });
      try {
        // Pages into the NULLs, both while a domain is never assessed (walked by name) and once all are.
        const loner = 'zz-never-assessed.sort.example';
        await insertDomain(store.db, { ...(await getDomain(store.db, fleet[0]!.domain))!, domain: loner });
        for (const sort of FLEET_SORTS) {
          for (const order of ['asc', 'desc'] as const) {
            for (const offset of [0, 20, 40]) await fleetRows(logged, { sort, order, limit: 5, offset }, small);
          }
        }
        await store.db.deleteFrom('domains').where('domain', '=', loner).execute();
        for (const sort of FLEET_SORTS) for (const order of ['asc', 'desc'] as const) await fleetRows(logged, { sort, order, limit: 5, offset: 38 });
        assert.ok(statements.some((s) => /order by "spoofing_messages" desc, "domain"/.test(s.sql)), 'the figures were read in their order');
        assert.deepEqual(sortsInTempTrees(path, statements), []);
      } finally {
        await logged.destroy();
      }
    });
  }
});
