/**
 * Durable delivery through the real daemon process: a daemon killed with
 * SIGKILL while a webhook delivery is in flight loses nothing and, after a
 * restart, delivers every message, repeating only the one that was in flight
 * (under the same idempotency key, which is what the key is for).
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadDaemonConfig } from '../src/daemon/config.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { classifySource } from '../src/fleet/actions.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { runCli, tempStore } from './helpers/cli.js';
import { startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { startHttpReceiver, type HttpReceiver } from './helpers/receivers.js';

const SECRET = 'daemon-test-hmac-secret';

describe('the daemon killed mid-delivery', () => {
  let receiver: HttpReceiver;
  let store: Store;
  let config: string;
  let env: Record<string, string>;

  before(async () => {
    receiver = await startHttpReceiver();
    const { dir, db } = tempStore();
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        `store: { sqlite: ${db} }`,
        // Ticks every second (each dispatches the outbox); ingest never runs by itself.
        "schedule: { ingest: '0 0 1 1 *', tick: '* * * * * *' }",
        'notifications:',
        '  poll_seconds: 0.2',
        '  timeout_seconds: 120',
        '  channels:',
        '    hook: { type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET }',
      ].join('\n'),
    );
    env = { DMARC_ROLLOUT_DB: db, HOOK_URL: `${receiver.url}/hook`, HOOK_SECRET: SECRET };
    store = await openSqliteStore(db);
  });
  after(async () => {
    await store.close();
    await receiver.close();
  });

  const allow = (source: string) => classifySource(store, null, source, 'authorised', { actor: 'cli:carol', now: new Date() }, null);

  it('delivers every message after a restart, repeating only the one in flight, under its idempotency key', async () => {
    for (const source of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) await allow(source);
    // The first delivery attempt hangs: the receiver holds the request open until the daemon is killed.
    receiver.respond = ({ count }) => (count === 0 ? 'hang' : 200);

    const first = startDaemonProcess(config, env);
    await waitFor('the first delivery to reach the receiver', () => receiver.requests.length === 1, 60_000);
    // Events written while the delivery hangs go into the next tick's digest, queued behind it.
    await allow('198.51.100.0/24');
    await allow('dkim:esp.example');
    const messages = () => store.db.selectFrom('notification_messages').selectAll().orderBy('id').execute();
    await waitFor('the second digest to be queued', async () => (await messages()).length === 2, 30_000);
    first.child.kill('SIGKILL');
    await first.exited;

    const afterKill = await messages();
    assert.deepEqual(
      afterKill.map((m) => [m.status, m.attempts]),
      [
        ['pending', 0],
        ['pending', 0],
      ],
      `nothing was recorded as delivered: ${first.output()}`,
    );
    const events = await store.db.selectFrom('notification_events').select(['id', 'dispatched_at']).orderBy('id').execute();
    assert.equal(events.length, 5);
    assert.ok(events.every((e) => e.dispatched_at !== null));

    const second = startDaemonProcess(config, env);
    try {
      await waitFor('both messages delivered after the restart', async () => (await messages()).every((m) => m.status === 'delivered'), 60_000);
    } finally {
      second.child.kill('SIGTERM');
    }
    assert.equal(await second.exited, 0, second.output());

    const keys = afterKill.map((m) => m.key);
    const bodies = receiver.requests.map((r) => JSON.parse(r.body) as { id: string; domains: Array<{ events: Array<{ id: number }> }> });
    assert.deepEqual(
      bodies.map((b) => b.id),
      [keys[0], keys[0], keys[1]],
      'the message in flight is sent again under the same key; nothing else twice',
    );
    for (const r of receiver.requests) {
      const timestamp = String(r.headers['x-dmarc-rollout-timestamp']);
      assert.equal(r.headers['x-dmarc-rollout-signature'], `v1=${createHmac('sha256', SECRET).update(`${timestamp}.${r.body}`).digest('hex')}`);
    }
    const delivered = bodies.slice(1).flatMap((b) => b.domains.flatMap((d) => d.events.map((e) => e.id)));
    assert.deepEqual(
      delivered,
      events.map((e) => e.id),
      'every event arrived once, in order',
    );
  });

  it('delivers what a `daemon --once` run announced before it exits', async () => {
    const before = receiver.requests.length;
    await allow('203.0.113.0/24');
    const once = await runCli(['daemon', '--config', config, '--once'], env);
    assert.equal(once.code, 0, once.stderr);
    assert.equal(receiver.requests.length, before + 1);
    const body = JSON.parse(receiver.requests.at(-1)!.body);
    assert.match(body.domains[0].events[0].detail, /203\.0\.113\.0\/24/);
    const pending = await store.db.selectFrom('notification_messages').select('status').where('status', '!=', 'delivered').execute();
    assert.deepEqual(pending, []);
  });
});

describe('the summary schedule', () => {
  it('queues the summary to its channels on its cron schedule, and the sender delivers it', async () => {
    const receiver = await startHttpReceiver();
    const { dir, db } = tempStore();
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      [
        `store: { sqlite: ${db} }`,
        "schedule: { ingest: '0 0 1 1 *', tick: '0 0 1 1 *' }",
        'notifications:',
        '  poll_seconds: 0.2',
        "  summary: { schedule: '* * * * * *', channels: [team], since_days: 7 }",
        '  channels:',
        '    team: { type: teams, url_env: TEAMS_URL }',
      ].join('\n'),
    );
    const daemon = await startDaemon(loadDaemonConfig(file, { TEAMS_URL: `${receiver.url}/workflows/x` }), { logger: pino({ level: 'silent' }), serve: false });
    try {
      await waitFor('a summary to arrive', () => receiver.requests.length > 0, 15_000);
    } finally {
      await daemon.stop();
    }
    const card = JSON.parse(receiver.requests[0]!.body).attachments[0].content;
    assert.match(card.body[0].text, /^dmarc-rollout summary .*: 0 domains, 0 waiting for a person$/);
    await receiver.close();
  });
});
