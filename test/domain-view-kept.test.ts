/**
 * The domain page and `GET /domains/{domain}` keep a domain's measurement
 * between requests (src/fleet/measured-cache.ts), so people refreshing the
 * page of a domain a big receiver reports in full do not each cost seconds of
 * CPU. What they are shown must be what measuring afresh would show at that
 * instant: after a report, a rule, a subdomain enrolled, a stage change, or
 * the clock passing the figures' stable span, the page measures again.
 * On SQLite and Postgres.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifySource } from '../src/fleet/actions.js';
import { MeasuredDomains } from '../src/fleet/measured-cache.js';
import { domainView, type DomainView, type ViewContext } from '../src/fleet/views.js';
import { loadPlan } from '../src/plans/index.js';
import { storeDialects } from './helpers/dialects.js';
import { broken, own, REPORTERS, reportXml, spoof, trafficFor } from './helpers/traffic.js';
import { createWorld, DAY_MS, HOUR_MS, type World } from './helpers/world.js';

const D = 'kept.example';
const SUB = `mail.${D}`;
const START = new Date('2026-05-01T00:00:00Z');

for (const dialect of storeDialects()) {
  describe(`the domain page's kept measurement, on ${dialect.name}`, () => {
    let world: World;
    let measured: MeasuredDomains;
    let ctx: ViewContext;
    /** The view measured afresh, with nothing kept. */
    const fresh = async (at: Date) => (await domainView(world.store, D, at, { loadPlan }))!;
    const viaKept = async (at: Date) => (await domainView(world.store, D, at, ctx))!;
    /** What a request cost: values measured and values answered from what was kept. */
    const cost = async (at: Date): Promise<{ view: DomainView; measured: number; kept: number }> => {
      const before = { ...measured.counts };
      const view = await viaKept(at);
      return { view, measured: measured.counts.measured - before.measured, kept: measured.counts.kept - before.kept };
    };

    before(async () => {
      world = await createWorld({ dialect, start: START });
      world.dns.set(`_dmarc.${D}`, { txt: [`v=DMARC1; p=none; rua=mailto:dmarc@${D}`] });
      await world.enrol([D]);
      await world.send(
        trafficFor(D, START, 12, REPORTERS, () => [own(D, '192.0.2.1', 900), own(SUB, '192.0.2.7', 300), broken(D, '198.51.100.4', 40), spoof(D, '203.0.113.9', 25)]),
      );
      await world.advanceDays(10);
      measured = new MeasuredDomains();
      ctx = { loadPlan, measured };
    });
    after(async () => {
      await world?.close();
    });

    it('a second request while the figures are stable is answered from the kept measurement, equal to measuring afresh', async () => {
      const t1 = world.now();
      const first = await cost(t1);
      assert.equal(first.measured, 2, 'the figures and the daily series measured');
      assert.deepEqual(first.view, await fresh(t1));
      const stableUntil = Date.parse(first.view.metrics!.stableUntil!);
      assert.ok(stableUntil > t1.getTime() + 60_000, `stable for more than a minute: until ${first.view.metrics!.stableUntil}`);
      for (const at of [new Date(t1.getTime() + 60_000), new Date(Math.floor((t1.getTime() + stableUntil) / 2)), new Date(stableUntil - 1)]) {
        const again = await cost(at);
        assert.deepEqual([again.measured, again.kept], [0, 2], `at ${at.toISOString()}: nothing measured`);
        assert.deepEqual(again.view, await fresh(at), `at ${at.toISOString()}`);
      }
    });

    it('past the stable span the clock moved the figures: measured again', async () => {
      const t = world.now();
      const stableUntil = Date.parse((await viaKept(t)).metrics!.stableUntil!);
      const past = new Date(stableUntil);
      const next = await cost(past);
      assert.ok(next.measured >= 1, 'measured again');
      assert.deepEqual(next.view, await fresh(past));
    });

    it('a report stored since is in the next answer', async () => {
      const at = world.now();
      const beforeReport = await viaKept(at);
      const day = Math.floor(at.getTime() / DAY_MS) - 1;
      const begin = (day * DAY_MS) / 1000;
      const result = await world.ingest(
        { bytes: Buffer.from(reportXml('late-receiver.example', `late-${day}`, D, begin, begin + 86_399, [spoof(D, '203.0.113.200', 777)])) },
        'late-receiver',
      );
      assert.equal(result.status, 'stored');
      const next = await cost(at);
      assert.ok(next.measured >= 1, 'measured again');
      assert.deepEqual(next.view, await fresh(at));
      assert.ok(next.view.reporters.some((r) => r.reporter === 'late-receiver.example') && !beforeReport.reporters.some((r) => r.reporter === 'late-receiver.example'));
    });

    it('a rule added since is in the next answer', async () => {
      const at = world.now();
      const beforeRule = await viaKept(at);
      const classOf = (v: DomainView) => v.sources.find((s) => s.ip === '198.51.100.4')?.class;
      assert.notEqual(classOf(beforeRule), 'authorised');
      await classifySource(world.store, D, '198.51.100.4', 'authorised', { actor: 'test:op', now: at });
      const next = await cost(at);
      assert.ok(next.measured >= 1, 'measured again');
      assert.deepEqual(next.view, await fresh(at));
      assert.equal(classOf(next.view), 'authorised');
    });

    it('a subdomain enrolled since takes its mail out of the figures in the next answer', async () => {
      const at = world.now();
      const beforeEnrol = await viaKept(at);
      world.dns.set(`_dmarc.${SUB}`, { txt: [`v=DMARC1; p=none; rua=mailto:dmarc@${D}`] });
      await world.enrol([SUB]);
      const next = await cost(world.now());
      assert.ok(next.measured >= 1, 'measured again');
      assert.deepEqual(next.view, await fresh(world.now()));
      assert.ok(beforeEnrol.metrics!.subdomains.messages > 0 && next.view.metrics!.subdomains.messages === 0, `subdomain mail ${beforeEnrol.metrics!.subdomains.messages} then ${next.view.metrics!.subdomains.messages}`);
    });

    it('requests for the same domain at once measure it once', async () => {
      const at = new Date(world.now().getTime() + HOUR_MS);
      const own = new MeasuredDomains();
      const views = await Promise.all([1, 2, 3, 4].map(() => domainView(world.store, D, at, { loadPlan, measured: own })));
      assert.equal(own.counts.measured, 2, 'the figures and the series, once each');
      assert.equal(own.counts.kept, 6);
      for (const v of views) assert.deepEqual(v, await fresh(at));
    });
  });
}

describe('what is kept is bounded', () => {
  const assessment = (sources: number, stableUntil: string) =>
    ({ metrics: { stableUntil, sources: Array.from({ length: sources }, () => ({})), reporters: [] } }) as never;
  const AT = new Date('2026-05-01T00:00:00Z');
  const UNTIL = '2026-05-02T00:00:00.000Z';

  it('at most `entries` values, the least recently used going first', async () => {
    const kept = new MeasuredDomains({ entries: 2, sources: 1_000 });
    for (const d of ['a', 'b']) await kept.assessment(d, 'k', AT, async () => assessment(1, UNTIL));
    await kept.assessment('a', 'k', AT, async () => assessment(1, UNTIL));
    await kept.assessment('c', 'k', AT, async () => assessment(1, UNTIL));
    assert.equal(kept.size, 2);
    const before = kept.counts.measured;
    await kept.assessment('a', 'k', AT, async () => assessment(1, UNTIL));
    assert.equal(kept.counts.measured, before, 'a, used last, is kept');
    await kept.assessment('b', 'k', AT, async () => assessment(1, UNTIL));
    assert.equal(kept.counts.measured, before + 1, 'b, used least recently, went');
  });

  it('at most `sources` sources in all; a value bigger than that is not kept', async () => {
    const kept = new MeasuredDomains({ entries: 10, sources: 100 });
    await kept.assessment('big', 'k', AT, async () => assessment(150, UNTIL));
    assert.equal(kept.size, 0);
    await kept.assessment('a', 'k', AT, async () => assessment(60, UNTIL));
    await kept.assessment('b', 'k', AT, async () => assessment(30, UNTIL));
    assert.equal(kept.size, 2);
    await kept.assessment('c', 'k', AT, async () => assessment(30, UNTIL));
    assert.equal(kept.size, 2, 'a went to make room');
  });

  it('a measurement that failed is not kept, and a request waiting on it measures for itself', async () => {
    const kept = new MeasuredDomains();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const failing = kept.assessment('a', 'k', AT, async () => {
      await gate;
      throw new Error('store gone');
    });
    const waiting = kept.assessment('a', 'k', AT, async () => assessment(1, UNTIL));
    release();
    await assert.rejects(failing, /store gone/);
    assert.equal(((await waiting) as { metrics: { stableUntil: string } }).metrics.stableUntil, UNTIL);
    assert.equal(kept.counts.measured, 2);
  });
});
