/**
 * One planned change, three readers: the dry run (`planChanges`, what `plan`
 * and `tick --dry-run` print) says exactly what the next tick then does, on
 * a fleet with a domain to write, a `_dmarc` CNAME to a hosted service, a
 * domain whose provider is not configured, a record changed by hand, and a
 * change stuck after failing again and again; and the views, status and
 * metrics call the stuck one stuck. In the test world, on SQLite and on
 * Postgres (the CLI pointed at the same store).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ProviderError } from '../providers/index.js';
import { createDaemonMetrics } from '../src/daemon/metrics.js';
import { planChanges } from '../src/app/dry-run.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { planSummary, STUCK_AFTER_ATTEMPTS } from '../src/engine/planned-change.js';
import { UNHANDLED_ACTION, type TickOptions } from '../src/engine/tick.js';
import { fleetStatus } from '../src/fleet/index.js';
import { domainOverview, domainView } from '../src/fleet/views.js';
import { renderDomainPage } from '../src/web/domain-page.js';
import { loadPlan } from '../src/plans/index.js';
import { recentAudit } from '../src/store/audit.js';
import { getIntent } from '../src/store/intents.js';
import type { DomainRow } from '../src/store/schema.js';
import { runCli } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';
import { createWorld, type World } from './helpers/world.js';

const plan = loadPlan('default');
const T0 = new Date('2026-05-04T10:00:00Z');
const HOUR = 3_600_000;

for (const dialect of storeDialects()) describe(`the dry run says what the tick then does, on ${dialect.name}`, () => {
  let w: World;
  const dns = new MemoryDns();
  // The stuck domain's provider refuses every write for now (throttled after its own retries): transient, so retried.
  const stuckProvider = {
    name: 'memory',
    inspect: (f: string) => dns.inspect(f),
    readTxt: (f: string) => dns.readTxt(f),
    writeTxt: async () => {
      throw new ProviderError('route53', 'throttled', 'change TXT: gave up after 8 attempts (last: Throttling)');
    },
  };
  const providerFor = (row: DomainRow) => {
    if (row.provider === 'gone') throw new Error('no provider named "gone" in providers.yaml (have: memory)');
    return row.domain === 'stuck.example' ? stuckProvider : dns;
  };
  const options = (now: Date): Omit<TickOptions, 'dryRun'> & { loadPlan: typeof loadPlan } => ({ store: w.store, now, providerFor, loadPlan });

  before(async () => {
    w = await createWorld({ dialect, start: T0, dns, providerFor, plan });
    const domains = ['write.example', 'hosted.example', 'drift.example', 'stuck.example'];
    for (const d of domains) dns.set(`_dmarc.${d}`, { txt: [`v=DMARC1; p=none; pct=100; rua=mailto:r@${d}`], ttl: 300 });
    await w.enrol(domains);
    dns.set('_dmarc.noprov.example', { txt: ['v=DMARC1; p=none; pct=100; rua=mailto:r@noprov.example'], ttl: 300 });
    await w.enrol(['noprov.example'], { provider: 'gone' });
    // drift.example is established first, then its record is edited by hand; hosted.example hands _dmarc to a service.
    await w.tick(T0, { domains: ['drift.example'] });
    dns.set('_dmarc.drift.example', { txt: ['v=DMARC1; p=reject; rua=mailto:someone@drift.example'], ttl: 300 });
    dns.set('_dmarc.hosted.example', { cname: 'hosted.example._d.sdmarc.net' });
    // stuck.example fails its write again and again, each retry after its backoff.
    for (let i = 0; i < STUCK_AFTER_ATTEMPTS; i++) await w.tick(new Date(T0.getTime() + i * 2 * HOUR), { domains: ['stuck.example'] });
  });

  it('matches domain by domain: write, refused (CNAME, no provider, drift) and stuck', async () => {
    const now = new Date(T0.getTime() + 12 * HOUR);
    const planned = Object.fromEntries((await planChanges(options(now))).map((c) => [c.domain, c]));
    assert.equal(planned['write.example']!.kind, 'write');
    assert.equal(planned['write.example']!.next, 'v=DMARC1; p=none; rua=mailto:r@write.example');
    assert.equal(planned['hosted.example']!.kind, 'refused');
    assert.match(planned['hosted.example']!.reason, /CNAME to hosted\.example\._d\.sdmarc\.net \(Sendmarc manages this record\)/);
    assert.equal(planned['noprov.example']!.kind, 'refused');
    assert.match(planned['noprov.example']!.reason, /no provider named "gone"/);
    assert.equal(planned['drift.example']!.kind, 'refused');
    assert.match(planned['drift.example']!.reason, /^drift: /);
    assert.equal(planned['stuck.example']!.kind, 'stuck');
    assert.match(planned['stuck.example']!.reason, /has failed 5 times; last error: writing _dmarc\.stuck\.example through memory failed: route53: change TXT: gave up/);
    assert.equal(planSummary(Object.values(planned)), '5 domain(s): 1 to write, 3 refused, 1 stuck');
    assert.deepEqual(dns.writes.map((w) => w.fqdn), ['_dmarc.drift.example'], 'the dry run wrote nothing');

    const ticked = Object.fromEntries((await w.tick(now)).map((r) => [r.domain, r]));
    assert.deepEqual(ticked['write.example']!.apply, { status: 'verified', record: planned['write.example']!.next, toIndex: 0, windowStart: ticked['write.example']!.apply && 'windowStart' in ticked['write.example']!.apply ? ticked['write.example']!.apply.windowStart : '' });
    assert.deepEqual(ticked['hosted.example']!.apply, { status: 'stopped', reason: planned['hosted.example']!.reason });
    assert.equal(ticked['noprov.example']!.error, planned['noprov.example']!.reason);
    assert.equal(ticked['drift.example']!.error, planned['drift.example']!.reason);
    assert.notEqual(ticked['stuck.example']!.apply?.status, 'verified');
  });

  it('status, the views and /metrics call the stuck change stuck, with its last error', async () => {
    const now = new Date(T0.getTime() + 13 * HOUR);
    const status = (await fleetStatus(w.store, now)).find((d) => d.domain === 'stuck.example')!;
    assert.ok(status.stuck && status.stuck.attempts >= STUCK_AFTER_ATTEMPTS, JSON.stringify(status));
    assert.match(status.stuck.last_error ?? '', /gave up after 8 attempts/);
    const overview = (await domainOverview(w.store, 'stuck.example', now))!;
    assert.ok(overview.stuck && overview.change_in_flight);
    assert.equal((await fleetStatus(w.store, now)).filter((d) => d.stuck !== null).length, 1);
    const metrics = createDaemonMetrics({ store: w.store, loadPlan });
    const text = await metrics.registry.metrics();
    assert.match(text, /dmarc_rollout_changes_stuck 1/);
    assert.ok(await getIntent(w.store.db, 'stuck.example'));

    // The page and the command line say so too.
    const view = (await domainView(w.store, 'stuck.example', now))!;
    const page = renderDomainPage({ user: { name: 'olivia', role: 'operator' }, csrfToken: 't' }, view);
    assert.match(page, /<span class="badge badge-stuck">stuck<\/span> This change has failed [5-9] times/);
    const explain = await runCli(['explain', 'stuck.example'], dialect.cliEnv(w.store));
    assert.equal(explain.code, 0, explain.stderr);
    assert.match(explain.stdout, /Next tick: STUCK: establish -> none:100 has failed [5-9] times .*Last error: writing _dmarc\.stuck\.example/);
    assert.doesNotMatch(explain.stdout, /Next tick: establish/);
    const table = await runCli(['status'], dialect.cliEnv(w.store));
    assert.match(table.stdout, /stuck\.example .*active \(STUCK: the change in flight failed [5-9] times; last error: /);
  });

  it('a domain the tick cannot handle is audited and announced once per distinct reason, not every tick', async () => {
    for (let i = 0; i < 3; i++) await w.tick(new Date(T0.getTime() + (20 + i) * HOUR), { domains: ['noprov.example'] });
    const refusals = (await recentAudit(w.store.db, { domain: 'noprov.example', limit: 100 })).filter((e) => e.action === UNHANDLED_ACTION);
    assert.equal(refusals.length, 1, 'three ticks with the same missing provider: one audit entry');
    assert.match(refusals[0]!.reason, /no provider named "gone"/);
    const events = await w.store.db.selectFrom('notification_events').selectAll().where('domain', '=', 'noprov.example').execute();
    assert.ok(events.some((e) => e.type === 'change-refused'), 'the outbox holds a change-refused event for it');
  });
});
