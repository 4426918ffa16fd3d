/**
 * Three daemons on one Postgres, as an operator runs them: three processes of
 * the real executable against one database (test/helpers/postgres.ts), one
 * real PowerDNS they all write through, one report folder, one webhook.
 * A fleet of domains is ready to advance. The first DNS write to reach
 * PowerDNS is held (its answer kept back) until the test has killed the
 * daemon that sent it with SIGKILL: the record is in the zone, the writer's
 * intent still says `pending`. Then every domain must have changed exactly
 * once and been verified, the dead daemon's domain taken over by another
 * one (which finds the record already there, writes nothing, verifies), each
 * poll of the folder made by one daemon, each notification sent once, and a
 * page session opened on one daemon good on another.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { providerSetFrom } from '../providers/config-file.js';
import { generateToken } from '../src/api/tokens.js';
import { runTick } from '../src/engine/tick.js';
import { dnsVerifier } from '../src/engine/verify.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan, planDirectories } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { openStore, type Store } from '../src/store/open.js';
import { BIN, REPO_ROOT, tempStore } from './helpers/cli.js';
import { freePort, waitFor } from './helpers/daemon-process.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';
import { formSignIn } from './helpers/web.js';
import { HoldingProxy } from './helpers/holding-proxy.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { killedAtExit } from './helpers/children.js';

const DAY_MS = 86_400_000;
const DOMAINS = Array.from({ length: 9 }, (_, i) => `d${i + 1}.replicas.test`);
/** Reports in the shared folder, for a domain nobody enrolled (what matters is who reads them). */
const FOLDER_REPORTS = 24;
const PLAN = `description: three daemons advance each domain once
record_ttl: 60
stages:
  - { policy: none, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.02 }
  - { policy: quarantine, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.02, halt_fail_rate: 0.05, rollback_fail_rate: 0.1 }
  - { policy: reject, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.01, halt_fail_rate: 0.03, rollback_fail_rate: 0.05 }
`;

interface Daemon {
  child: ChildProcess;
  api: string;
  output(): string;
  exited: Promise<number | null>;
}

/** The daemon's JSON log lines with this message. */
const logLines = (d: Daemon, msg: string) =>
  d
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);

describe('three daemons on one Postgres', () => {
  let pg: PostgresServer;
  let pdns: PdnsServer;
  let proxy: HoldingProxy;
  let hook: Server;
  const received = new Map<string, number>();
  let store: Store;
  const daemons: Daemon[] = [];

  before(async () => {
    [pg, pdns] = await Promise.all([startPostgres(), startPdns()]);
    proxy = new HoldingProxy(pdns.apiUrl);
    await proxy.start();
    hook = createServer((req, res) => {
      const key = String(req.headers['idempotency-key'] ?? '');
      received.set(key, (received.get(key) ?? 0) + 1);
      req.resume();
      // A receiver that takes its time: a second sender looking meanwhile must find the message claimed.
      req.on('end', () => setTimeout(() => res.writeHead(200).end('ok'), 400));
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await Promise.all(daemons.map((d) => d.exited));
    await store?.close();
    await proxy?.stop();
    await new Promise<void>((resolve) => (hook ? hook.close(() => resolve()) : resolve()));
    await Promise.all([pdns?.stop(), pg?.stop()]);
  });

  it('each domain changes once and is verified though one daemon is killed mid-apply; its lease is taken over; each poll by one daemon; each notification sent once; sessions work across daemons', async () => {
    const database = await pg.createDatabase('replicas');
    const { dir } = tempStore('dmarc-rollout-replicas-');
    const plansDir = join(dir, 'plans');
    mkdirSync(plansDir);
    writeFileSync(join(plansDir, 'replicas.yaml'), PLAN);
    const load = (name: string) => loadPlan(name, [plansDir, ...planDirectories()]);
    for (const domain of DOMAINS) await pdns.createZone(domain);

    // The fleet, as six days of running would leave it: enrolled, p=none established six days ago
    // (straight to PowerDNS, not counted), then five days of clean reports.
    const env = { PDNS_KEY: pdns.apiKey };
    const direct = providerSetFrom({ pdns: { type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'PDNS_KEY' } }, 'test', { env }).get('pdns');
    const now = new Date();
    const established = new Date(now.getTime() - 6 * DAY_MS);
    store = await openStore({ kind: 'postgres', connection: pg.connection(database) });
    await enrollDomains(store, {
      inputs: DOMAINS.map((text) => ({ text, origin: 'argv' as const })),
      plan: load('replicas'),
      provider: 'pdns',
      providers: { names: ['pdns'], get: () => direct },
      reportAddress: 'dmarc@reports.replicas.test',
      actor: 'test:setup',
      now: new Date(established.getTime() - 60_000),
    });
    const verifier = () => dnsVerifier({ nameservers: [pdns.dnsServer] });
    const setup = await runTick({ store, now: established, providerFor: () => direct, verifierFor: verifier, loadPlan: load });
    assert.deepEqual(setup.map((r) => r.apply?.status), DOMAINS.map(() => 'verified'));
    const today = Math.floor(now.getTime() / DAY_MS) * DAY_MS;
    for (const domain of DOMAINS) {
      for (let d = 5; d >= 1; d--) {
        const day = new Date(today - d * DAY_MS).toISOString().slice(0, 10);
        const xml = aggregateReportXml({ reporter: 'google.com', domain, day, rows: [cleanRow(domain, '192.0.2.10', 400)] });
        const result = await ingestInput(store.db, { bytes: Buffer.from(xml) }, `setup:${domain}:${day}`, { rejectedDir: join(dir, 'rejected'), now: () => now });
        assert.equal(result.status, 'stored');
      }
    }
    const inbox = join(dir, 'inbox');
    mkdirSync(inbox);

    // Three daemons, the same config but for the API port; one webhook channel.
    const viewer = generateToken();
    const daemonEnv = {
      PG_PASSWORD: pg.password,
      PDNS_KEY: pdns.apiKey,
      HOOK_URL: `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`,
      HOOK_SECRET: 'replicas-hook-secret',
      SESSION_SECRET: 'one-secret-all-replicas-share-0123456789abcdef',
      DMARC_ROLLOUT_PLANS: plansDir,
    };
    const release = proxy.holdNextWrite();
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const config = join(dir, `daemon-${i}.yaml`);
      writeFileSync(
        config,
        [
          `store: { postgres: { host: 127.0.0.1, port: ${pg.port}, database: ${database}, user: ${pg.user}, password_env: PG_PASSWORD } }`,
          `rejected_dir: ${join(dir, 'rejected')}`,
          `schedule: { ingest: '*/2 * * * * *', tick: '*/2 * * * * *' }`,
          'instances: { heartbeat_seconds: 1, lease_seconds: 6 }',
          'providers:',
          `  pdns: { type: powerdns, api_url: '${proxy.url}', api_key_env: PDNS_KEY, verify: { nameservers: ['${pdns.dnsServer}'] } }`,
          'sources:',
          `  - { type: folder, path: '${inbox}', trusted: true }`,
          'notifications: { poll_seconds: 1, timeout_seconds: 2, channels: { hook: { type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET } } }',
          `api: { listen: { host: 127.0.0.1, port: ${port} }, tokens: [{ name: viewer, role: viewer, sha256: ${viewer.sha256} }], session: { secret_env: SESSION_SECRET } }`,
          'log: { level: debug }',
        ].join('\n'),
      );
      const child = killedAtExit(spawn(process.execPath, [BIN, 'daemon', '--config', config], { cwd: REPO_ROOT, env: { ...process.env, ...daemonEnv } }));
      let text = '';
      child.stdout!.on('data', (b) => (text += b));
      child.stderr!.on('data', (b) => (text += b));
      daemons.push({ child, api: `http://127.0.0.1:${port}`, output: () => text, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) });
    }
    for (const d of daemons) await waitFor(`a daemon API (${d.output().slice(-500)})`, () => fetch(`${d.api}/healthz`).then((r) => r.ok).catch(() => false), 90_000);

    // The first write reaches PowerDNS; its writer is killed before it hears back.
    const heldName = await release.held;
    const heldDomain = heldName.replace(/^_dmarc\./, '');
    const [holder] = await pg.query<{ id: string; pid: number }>(
      database,
      `select i.id, i.pid from leases l join instances i on i.id = l.holder where l.name = $1`,
      [`domain:${heldDomain}`],
    );
    assert.ok(holder, `the domain being written (${heldDomain}) is leased by a registered instance`);
    const victim = daemons.find((d) => d.child.pid === Number(holder.pid));
    assert.ok(victim, `the lease holder (pid ${holder.pid}) is one of the three daemons`);
    victim.child.kill('SIGKILL');
    await victim.exited;
    release.release();
    const [inFlight] = await pg.query<{ status: string; record: string }>(database, 'select status, record from intents where domain = $1', [heldDomain]);
    assert.equal(inFlight?.status, 'pending', 'killed between the write and recording it');
    const survivors = daemons.filter((d) => d !== victim);
    // Reports arrive in the shared folder now (so no poll was cut short by the kill): the survivors take turns reading it.
    for (let i = 0; i < FOLDER_REPORTS; i++) {
      const day = new Date(today - (i + 1) * DAY_MS).toISOString().slice(0, 10);
      writeFileSync(join(inbox, `report-${i}.xml`), aggregateReportXml({ reporter: 'google.com', domain: 'elsewhere.test', day, rows: [cleanRow('elsewhere.test', '192.0.2.99', 3)] }));
    }

    // Every domain advances; the killed daemon's one is taken over once its lease (6 s) runs out.
    await waitFor(
      'every domain advanced and nothing in flight',
      async () => {
        const [row] = await pg.query<{ moved: string; flying: string }>(
          database,
          `select (select count(*) from domains where stage_index = 1) as moved, (select count(*) from intents) as flying`,
        );
        return Number(row!.moved) === DOMAINS.length && Number(row!.flying) === 0;
      },
      90_000,
    );
    await waitFor('the folder read', () => readdirSync(inbox).filter((f) => f.endsWith('.xml')).length === 0, 60_000);
    await waitFor(
      'every notification delivered',
      async () => {
        const rows = await pg.query<{ status: string }>(database, 'select status from notification_messages');
        return rows.length > 0 && rows.every((r) => r.status === 'delivered');
      },
      60_000,
    );
    // A few more ticks: nothing more may be written.
    await new Promise((r) => setTimeout(r, 5000));

    // DNS: one write per domain, the held one included (it landed before the kill), each verified once.
    const writesPer = new Map<string, number>();
    for (const w of proxy.writes) writesPer.set(w.name, (writesPer.get(w.name) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(writesPer), Object.fromEntries(DOMAINS.map((d) => [`_dmarc.${d}`, 1])));
    assert.ok(proxy.writes.every((w) => w.content.includes('p=quarantine')));
    const history = await pg.query<{ domain: string; action: string; to_stage: string }>(database, `select domain, action, to_stage from stage_history where action = 'advance' order by domain`);
    assert.deepEqual(history.map((h) => `${h.domain} ${h.to_stage}`), DOMAINS.map((d) => `${d} quarantine:100`).sort());
    const verified = await pg.query<{ domain: string; n: string }>(database, `select domain, count(*) as n from audit_events where action = 'verified' and at > $1 group by domain order by domain`, [now.toISOString()]);
    assert.deepEqual(verified.map((v) => `${v.domain} ${v.n}`), DOMAINS.map((d) => `${d} 1`).sort(), 'each advance verified once');
    const halts = await pg.query(database, `select domain, reason from audit_events where action in ('halt', 'apply-retry')`);
    assert.deepEqual(halts, []);

    // The killed daemon's domain was finished by a survivor, which found the record already there.
    const finished = survivors.flatMap((d) => logLines(d, 'change in flight').filter((l) => l.domain === heldDomain).map((l) => (l.apply as { status: string }).status));
    assert.deepEqual(finished, ['verified'], 'one survivor took the domain over and verified it');
    const deadLeases = await pg.query(database, 'select name from leases where holder = $1 and expires_at > $2', [holder.id, new Date().toISOString()]);
    assert.deepEqual(deadLeases, [], 'the dead daemon holds nothing any more');
    for (const d of survivors) {
      await waitFor('the survivors count two live instances', async () => ((await (await fetch(`${d.api}/healthz`)).json()) as { live_instances: number }).live_instances === 2, 10_000);
    }
    const health = await Promise.all(survivors.map(async (d) => (await (await fetch(`${d.api}/healthz`)).json()) as { instance: string }));
    assert.equal(new Set(health.map((h) => h.instance)).size, 2, 'each answers as itself');
    assert.ok(!health.some((h) => h.instance === holder.id));

    // The folder: every report read once, each poll by one daemon, and no two polls at once.
    const [reports] = await pg.query<{ n: string }>(database, `select count(*) as n from reports where domain = 'elsewhere.test'`);
    assert.equal(Number(reports!.n), FOLDER_REPORTS);
    const polls = daemons.flatMap((d) => logLines(d, 'source polled').map((l) => ({ delivered: Number(l.delivered), started: String(l.started), time: Number(l.time), pid: d.child.pid })));
    assert.equal(
      polls.reduce((n, p) => n + Number(p.delivered), 0),
      FOLDER_REPORTS,
      'no report was delivered twice (two daemons reading the folder at once would both deliver its files)',
    );
    const spans = polls.map((p) => ({ pid: p.pid, from: Date.parse(p.started), to: p.time })).sort((a, b) => a.from - b.from);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]!.from >= spans[i - 1]!.to, `polls overlap: ${JSON.stringify([spans[i - 1], spans[i]])}`);
    assert.equal(readdirSync(join(inbox, 'processed')).length, FOLDER_REPORTS);

    // Notifications: each message reached the webhook once.
    const messages = await pg.query<{ key: string }>(database, `select key from notification_messages`);
    assert.ok(messages.length > 0);
    assert.deepEqual(
      [...received.entries()].sort(),
      messages.map((m) => [m.key, 1] as [string, number]).sort(),
      'every message delivered, none twice',
    );

    // A page session opened on one daemon is good on another (sessions live in the store).
    const [a, b] = survivors as [Daemon, Daemon];
    const signIn = await formSignIn(a.api, viewer.token);
    assert.equal(signIn.res.status, 303);
    assert.ok(signIn.session);
    const page = await fetch(`${b.api}/`, { headers: { cookie: signIn.session }, redirect: 'manual' });
    assert.equal(page.status, 200, 'signed in on one daemon, served by another');

    // A clean stop deregisters: only the killed daemon's row is left, shown as gone.
    for (const d of survivors) d.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(survivors.map((d) => d.exited)), [0, 0]);
    const left = await pg.query<{ id: string }>(database, 'select id from instances');
    assert.deepEqual(left.map((r) => r.id), [holder.id]);
  });
});
