/**
 * The apply protocol and the tick, with faults, on a real store (SQLite,
 * then Postgres) and the in-memory zone: intent first, then the write, then
 * verification; only a verified change moves a stage; a crash resumes from
 * what the zone shows; drift, CNAMEs and duplicate records stop a domain;
 * operator actions go through the same path.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DnsProvider, RecordSetView } from '../src/dns/provider.js';
import { backoffMs } from '../src/engine/apply.js';
import { ActionError, approve, force, pause, resume, rollback } from '../src/fleet/actions.js';
import { loadPlan } from '../src/plans/index.js';
import { getIntent } from '../src/store/intents.js';
import type { Store } from '../src/store/open.js';
import type { AuditEvent } from '../src/store/schema.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { cleanRow, brokenRow, type GeneratedRow } from './helpers/reports.js';
import { createWorld, DAY_MS, type World } from './helpers/world.js';

const plan = loadPlan('default');
const ENROLLED = new Date('2026-03-01T09:00:00Z');
const T0 = new Date('2026-03-02T10:00:00Z');
const fqdn = (domain: string) => `_dmarc.${domain}`;
const plus = (at: Date, ms: number) => new Date(at.getTime() + ms);
const days = (first: string, n: number) => Array.from({ length: n }, (_, i) => new Date(Date.parse(`${first}T00:00:00Z`) + i * DAY_MS).toISOString().slice(0, 10));

/** `domains` enrolled on the default plan at ENROLLED, on a store of `dialect`. */
async function world(dialect: StoreDialect, domains: string[] = ['example.com']): Promise<World> {
  const w = await createWorld({ dialect, start: ENROLLED, plan });
  const res = await w.enrol(domains);
  assert.deepEqual(res.enrolled, domains);
  return w;
}

/** One isp.example report a day for `reportDays`, each arriving six hours after its day ends. */
const feed = (w: World, domain: string, reportDays: string[], rows: (domain: string) => GeneratedRow[] = (d) => [cleanRow(d, '192.0.2.10', 50)]) =>
  w.sendReports(reportDays.map((day) => ({ reporter: 'isp.example', domain, day, rows: rows(domain) })));

const engineActions = (events: AuditEvent[]) => events.filter((e) => e.actor === 'engine').map((e) => e.action);
const count = async (store: Store, table: 'audit_events' | 'stage_history') =>
  Number((await store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

/** Enrols, establishes p=none at T0, and sends the 14 clean days p=none needs; the next tick at READY advances. */
const READY = new Date('2026-03-17T10:00:00Z');
async function readyToAdvance(dialect: StoreDialect, domains: string[] = ['example.com']): Promise<World> {
  const w = await world(dialect, domains);
  for (const r of await w.tick(T0)) assert.equal(r.apply?.status, 'verified', JSON.stringify(r));
  for (const d of domains) await feed(w, d, days('2026-03-03', 14));
  return w;
}

for (const dialect of storeDialects()) {
  describe(`establishing the first stage on ${dialect.name}`, () => {
    it('edits the owner record to p=none, keeps its tags in order and the other TXT records, and records it all', async () => {
      const w = await world(dialect, ['example.com', 'bare.example']);
      const owner = 'v=DMARC1; rua=mailto:agg@example.com; p=none; pct=100; fo=1; ruf=mailto:f@example.com';
      w.dns.set(fqdn('example.com'), { txt: ['google-site-verification=abc', owner], ttl: 3600 });

      const results = await w.tick(T0);
      assert.deepEqual(results.map((r) => r.domain), ['bare.example', 'example.com']);
      const [b, a] = results;
      const expected = 'v=DMARC1; p=none; rua=mailto:agg@example.com; fo=1; ruf=mailto:f@example.com';
      assert.equal(a!.decision?.action, 'establish');
      assert.deepEqual(a!.apply, { status: 'verified', record: expected, toIndex: 0, windowStart: '2026-03-03T00:00:00.000Z' });
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['google-site-verification=abc', expected]);
      assert.deepEqual(b!.apply, { status: 'verified', record: 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example', toIndex: 0, windowStart: '2026-03-03T00:00:00.000Z' });
      assert.deepEqual(
        w.dns.writes.map((x) => [x.fqdn, x.ttl]),
        [
          ['_dmarc.bare.example', 300],
          ['_dmarc.example.com', 300],
        ],
      );

      const row = await w.row();
      assert.equal(row.stage_index, 0);
      assert.equal(row.state, 'active');
      assert.equal(row.stage_since, T0.toISOString());
      // Verified at 10:00, the owner's TTL was an hour: judged from the next midnight.
      assert.equal(row.window_start, '2026-03-03T00:00:00.000Z');
      assert.equal(row.last_record, expected);
      assert.equal(await getIntent(w.store.db, 'example.com'), undefined);

      const history = await w.history();
      assert.deepEqual(
        history.map((h) => [h.action, h.from_stage, h.to_stage, h.actor, h.record]),
        [
          ['enroll', null, 'none:100', 'test', null],
          ['establish', null, 'none:100', 'engine', expected],
        ],
      );
      const audit = await w.audit();
      assert.deepEqual(engineActions(audit), ['establish', 'verified']);
      const verified = JSON.parse(audit.at(-1)!.details!);
      assert.equal(verified.previous_record, owner);
      assert.equal(verified.previous_ttl, 3600);
      assert.equal(verified.record, expected);
    });

    // A two-hour TTL: in effect at 01:30, past the plan's 60-minute grace after midnight (within it, the window opens that midnight).
    it("waits out the owner's old TTL: verified at 23:30 under a two-hour TTL, judged from the midnight after next", async () => {
      const w = await world(dialect);
      w.dns.set(fqdn('example.com'), { txt: ['v=DMARC1; p=none; pct=100; rua=mailto:agg@example.com'], ttl: 7200 });
      const late = new Date('2026-03-02T23:30:00Z');
      const r = await w.tickOne(late);
      assert.equal(r.apply?.status, 'verified');
      const row = await w.row();
      assert.equal(row.stage_since, late.toISOString());
      assert.equal(row.window_start, '2026-03-04T00:00:00.000Z');
      assert.deepEqual(w.dns.writes, [{ fqdn: '_dmarc.example.com', records: ['v=DMARC1; p=none; rua=mailto:agg@example.com'], ttl: plan.record_ttl }]);
    });

    it('an owner record that already says exactly p=none is verified without a write', async () => {
      const w = await world(dialect);
      w.dns.set(fqdn('example.com'), { txt: ['v=DMARC1; p=none; rua=mailto:agg@example.com'], ttl: 3600 });
      const r = await w.tickOne(T0);
      assert.deepEqual(r.apply, { status: 'verified', record: 'v=DMARC1; p=none; rua=mailto:agg@example.com', toIndex: 0, windowStart: '2026-03-03T00:00:00.000Z' });
      assert.equal(w.dns.writes.length, 0);
    });
  });

  describe(`faults while applying on ${dialect.name}`, () => {
    it('a failing provider write moves nothing, backs off, audits once, and completes once the fault clears', async () => {
      const w = await world(dialect);
      w.dns.failWrites = new Error('provider says 503');

      const first = await w.tickOne(T0);
      assert.equal(first.apply?.status, 'retrying');
      const backoff1 = backoffMs(1, 'example.com');
      assert.deepEqual(first.apply, {
        status: 'retrying',
        reason: 'writing _dmarc.example.com through memory failed: provider says 503',
        nextAttemptAt: plus(T0, backoff1).toISOString(),
      });
      let row = await w.row();
      assert.equal(row.stage_since, null);
      assert.equal(row.window_start, null);
      assert.equal(row.last_record, null);
      let intent = await getIntent(w.store.db, 'example.com');
      assert.ok(intent);
      assert.equal(intent.status, 'pending');
      assert.equal(intent.record, 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example');
      assert.equal(intent.attempts, 1);
      assert.equal(intent.next_attempt_at, plus(T0, backoff1).toISOString());
      assert.match(intent.last_error ?? '', /503/);
      assert.ok(backoff1 >= 45_000 && backoff1 <= 75_000, `first backoff about a minute, got ${backoff1}`);

      // Before the backoff: not even tried.
      const early = await w.tickOne(plus(T0, 10_000));
      assert.equal(early.apply?.status, 'waiting');
      assert.equal((await getIntent(w.store.db, 'example.com'))!.attempts, 1);

      // After it, still failing: a second attempt, a longer backoff, no second audit line.
      const t2 = plus(T0, backoff1);
      const second = await w.tickOne(t2);
      assert.equal(second.apply?.status, 'retrying');
      intent = (await getIntent(w.store.db, 'example.com'))!;
      assert.equal(intent.attempts, 2);
      assert.equal(intent.next_attempt_at, plus(t2, backoffMs(2, 'example.com')).toISOString());
      assert.ok(backoffMs(2, 'example.com') > backoff1);
      assert.equal((await w.audit()).filter((e) => e.action === 'apply-retry').length, 1);
      assert.equal(w.dns.writes.length, 0);

      w.dns.failWrites = null;
      const t3 = plus(t2, backoffMs(2, 'example.com'));
      const third = await w.tickOne(t3);
      assert.equal(third.apply?.status, 'verified');
      row = await w.row();
      assert.equal(row.stage_since, t3.toISOString());
      assert.equal(row.last_record, 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example');
      assert.equal(await getIntent(w.store.db, 'example.com'), undefined);
      assert.equal(w.dns.writes.length, 1);
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example']);
      const audit = await w.audit();
      assert.equal(audit.filter((e) => e.action === 'apply-retry').length, 1);
      assert.equal(audit.filter((e) => e.action === 'verified').length, 1);
      assert.equal(JSON.parse(audit.at(-1)!.details!).attempts, 3);
    });

    it('a write verification never sees moves nothing and stays written; once visible it is verified without another write', async () => {
      const w = await world(dialect);
      w.dns.hideWrites = true;
      const first = await w.tickOne(T0);
      assert.equal(first.apply?.status, 'retrying');
      assert.match((first.apply as { reason: string }).reason, /does not show the new record yet/);
      assert.equal(w.dns.writes.length, 1);
      let intent = (await getIntent(w.store.db, 'example.com'))!;
      assert.equal(intent.status, 'written');
      assert.equal((await w.row()).stage_since, null);

      const t2 = plus(T0, backoffMs(1, 'example.com'));
      const second = await w.tickOne(t2);
      assert.equal(second.apply?.status, 'retrying');
      intent = (await getIntent(w.store.db, 'example.com'))!;
      assert.equal(intent.status, 'written');
      assert.equal(intent.attempts, 2);
      assert.equal((await w.row()).stage_since, null);
      assert.equal((await w.audit()).filter((e) => e.action === 'apply-retry').length, 1);

      // The name servers catch up.
      w.dns.hideWrites = false;
      w.dns.set(fqdn('example.com'), { txt: ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example'], ttl: 300 });
      const writes = w.dns.writes.length;
      const t3 = plus(t2, backoffMs(2, 'example.com'));
      const third = await w.tickOne(t3);
      assert.equal(third.apply?.status, 'verified');
      assert.equal(w.dns.writes.length, writes);
      assert.equal((await w.row()).stage_since, t3.toISOString());
    });

    it('a crash after the write, before verifying, is resumed by verifying without writing again', async () => {
      const w = await world(dialect);
      const crash = await w.tickOne(T0, {
        verifierFor: () => async () => {
          throw new Error('process killed');
        },
      });
      assert.equal(crash.apply?.status, 'retrying');
      assert.equal(w.dns.writes.length, 1);
      assert.equal((await getIntent(w.store.db, 'example.com'))!.status, 'written');
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example']);

      const t2 = plus(T0, backoffMs(1, 'example.com'));
      const resumed = await w.tickOne(t2);
      assert.equal(resumed.apply?.status, 'verified');
      assert.equal(w.dns.writes.length, 1, 'no second write');
      assert.equal((await w.row()).stage_since, t2.toISOString());
    });

    it('a crash after the provider accepted the write but before the intent said so is resumed without writing again', async () => {
      const w = await world(dialect);
      // The provider applies the change, then the process dies before recording `written`.
      const dying: DnsProvider = {
        name: 'memory',
        readTxt: (name) => w.dns.readTxt(name),
        inspect: (name): Promise<RecordSetView> => w.dns.inspect(name),
        async writeTxt(name, records, opts) {
          await w.dns.writeTxt(name, records, opts);
          throw new Error('connection reset after the change was applied');
        },
      };
      const crash = await w.tickOne(T0, { providerFor: () => dying });
      assert.equal(crash.apply?.status, 'retrying');
      assert.equal((await getIntent(w.store.db, 'example.com'))!.status, 'pending');
      assert.equal(w.dns.writes.length, 1);

      const t2 = plus(T0, backoffMs(1, 'example.com'));
      const resumed = await w.tickOne(t2);
      assert.equal(resumed.apply?.status, 'verified');
      assert.equal(w.dns.writes.length, 1, 'the zone already held it: no second write');
    });
  });

  describe(`what stops a domain instead of being overwritten on ${dialect.name}`, () => {
    it('a record changed by hand (drift) halts that domain without a write; the others go on', async () => {
      const w = await readyToAdvance(dialect, ['example.com', 'other.example']);
      const hand = 'v=DMARC1; p=none; rua=mailto:someone@else.example';
      w.dns.set(fqdn('example.com'), { txt: [hand], ttl: 300 });
      const writesBefore = w.dns.writes.length;

      const [a, b] = await w.tick(READY);
      assert.equal(a!.domain, 'example.com');
      // Caught before deciding: a domain whose live record is not ours is not judged at all.
      assert.equal(a!.decision, undefined);
      assert.match(a!.error ?? '', /^drift: _dmarc\.example\.com is "v=DMARC1; p=none; rua=mailto:someone@else\.example"/);
      const row = await w.row('example.com');
      assert.equal(row.state, 'halted');
      assert.match(row.state_reason ?? '', /drift/);
      assert.equal(row.stage_index, 0);
      assert.equal(await getIntent(w.store.db, 'example.com'), undefined);
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), [hand], 'left as the person wrote it');
      assert.equal((await w.audit('example.com')).at(-1)!.action, 'halt');

      assert.equal(b!.domain, 'other.example');
      assert.equal(b!.apply?.status, 'verified');
      assert.equal((await w.row('other.example')).stage_index, 1);
      assert.deepEqual(await w.dns.readTxt(fqdn('other.example')), ['v=DMARC1; p=quarantine; pct=1; t=y; rua=mailto:dmarc@reports.example']);
      assert.deepEqual(
        w.dns.writes.slice(writesBefore).map((x) => x.fqdn),
        ['_dmarc.other.example'],
      );

      // Halted: the next tick leaves it alone.
      await w.tick(plus(READY, 3_600_000));
      assert.equal((await w.row('example.com')).state, 'halted');
      assert.equal(w.dns.writes.length, writesBefore + 1);
    });

    it('a CNAME at _dmarc halts the domain and names the target', async () => {
      const w = await world(dialect);
      w.dns.set(fqdn('example.com'), { cname: 'example-com.hosted.ondmarc.com' });
      const r = await w.tickOne(T0);
      assert.equal(r.apply?.status, 'stopped');
      const row = await w.row();
      assert.equal(row.state, 'halted');
      assert.match(row.state_reason ?? '', /CNAME to example-com\.hosted\.ondmarc\.com/);
      assert.match(row.state_reason ?? '', /OnDMARC/);
      assert.equal(row.stage_since, null);
      assert.equal(w.dns.writes.length, 0);
      assert.equal(await getIntent(w.store.db, 'example.com'), undefined);
    });

    it('two v=DMARC1 records halt the domain', async () => {
      const w = await world(dialect);
      w.dns.set(fqdn('example.com'), { txt: ['v=DMARC1; p=none; rua=mailto:a@example.com', 'v=DMARC1; p=reject'] });
      const r = await w.tickOne(T0);
      assert.equal(r.apply?.status, 'stopped');
      const row = await w.row();
      assert.equal(row.state, 'halted');
      assert.match(row.state_reason ?? '', /2 v=DMARC1 records/);
      assert.equal(w.dns.writes.length, 0);
    });
  });

  describe(`idempotency on ${dialect.name}`, () => {
    it('a second tick at the same instant writes no audit, no DNS and no history', async () => {
      const w = await world(dialect, ['example.com', 'other.example']);
      await w.tick(T0);
      const t1 = new Date('2026-03-05T10:00:00Z');
      const first = await w.tick(t1);
      assert.deepEqual(first.map((r) => r.decision?.action), ['hold', 'hold']);
      const before = { audit: await count(w.store, 'audit_events'), history: await count(w.store, 'stage_history'), writes: w.dns.writes.length };
      const second = await w.tick(t1);
      assert.deepEqual(second.map((r) => r.decision?.action), ['hold', 'hold']);
      assert.deepEqual({ audit: await count(w.store, 'audit_events'), history: await count(w.store, 'stage_history'), writes: w.dns.writes.length }, before);
    });

    it('a tick during a backoff writes nothing', async () => {
      const w = await world(dialect);
      w.dns.failWrites = new Error('down');
      await w.tick(T0);
      const t1 = plus(T0, 1000);
      await w.tick(t1);
      const before = { audit: await count(w.store, 'audit_events'), intent: await getIntent(w.store.db, 'example.com') };
      await w.tick(t1);
      assert.deepEqual({ audit: await count(w.store, 'audit_events'), intent: await getIntent(w.store.db, 'example.com') }, before);
    });
  });

  describe(`the engine moves a stage on reports on ${dialect.name}`, () => {
    it('advances p=none after 14 clean days, and rolls quarantine:1 back when authorised mail breaks', async () => {
      const w = await readyToAdvance(dialect);
      const adv = await w.tickOne(READY);
      assert.equal(adv.decision?.action, 'advance');
      assert.deepEqual(adv.apply, { status: 'verified', record: 'v=DMARC1; p=quarantine; pct=1; t=y; rua=mailto:dmarc@reports.example', toIndex: 1, windowStart: '2026-03-18T00:00:00.000Z' });

      // Day one of quarantine:1: the authorised server's DKIM breaks for 30 of 100.
      await feed(w, 'example.com', ['2026-03-18'], (d) => [cleanRow(d, '192.0.2.10', 70), brokenRow(d, '192.0.2.10', 30)]);
      const back = await w.tickOne(new Date('2026-03-19T10:00:00Z'));
      assert.equal(back.decision?.action, 'rollback');
      assert.equal(back.apply?.status, 'verified');
      const row = await w.row();
      assert.equal(row.stage_index, 0);
      assert.equal(row.last_record, 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example');
      const last = (await w.history()).at(-1)!;
      assert.deepEqual([last.action, last.from_stage, last.to_stage, last.actor], ['rollback', 'quarantine:1', 'none:100', 'engine']);
    });
  });

  describe(`operator actions on ${dialect.name}`, () => {
    const alice = (now: Date) => ({ actor: 'cli:alice', now });

    it('force queues a move that the next tick writes and verifies', async () => {
      const w = await world(dialect);
      await w.tick(T0);
      await assert.rejects(force(w.store, 'example.com', loadPlan, alice(T0), { to: 'quarantine:25', reason: ' ' }), ActionError);
      await assert.rejects(force(w.store, 'example.com', loadPlan, alice(T0), { to: 'quarantine:30', reason: 'x' }), /not a stage of plan default/);
      const msg = await force(w.store, 'example.com', loadPlan, alice(plus(T0, 3_600_000)), { to: 'quarantine:25', reason: 'customer asked' });
      assert.match(msg, /queued/);
      const intent = (await getIntent(w.store.db, 'example.com'))!;
      assert.deepEqual([intent.action, intent.status, intent.to_index, intent.actor], ['force', 'requested', 4, 'cli:alice']);
      assert.equal(w.dns.writes.length, 1, 'queued, not written');

      const t = plus(T0, 2 * 3_600_000);
      const r = await w.tickOne(t);
      assert.equal(r.decision, undefined, 'an intent in flight is applied, not re-decided');
      assert.equal(r.apply?.status, 'verified');
      const row = await w.row();
      assert.equal(row.stage_index, 4);
      assert.equal(row.stage_since, t.toISOString());
      assert.equal(row.window_start, '2026-03-03T00:00:00.000Z');
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['v=DMARC1; p=quarantine; pct=25; t=y; rua=mailto:dmarc@reports.example']);
      const last = (await w.history()).at(-1)!;
      assert.deepEqual([last.action, last.from_stage, last.to_stage, last.actor, last.reason], ['force', 'none:100', 'quarantine:25', 'cli:alice', 'customer asked']);
    });

    it('rollback to a named earlier stage, or one stage back; never forwards', async () => {
      const w = await world(dialect);
      await w.tick(T0);
      await force(w.store, 'example.com', loadPlan, alice(T0), { to: 'quarantine:50', reason: 'test' });
      await w.tick(plus(T0, 60_000));
      assert.equal((await w.row()).stage_index, 5);

      await assert.rejects(rollback(w.store, 'example.com', loadPlan, alice(T0), { to: 'reject:1', reason: 'x' }), /not before the current stage/);
      await rollback(w.store, 'example.com', loadPlan, alice(plus(T0, 120_000)), { to: 'quarantine:5', reason: 'complaints' });
      const r = await w.tickOne(plus(T0, 180_000));
      assert.equal(r.apply?.status, 'verified');
      assert.equal((await w.row()).stage_index, 2);
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['v=DMARC1; p=quarantine; pct=5; t=y; rua=mailto:dmarc@reports.example']);
      const last = (await w.history()).at(-1)!;
      assert.deepEqual([last.action, last.from_stage, last.to_stage], ['rollback', 'quarantine:50', 'quarantine:5']);

      await rollback(w.store, 'example.com', loadPlan, alice(plus(T0, 240_000)), { reason: 'one back' });
      await w.tick(plus(T0, 300_000));
      assert.equal((await w.row()).stage_index, 1);
    });

    it('pause stops ticks from moving a domain that is ready; resume lets it go', async () => {
      const w = await readyToAdvance(dialect);
      await pause(w.store, 'example.com', alice(plus(READY, -3_600_000)), 'change freeze');
      const writes = w.dns.writes.length;
      const history = await count(w.store, 'stage_history');
      const paused = await w.tickOne(READY);
      assert.equal(paused.apply, undefined);
      assert.equal(w.dns.writes.length, writes);
      assert.equal(await count(w.store, 'stage_history'), history);
      assert.equal(await getIntent(w.store.db, 'example.com'), undefined);
      const row = await w.row();
      assert.equal(row.state, 'paused');
      assert.equal(row.stage_index, 0);

      await resume(w.store, 'example.com', alice(plus(READY, 60_000)), 'freeze over');
      const moved = await w.tickOne(plus(READY, 120_000));
      assert.equal(moved.decision?.action, 'advance');
      assert.equal(moved.apply?.status, 'verified');
      assert.equal((await w.row()).stage_index, 1);
    });

    it('approve lets the gated step (quarantine:100 -> reject:1) advance, and is used up by it', async () => {
      const w = await world(dialect);
      await w.tick(T0);
      await force(w.store, 'example.com', loadPlan, alice(T0), { to: 'quarantine:100', reason: 'skip ahead for the test' });
      await w.tick(plus(T0, 60_000));
      assert.equal((await w.row()).stage_index, 6);
      await feed(w, 'example.com', days('2026-03-03', 7));

      const t = new Date('2026-03-10T10:00:00Z');
      const waiting = await w.tickOne(t);
      assert.equal(waiting.decision?.action, 'await-approval');
      assert.equal(waiting.decision?.to, 'reject:1');
      assert.equal(waiting.apply, undefined);
      const writes = w.dns.writes.length;
      assert.equal((await w.tickOne(plus(t, 3_600_000))).decision?.action, 'await-approval');
      assert.equal(w.dns.writes.length, writes);

      await approve(w.store, 'example.com', loadPlan, { actor: 'cli:bob', now: plus(t, 2 * 3_600_000) }, 'change board said yes');
      assert.equal((await w.row()).approved_stage_index, 7);
      const moved = await w.tickOne(plus(t, 3 * 3_600_000));
      assert.equal(moved.decision?.action, 'advance');
      assert.equal(moved.apply?.status, 'verified');
      const row = await w.row();
      assert.equal(row.stage_index, 7);
      assert.equal(row.approved_stage_index, null, 'an approval is for one step');
      assert.deepEqual(await w.dns.readTxt(fqdn('example.com')), ['v=DMARC1; p=reject; pct=1; t=y; rua=mailto:dmarc@reports.example']);
    });
  });

  describe(`results handed over one at a time on ${dialect.name}`, () => {
    it('with onResult, each domain’s result is given as it is done, in order, and none is collected', async () => {
      const w = await world(dialect, ['a.example', 'b.example', 'c.example']);
      const given: string[] = [];
      const returned = await w.tick(T0, {
        onResult: async (r) => {
          // The next domain is not started before this one's result is taken: its record is not yet written.
          if (r.domain === 'a.example') assert.deepEqual(await w.dns.readTxt(fqdn('b.example')), []);
          given.push(`${r.domain} ${r.apply?.status}`);
        },
      });
      assert.deepEqual(given, ['a.example verified', 'b.example verified', 'c.example verified']);
      assert.deepEqual(returned, []);
    });
  });
}
