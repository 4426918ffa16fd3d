/**
 * The daemon's Prometheus metrics, as a scrape shows them: in the test world
 * on SQLite and on Postgres, with real ingests, real ticks against the
 * in-memory zone and real operator actions, asserting the exposition lines
 * an operator's dashboards and alerts match on.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createDaemonMetrics, tallyOf, withProviders, type DaemonMetrics } from '../src/daemon/metrics.js';
import type { DomainTickResult } from '../src/engine/tick.js';
import { force, pause } from '../src/fleet/actions.js';
import { loadPlan, type Plan } from '../src/plans/index.js';
import type { RawInput } from '../src/reports/index.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';
import { createWorld, type World } from './helpers/world.js';

const ENROLLED = new Date('2026-03-01T09:00:00Z');
const T0 = new Date('2026-03-02T10:00:00Z');
const plus = (at: Date, ms: number) => new Date(at.getTime() + ms);

interface MetricsWorld extends Omit<World, 'tick'> {
  metrics: DaemonMetrics;
  /** A tick as the daemon runs it: run, then record each result's tally with its provider. */
  tick(now: Date): Promise<DomainTickResult[]>;
  scrape(metrics?: DaemonMetrics): Promise<string[]>;
}

async function world(dialect: StoreDialect, domains: string[], opts: { loadPlan?: (name: string) => Plan } = {}): Promise<MetricsWorld> {
  const w = await createWorld({ dialect, start: ENROLLED });
  if (domains.length > 0) {
    const res = await w.enrol(domains);
    assert.deepEqual(res.enrolled, domains);
  }
  const metrics = createDaemonMetrics({ store: w.store, ...opts });
  const tick = w.tick;
  return Object.assign(w, {
    metrics,
    async tick(now: Date) {
      const results = await tick(now);
      metrics.recordTick(await withProviders(w.store.db, results.map(tallyOf)), 0.2);
      return results;
    },
    async scrape(m = metrics) {
      return (await m.render()).body.split('\n');
    },
  });
}

/** Asserts exact exposition lines are present, showing the metric's actual lines when one is not. */
function has(lines: string[], ...expected: string[]): void {
  for (const line of expected) {
    const name = line.split(/[{ ]/)[0]!;
    assert.ok(lines.includes(line), `missing ${line}\nactual:\n${lines.filter((l) => l.split(/[{ ]/)[0] === name).join('\n')}`);
  }
}
/** The sample lines of one metric (no HELP/TYPE). */
const samples = (lines: string[], name: string) => lines.filter((l) => l.split(/[{ ]/)[0] === name);

for (const dialect of storeDialects()) {
  describe(`domains by stage and state on ${dialect.name}`, () => {
    it('counts enrolled domains per stage and state, and every state always, from the store at scrape time', async () => {
      const w = await world(dialect, ['a.example', 'b.example', 'c.example']);
      let lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_domains'), ['dmarc_rollout_domains{stage="none:100",state="active"} 3']);
      has(
        lines,
        'dmarc_rollout_domains_by_state{state="active"} 3',
        'dmarc_rollout_domains_by_state{state="paused"} 0',
        'dmarc_rollout_domains_by_state{state="halted"} 0',
        'dmarc_rollout_domains_by_state{state="completed"} 0',
      );

      await pause(w.store, 'b.example', { actor: 'cli:alice', now: T0 }, 'migrating mail servers');
      lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_domains').sort(), [
        'dmarc_rollout_domains{stage="none:100",state="active"} 2',
        'dmarc_rollout_domains{stage="none:100",state="paused"} 1',
      ]);
      has(lines, 'dmarc_rollout_domains_by_state{state="active"} 2', 'dmarc_rollout_domains_by_state{state="paused"} 1');
    });

    it('shows a domain the engine halted (its record edited by hand) under state="halted"', async () => {
      const w = await world(dialect, ['a.example', 'b.example']);
      for (const r of await w.tick(T0)) assert.equal(r.apply?.status, 'verified', JSON.stringify(r));
      w.dns.set('_dmarc.a.example', { txt: ['v=DMARC1; p=reject'] });
      const [a] = await w.tick(plus(T0, 3_600_000));
      assert.match(a!.error ?? '', /^drift: /, JSON.stringify(a));

      const lines = await w.scrape();
      has(lines, 'dmarc_rollout_domains_by_state{state="halted"} 1', 'dmarc_rollout_domains_by_state{state="active"} 1');
      assert.deepEqual(samples(lines, 'dmarc_rollout_domains').sort(), [
        'dmarc_rollout_domains{stage="none:100",state="active"} 1',
        'dmarc_rollout_domains{stage="none:100",state="halted"} 1',
      ]);
    });

    it('follows the stage a verified change moved a domain to, and drops the stage it left', async () => {
      const w = await world(dialect, ['a.example', 'b.example']);
      await w.tick(T0);
      await force(w.store, 'a.example', loadPlan, { actor: 'cli:alice', now: T0 }, { to: 'quarantine:25', reason: 'customer asked' });
      has(await w.scrape(), 'dmarc_rollout_changes_in_flight 1');
      const [a] = await w.tick(plus(T0, 60_000));
      assert.equal(a!.apply?.status, 'verified', JSON.stringify(a));

      const lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_domains').sort(), [
        'dmarc_rollout_domains{stage="none:100",state="active"} 1',
        'dmarc_rollout_domains{stage="quarantine:25",state="active"} 1',
      ]);
      has(lines, 'dmarc_rollout_changes_in_flight 0');
    });

    it('names the stage "unknown" when the plan cannot be loaded, instead of failing the scrape', async () => {
      // The plan file was removed or broken after enrolment: the loader refuses it as it would in the daemon.
      const w = await world(dialect, ['a.example'], { loadPlan: (name) => loadPlan(name, [join(tmpdir(), 'no-plans-here')]) });
      const lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_domains'), ['dmarc_rollout_domains{stage="unknown",state="active"} 1']);
    });
  });

  describe(`ticks on ${dialect.name}`, () => {
    it('counts each decision by action, every action present from the start', async () => {
      const w = await world(dialect, ['a.example', 'b.example']);
      has(await w.scrape(), 'dmarc_rollout_decisions_total{action="establish"} 0', 'dmarc_rollout_decisions_total{action="halt"} 0');

      const first = await w.tick(T0);
      assert.deepEqual(first.map((r) => r.decision?.action), ['establish', 'establish']);
      const second = await w.tick(plus(T0, 3_600_000));
      assert.deepEqual(second.map((r) => r.decision?.action), ['hold', 'hold']);
      await w.tick(plus(T0, 7_200_000));

      has(
        await w.scrape(),
        'dmarc_rollout_decisions_total{action="establish"} 2',
        'dmarc_rollout_decisions_total{action="hold"} 4',
        'dmarc_rollout_decisions_total{action="advance"} 0',
        'dmarc_rollout_decisions_total{action="halt"} 0',
      );
    });

    it('counts a failing provider write per provider, with the change left in flight until it is verified', async () => {
      const w = await world(dialect, ['a.example']);
      w.dns.failWrites = new Error('provider says 503');
      const [r] = await w.tick(T0);
      assert.equal(r!.apply?.status, 'retrying', JSON.stringify(r));
      let lines = await w.scrape();
      has(lines, 'dmarc_rollout_provider_errors_total{provider="memory"} 1', 'dmarc_rollout_changes_in_flight 1');

      w.dns.failWrites = null;
      const [ok] = await w.tick(plus(T0, 3_600_000));
      assert.equal(ok!.apply?.status, 'verified', JSON.stringify(ok));
      lines = await w.scrape();
      has(lines, 'dmarc_rollout_provider_errors_total{provider="memory"} 1', 'dmarc_rollout_changes_in_flight 0');
    });

    it('keeps refused changes and unhandled domains apart from provider errors; a wait is neither', async () => {
      const w = await world(dialect, []);
      w.metrics.recordTick(
        [
          { domain: 'a.example', error: 'no provider assigned', provider: null },
          { domain: 'b.example', apply: { status: 'stopped' }, provider: null },
          { domain: 'c.example', apply: { status: 'waiting' }, provider: 'route53' },
          { domain: 'd.example', error: 'drift: _dmarc.d.example was changed by hand', provider: 'route53' },
          { domain: 'e.example', apply: { status: 'retrying' }, provider: 'route53' },
        ],
        1,
      );
      const lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_provider_errors_total'), ['dmarc_rollout_provider_errors_total{provider="route53"} 1']);
      assert.deepEqual(samples(lines, 'dmarc_rollout_domain_problems_total').sort(), [
        'dmarc_rollout_domain_problems_total{provider="none"} 2',
        'dmarc_rollout_domain_problems_total{provider="route53"} 1',
      ]);
    });

    it('observes each tick in the duration histogram and stamps the last tick', async () => {
      const w = await world(dialect, []);
      has(await w.scrape(), 'dmarc_rollout_tick_duration_seconds_count 0', 'dmarc_rollout_last_tick_timestamp_seconds 0');
      const before = Date.now() / 1000;
      w.metrics.recordTick([], 0.05);
      w.metrics.recordTick([], 42);
      const lines = await w.scrape();
      has(
        lines,
        'dmarc_rollout_tick_duration_seconds_bucket{le="0.1"} 1',
        'dmarc_rollout_tick_duration_seconds_bucket{le="30"} 1',
        'dmarc_rollout_tick_duration_seconds_bucket{le="60"} 2',
        'dmarc_rollout_tick_duration_seconds_bucket{le="600"} 2',
        'dmarc_rollout_tick_duration_seconds_sum 42.05',
        'dmarc_rollout_tick_duration_seconds_count 2',
      );
      const [stamp] = samples(lines, 'dmarc_rollout_last_tick_timestamp_seconds');
      const at = Number(stamp!.split(' ')[1]);
      assert.ok(at >= Math.floor(before) && at <= Date.now() / 1000 + 1, stamp);
    });
  });

  describe(`ingest on ${dialect.name}`, () => {
    it('counts each outcome per configured source, and reads the stored totals from the store', async () => {
      const w = await world(dialect, []);
      const report = (records: number) =>
        Buffer.from(aggregateReportXml({ reporter: 'isp.example', domain: 'a.example', day: '2026-03-03', rows: Array.from({ length: records }, (_, i) => cleanRow('a.example', `192.0.2.${i + 1}`, 10)) }));
      const ingest = async (source: string, input: RawInput, status: string) => {
        const r = await w.ingest(input, `${source}:${status}`);
        assert.equal(r.status, status, JSON.stringify(r));
        w.metrics.recordIngest(source, r);
      };
      await ingest('inbox', { bytes: report(1) }, 'stored');
      await ingest('inbox', { bytes: report(1) }, 'duplicate');
      await ingest('imap', { bytes: report(2) }, 'stored'); // a changed copy: stored, not counted
      await ingest('imap', { bytes: Buffer.from('this is not a report\x00\x01\x02') }, 'rejected');
      await ingest('inbox', { path: join(w.dir, 'rejected', 'no-such-file.xml') }, 'error');

      const lines = await w.scrape();
      assert.deepEqual(samples(lines, 'dmarc_rollout_ingest_total').sort(), [
        'dmarc_rollout_ingest_total{source="imap",outcome="changed"} 1',
        'dmarc_rollout_ingest_total{source="imap",outcome="rejected"} 1',
        'dmarc_rollout_ingest_total{source="inbox",outcome="duplicate"} 1',
        'dmarc_rollout_ingest_total{source="inbox",outcome="error"} 1',
        'dmarc_rollout_ingest_total{source="inbox",outcome="stored"} 1',
      ]);
      has(lines, 'dmarc_rollout_reports_stored 2', 'dmarc_rollout_rejected_inputs 1');

      // A restarted daemon: counters start again, the store's totals do not.
      const restarted = createDaemonMetrics({ store: w.store });
      const again = await w.scrape(restarted);
      assert.deepEqual(samples(again, 'dmarc_rollout_ingest_total'), []);
      has(again, 'dmarc_rollout_reports_stored 2', 'dmarc_rollout_rejected_inputs 1');
    });
  });

  describe(`instances on ${dialect.name}`, () => {
    it('keeps each instance on its own registry, with the process metrics prefixed on each', async () => {
      const w = await world(dialect, ['a.example']);
      const other = createDaemonMetrics({ store: w.store });
      w.metrics.recordIngest('inbox', { source: 'x', status: 'error', reason: 'unreadable' });
      w.metrics.recordTick([{ domain: 'a.example', provider: 'memory', apply: { status: 'retrying' } }], 1);

      const mine = await w.scrape();
      const theirs = await w.scrape(other);
      has(mine, 'dmarc_rollout_ingest_total{source="inbox",outcome="error"} 1', 'dmarc_rollout_tick_duration_seconds_count 1');
      assert.deepEqual(samples(theirs, 'dmarc_rollout_ingest_total'), []);
      assert.deepEqual(samples(theirs, 'dmarc_rollout_provider_errors_total'), []);
      has(theirs, 'dmarc_rollout_tick_duration_seconds_count 0');
      for (const lines of [mine, theirs]) {
        assert.equal(samples(lines, 'dmarc_rollout_process_cpu_user_seconds_total').length, 1);
        assert.ok(!lines.some((l) => l.startsWith('process_')), 'process metrics carry the dmarc_rollout_ prefix');
      }
      assert.equal((await other.render()).contentType, 'text/plain; version=0.0.4; charset=utf-8');
    });
  });
}
