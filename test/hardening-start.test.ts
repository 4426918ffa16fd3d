/**
 * All up or all down. With the SMTP port taken the start fails with the
 * reason and the lock (and the API's port) are free again, where the daemon
 * used to run on half-started, holding the lock with no schedule. A failing
 * source (an IMAP server that refuses) is retried with a backoff while the
 * folder beside it is read. A tick that hangs is a stall: /healthz answers
 * 503 and systemd's watchdog gets no keep-alive (real systemd-notify, real
 * Unix datagram socket).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { loadDaemonConfig } from '../src/daemon/config.js';
import { startDaemon, StartError } from '../src/daemon/daemon.js';
import { DaemonHealth } from '../src/daemon/health.js';
import { acquireInstanceLock } from '../src/daemon/lock.js';
import { startSystemdWatchdog } from '../src/daemon/watchdog.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { force } from '../src/fleet/actions.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { runMain, tempStore } from './helpers/cli.js';
import { freePort, waitFor } from './helpers/daemon-process.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';
import { killedAtExit } from './helpers/children.js';

const logger = pino({ level: 'silent' });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const listen = (server: Server | HttpServer, port = 0) => new Promise<number>((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));

describe('all up or all down', () => {
  it('with the SMTP port taken the start fails with the reason, and the lock and the API port are free', async () => {
    const taken = createServer();
    const smtpPort = await listen(taken);
    cleanups.push(() => new Promise((r) => taken.close(r)));
    const apiPort = await freePort();
    const { dir, db } = tempStore('dmarc-rollout-start-');
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'store: { sqlite: store.sqlite }',
        'sources:',
        `  - { type: smtp, host: 127.0.0.1, port: ${smtpPort}, recipients: ['dmarc@example.com'] }`,
        `api: { listen: { host: 127.0.0.1, port: ${apiPort} } }`,
        '',
      ].join('\n'),
    );
    const config = loadDaemonConfig(file, {});
    await assert.rejects(startDaemon(config, { logger }), (error: unknown) => {
      assert.ok(error instanceof StartError);
      assert.match(error.message, new RegExp(`config\\.yaml: sources: smtp:127\\.0\\.0\\.1:${smtpPort}: cannot listen: .*EADDRINUSE`));
      return true;
    });
    const lock = acquireInstanceLock(db);
    lock.release();
    const api = createServer();
    assert.equal(await listen(api, apiPort), apiPort, 'the API port was let go');
    await new Promise((r) => api.close(r));

    // And as an operator sees it: the command exits 1 with the reason (it used to keep running; a regression hangs here, hence the race).
    const run = await Promise.race([
      runMain(['daemon', '--config', file]),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the daemon command kept running instead of refusing to start')), 20_000).unref()),
    ]);
    assert.equal(run.code, 1, `${run.stderr}\n${run.stdout}`);
    assert.match(run.stderr, /refusing to start: .*sources: smtp:127\.0\.0\.1:\d+: cannot listen/);
  });

  it('a failing source is retried with a backoff while the folder beside it is read; /healthz stays up', async () => {
    const { dir } = tempStore('dmarc-rollout-isolate-');
    const inbox = join(dir, 'inbox');
    mkdirSync(inbox);
    writeFileSync(join(inbox, 'r.xml'), aggregateReportXml({ reporter: 'isp.example', domain: 'a.example', day: '2026-05-01', rows: [cleanRow('a.example', '192.0.2.9', 2)] }));
    const refusing = createServer((socket) => socket.end('* BYE go away\r\n'));
    const imapPort = await listen(refusing);
    cleanups.push(() => new Promise((r) => refusing.close(r)));
    const apiPort = await freePort();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'store: { sqlite: store.sqlite }',
        "schedule: { ingest: '0 0 1 1 *', tick: '0 0 1 1 *' }",
        'sources:',
        // Listed first: it used to stop every source after it.
        `  - { type: imap, host: 127.0.0.1, port: ${imapPort}, secure: false, user: dmarc, password_env: IMAP_PW }`,
        '  - { type: folder, path: inbox, trusted: true }',
        `api: { listen: { host: 127.0.0.1, port: ${apiPort} } }`,
        '',
      ].join('\n'),
    );
    const daemon = await startDaemon(loadDaemonConfig(file, { IMAP_PW: 'wrong' }), { logger });
    cleanups.push(() => daemon.stop());
    await daemon.ingest();
    const stored = await daemon.store.db.selectFrom('reports').select('domain').execute();
    assert.deepEqual(stored.map((r) => r.domain), ['a.example'], 'the folder was read');
    const first = daemon.health().sources;
    assert.equal(first.length, 1);
    assert.match(first[0]!.name, /^imap:/);
    assert.equal(first[0]!.failures, 1);
    await daemon.ingest();
    assert.equal(daemon.health().sources[0]!.failures, 1, 'not retried before its backoff is over');
    const res = await fetch(`${daemon.apiUrl}/healthz`);
    assert.equal(res.status, 200);
    // Which daemon answered and how many run, as every replica's probe sees it; no source name or error.
    assert.deepEqual(await res.json(), { ok: true, problems: [], failing_sources: 1, instance: daemon.instanceId, live_instances: 1 });
  });

  it('a tick that hangs is a stall: /healthz answers 503 with the reason', async () => {
    // A DNS provider API that accepts the request and never answers.
    const hanging = createHttpServer(() => undefined);
    const providerPort = await listen(hanging);
    cleanups.push(() => {
      hanging.closeAllConnections();
      return new Promise((r) => hanging.close(r));
    });
    const { dir, db } = tempStore('dmarc-rollout-stall-');
    const store = await openSqliteStore(db);
    const dns = new MemoryDns();
    dns.set('_dmarc.stall.example', { txt: ['v=DMARC1; p=none; rua=mailto:d@stall.example'] });
    await enrollDomains(store, { inputs: [{ text: 'stall.example', origin: 'argv' }], plan: loadPlan('default'), provider: 'pdns', providers: { names: ['pdns'], get: () => dns }, actor: 'test', now: new Date() } as Parameters<typeof enrollDomains>[1]);
    // A person's move is queued: the next tick must write it through the provider, which never answers.
    await force(store, 'stall.example', () => loadPlan('default'), { actor: 'test', now: new Date() }, { to: 'quarantine:1', reason: 'test' });
    await store.close();
    const apiPort = await freePort();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        'store: { sqlite: store.sqlite }',
        "schedule: { ingest: '0 0 1 1 *', tick: '0 0 1 1 *' }",
        'watchdog: { stall_seconds: 1 }',
        'providers:',
        `  pdns: { type: powerdns, api_url: 'http://127.0.0.1:${providerPort}', api_key_env: DMARC_ROLLOUT_TEST_PDNS_KEY }`,
        `api: { listen: { host: 127.0.0.1, port: ${apiPort} } }`,
        '',
      ].join('\n'),
    );
    // Provider secrets are read from the process environment when the provider is first used.
    process.env.DMARC_ROLLOUT_TEST_PDNS_KEY = 'k';
    const daemon = await startDaemon(loadDaemonConfig(file, process.env), { logger });
    cleanups.push(() => daemon.stop());
    assert.equal((await fetch(`${daemon.apiUrl}/healthz`)).status, 200);
    void daemon.tick();
    const stalled = await waitFor('the stall to show', async () => {
      const res = await fetch(`${daemon.apiUrl}/healthz`);
      return res.status === 503 ? ((await res.json()) as { problems: string[] }) : undefined;
    }, 15_000);
    assert.match(stalled.problems[0]!, /^tick has been running for \d+ s \(stalled\)$/);
    hanging.closeAllConnections();
  });

  it('the systemd watchdog gets keep-alives while healthy and none during a stall (real systemd-notify)', async () => {
    const { dir } = tempStore('dmarc-rollout-watchdog-');
    const socket = join(dir, 'notify.sock');
    const received = join(dir, 'received');
    // A Unix datagram socket, as systemd listens on; Python because Node has none.
    const listener = killedAtExit(spawn('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    data = s.recv(4096)
    with open(sys.argv[2], "a") as f:
        f.write(data.decode() + "\\n")
`, socket, received]));
    cleanups.push(() => listener.kill());
    await new Promise<void>((resolve) => listener.stdout.once('data', () => resolve()));
    let healthy = true;
    const health = new DaemonHealth(Date.now(), 1000);
    health.schedule('tick', () => 60_000);
    const errors: Error[] = [];
    const watchdog = startSystemdWatchdog(() => healthy && health.report(Date.now()).ok, {
      env: { ...process.env, NOTIFY_SOCKET: socket, WATCHDOG_USEC: '2000000' },
      onError: (e) => errors.push(e),
    });
    assert.ok(watchdog, 'started when systemd asks for keep-alives');
    cleanups.push(() => watchdog!.stop());
    await waitFor('a keep-alive', () => existsSync(received) && readFileSync(received, 'utf8').includes('WATCHDOG=1'), 10_000);
    assert.deepEqual(errors, []);
    health.started('tick', Date.now() - 5_000);
    healthy = health.report(Date.now()).ok;
    assert.equal(healthy, false);
    const before = readFileSync(received, 'utf8').split('\n').length;
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(readFileSync(received, 'utf8').split('\n').length, before, 'no keep-alive while the tick is stalled');
    assert.equal(startSystemdWatchdog(() => true, { env: {} }), null, 'nothing without NOTIFY_SOCKET');
  });
});

describe('config errors name the file and the field', () => {
  it('a YAML alias bomb, and a store in a folder that does not exist', async () => {
    const { dir } = tempStore('dmarc-rollout-config-');
    const bomb = join(dir, 'bomb.yaml');
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 9; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`);
    lines.push('store: { sqlite: store.sqlite }', 'sources: *j');
    writeFileSync(bomb, `${lines.join('\n')}\n`);
    assert.throws(() => loadDaemonConfig(bomb, {}), (error: Error) => {
      assert.equal(error.name, 'ConfigError');
      assert.match(error.message, /bomb\.yaml: not valid YAML: .*alias/i);
      return true;
    });
    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, 'store: { sqlite: no-such-folder/store.sqlite }\n');
    assert.throws(() => loadDaemonConfig(missing, {}), /missing\.yaml: store\.sqlite: the folder .*no-such-folder does not exist/);
    const run = await runMain(['daemon', '--config', missing]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /store\.sqlite: the folder .*no-such-folder does not exist/);
  });
});
