import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { openSqliteStore } from '../src/store/open.js';
import { startPdns } from './helpers/pdns.js';
import { runMain, tempStore } from './helpers/cli.js';
import { buildFleetFixture } from './helpers/fleet-fixture.js';
import { aggregateReportXml, cleanRow, spoofRow, unalignedEspRow } from './helpers/reports.js';

const isoDay = (start: string, d: number) => new Date(Date.parse(`${start}T00:00:00Z`) + d * 86_400_000).toISOString().slice(0, 10);

describe('simulate: replaying a quarter of reports through the real engine', () => {
  let dir: string;
  let db: string;
  before(() => {
    ({ dir, db } = tempStore());
    mkdirSync(join(dir, 'reports'));
    for (let d = 0; d < 100; d++) {
      const day = isoDay('2026-03-01', d);
      const rows = [cleanRow('sim.example', '192.0.2.1', 400), spoofRow('sim.example', '203.0.113.9', 50)];
      writeFileSync(join(dir, 'reports', `google-${day}.xml`), aggregateReportXml({ reporter: 'google.com', domain: 'sim.example', day, rows }));
    }
  });

  it('says on which day each stage would have moved, and stops at the gated step without --approve-all', async () => {
    const res = await runMain(['simulate', '--reports', join(dir, 'reports'), '--domain', 'sim.example', '--tick-hours', '0,12', '--json'], { DMARC_ROLLOUT_DB: db });
    assert.equal(res.code, 0, res.stderr);
    const steps = res.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(steps[0]).sort(), ['action', 'at', 'day', 'domain', 'reasons', 'stage', 'to']);
    assert.deepEqual([steps[0].at, steps[0].domain, steps[0].stage, steps[0].action, steps[0].to], ['2026-03-01T00:17:00.000Z', 'sim.example', 'none:100', 'establish', 'none:100']);
    // Written at 00:17, in effect five minutes later: inside the plan's grace, so none:100 is judged from 03-01.
    assert.deepEqual([steps[1].action, steps[1].reasons], ['verified', ['judged on mail from 2026-03-01T00:00:00.000Z']]);
    const advances = steps.filter((s: { action: string }) => s.action === 'advance');
    // 14 complete days (03-01..03-14); 03-14's report arrives a day after it ends, and the 00:17 tick of 03-16 sees it.
    assert.deepEqual([advances[0].at, advances[0].stage, advances[0].to], ['2026-03-16T00:17:00.000Z', 'none:100', 'quarantine:1']);
    assert.deepEqual(
      advances.map((s: { to: string }) => s.to),
      ['quarantine:1', 'quarantine:5', 'quarantine:10', 'quarantine:25', 'quarantine:50', 'quarantine:100'],
    );
    // Each step waits its min_days and nothing more: quarantine:1 (3 days) judged 03-16..03-18, advanced 03-20.
    assert.equal(advances[1].at, '2026-03-20T00:17:00.000Z');
    // Waiting for the day's report is said in words, naming the reporter and the day.
    assert.ok(steps.some((s: { reasons: string[] }) => s.reasons.some((r) => /waiting for google\.com's report for 2026-03-1\d, usually 1 day late/.test(r))));
    const approvals = steps.filter((s: { action: string }) => s.action === 'await-approval');
    assert.equal(approvals.length, 1, 'a repeated decision is printed once, as the daemon audits it once');
    assert.match(approvals[0].reasons.join(' '), /reject:1 needs a person's approval/);
  });

  it('goes on to reject with --approve-all, and the operator store is untouched', async () => {
    const res = await runMain(['simulate', '--reports', join(dir, 'reports'), '--domain', 'sim.example', '--tick-hours', '0', '--approve-all'], { DMARC_ROLLOUT_DB: db });
    assert.equal(res.code, 0, res.stderr);
    // 70 days of dwell to reject:100 plus one day per step (each day's report arrives a day after it ends): day 82.
    assert.match(res.stdout, /100 report\(s\) replayed\nsim\.example: ended at reject:100 \(completed\); reached reject:100 on 2026-05-22, day 82/);
    assert.match(res.stdout, /advance -> reject:1:/);
    const status = await runMain(['status', '--json'], { DMARC_ROLLOUT_DB: db });
    assert.deepEqual(JSON.parse(status.stdout).domains, []);
  });

  it('refuses a bad --start and an unknown plan', async () => {
    const bad = await runMain(['simulate', '--domain', 'sim.example', '--start', '03/01/2026'], { DMARC_ROLLOUT_DB: db });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--start "03\/01\/2026": expected YYYY-MM-DD/);
    const plan = await runMain(['simulate', '--domain', 'sim.example', '--plan', 'nope'], { DMARC_ROLLOUT_DB: db });
    assert.equal(plan.code, 1);
    assert.match(plan.stderr, /no plan of that name/);
  });
});

describe('operator commands on a real store', () => {
  it('explain shows the sources by class; allow, pause, resume, force and history are audited', async (t) => {
    const { dir, db } = tempStore();
    // Enrolment reads the live record through the domain's provider: a real PowerDNS holds ops.example.
    const pdns = await startPdns();
    t.after(() => pdns.stop());
    await pdns.createZone('ops.example', [{ name: '_dmarc.ops.example.', type: 'TXT', ttl: 300, records: [{ content: '"v=DMARC1; p=none; rua=mailto:d@ops.example"' }] }]);
    writeFileSync(join(dir, 'providers.yaml'), `pdns: { type: powerdns, api_url: "${pdns.apiUrl}", api_key_env: PDNS_OPS_KEY }\n`);
    const env = { DMARC_ROLLOUT_DB: db, DMARC_ROLLOUT_PROVIDERS: join(dir, 'providers.yaml'), PDNS_OPS_KEY: pdns.apiKey };
    mkdirSync(join(dir, 'in'));
    for (let d = 0; d < 5; d++) {
      const day = isoDay('2026-11-10', d);
      const rows = [cleanRow('ops.example', '192.0.2.1', 300), unalignedEspRow('ops.example', '198.51.100.7', 40, 'esp.example'), spoofRow('ops.example', '203.0.113.9', 25)];
      writeFileSync(join(dir, 'in', `r-${day}.xml`), aggregateReportXml({ reporter: 'google.com', domain: 'ops.example', day, rows }));
    }
    assert.equal((await runMain(['enroll', 'ops.example', '--provider', 'pdns'], env)).code, 0);
    const ingest = await runMain(['ingest', join(dir, 'in'), '--json'], env);
    assert.equal(ingest.code, 0, ingest.stderr);

    const explain = await runMain(['explain', 'ops.example'], env);
    assert.equal(explain.code, 0, explain.stderr);
    assert.match(explain.stdout, /Authorised sources[^\n]*:\n {2}192\.0\.2\.1 dkim:ops\.example spf:ops\.example/);
    assert.match(explain.stdout, /unaligned sources[^\n]*:\n {2}198\.51\.100\.7 dkim:esp\.example spf:bounce\.esp\.example: .*HOLDS the domain/);
    assert.match(explain.stdout, /Unauthenticated sources[^\n]*:\n {2}203\.0\.113\.9:/);
    assert.match(explain.stdout, /Next tick: establish -> none:100/);

    const allow = await runMain(['allow', 'ops.example', 'dkim:esp.example', '10.0.0.0/8', '--note', 'newsletter ESP'], env);
    assert.equal(allow.code, 0, allow.stderr);
    assert.match(allow.stdout, /dkim:esp\.example allowlisted for ops\.example\n10\.0\.0\.0\/8 allowlisted for ops\.example/);
    const explained = JSON.parse((await runMain(['explain', 'ops.example', '--json'], env)).stdout);
    const esp = explained.metrics.sources.find((s: { ip: string }) => s.ip === '198.51.100.7');
    assert.deepEqual([esp.class, esp.blocking], ['authorised', false]);

    const badSource = await runMain(['abuse', '--global', 'not-an-ip'], env);
    assert.equal(badSource.code, 1);
    assert.match(badSource.stderr, /"not-an-ip": not an IP, CIDR, dkim:<domain> or spf:<domain>/);

    assert.equal((await runMain(['pause', 'ops.example', '--reason', 'merger freeze'], env)).code, 0);
    const paused = JSON.parse((await runMain(['explain', 'ops.example', '--json'], env)).stdout);
    assert.deepEqual([paused.decision.action, paused.decision.checks[0].rule], ['hold', 'state']);
    assert.equal((await runMain(['resume', 'ops.example'], env)).code, 0);

    const forceBad = await runMain(['force', 'ops.example', '--to', 'quarantine:7', '--reason', 'test'], env);
    assert.equal(forceBad.code, 1);
    assert.match(forceBad.stderr, /quarantine:7 is not a stage of plan default/);
    const forced = await runMain(['force', 'ops.example', '--to', 'quarantine:5', '--reason', 'owner asked'], env);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /force to quarantine:5 queued/);

    const tick = await runMain(['tick'], { DMARC_ROLLOUT_DB: db });
    assert.equal(tick.code, 1, 'a tick with no provider settings fails for the domain');
    assert.match(tick.stdout, /ops\.example: error: no provider settings/);

    const history = await runMain(['history', 'ops.example', '--json'], env);
    const actions = JSON.parse(history.stdout).events.map((e: { action: string }) => e.action);
    // The tick that could not handle the domain is in its history too (once), so nobody has to read the tick's output to learn it.
    assert.deepEqual(actions, ['enroll', 'allow', 'allow', 'pause', 'resume', 'force', 'tick-refused']);
  });
});

describe('approvals', () => {
  it('lists what waits for a person, and an approved step as approved until it moves', async () => {
    const { db } = tempStore();
    const store = await openSqliteStore(db);
    const fleet = await buildFleetFixture(store, { now: new Date(), providerName: 'memory', provider: new MemoryDns() });
    await store.close();
    const env = { DMARC_ROLLOUT_DB: db, DMARC_ROLLOUT_PLANS: fleet.plansDir };
    const before = await runMain(['approvals'], env);
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, new RegExp(`^${fleet.gated}: none:100 -> quarantine:100 waits for approval: none:100 is clean`, 'm'));
    assert.ok(!before.stdout.includes(fleet.steady), 'a domain without enough mail is not waiting for a person');
    assert.equal((await runMain(['approve', fleet.gated, '--reason', 'ticket 12'], env)).code, 0);
    const after = await runMain(['approvals', '--json'], env);
    const gated = JSON.parse(after.stdout).approvals.find((d: { domain: string }) => d.domain === fleet.gated);
    assert.equal(gated.approved_stage, 'quarantine:100');
  });
});
