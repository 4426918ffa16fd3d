/**
 * What several daemons on one store share, on SQLite and Postgres: instances
 * and their heartbeats (a beat renews every lease the instance holds; one
 * that stops beating loses them a lease time later; a clean stop gives them
 * back), the fence on DNS writes (an instance that lost a domain's lease
 * writes nothing), and the outbox (a message claimed by one sender is not sent by
 * another; a claim left by a sender that died is taken over; events
 * dispatched by two instances at once go into one digest each). A daemon
 * starting on SQLite forgets the daemons registered before it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadDaemonConfig } from '../src/daemon/config.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { LeaseFence } from '../src/daemon/fence.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { AppError } from '../src/errors.js';
import { dispatchEvents } from '../src/notify/outbox.js';
import { beat, deregisterInstance, listInstances, pruneInstances, registerInstance } from '../src/store/instances.js';
import { claimLease, leaseOf } from '../src/store/leases.js';
import { insertEvent, insertMessage } from '../src/store/notifications.js';
import { claimNextMessage, settleDelivered, settleFailed } from '../src/store/outbox-claims.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { storeDialects } from './helpers/dialects.js';

const T0 = new Date('2026-07-01T10:00:00Z');
const SECOND = 1000;
const at = (seconds: number) => new Date(T0.getTime() + seconds * SECOND);
const alpha = { id: 'node-a-1-aaaaaa', host: 'node-a', pid: 1 };
const beta = { id: 'node-b-1-bbbbbb', host: 'node-b', pid: 1 };

for (const dialect of storeDialects()) {
  describe(`instances and outbox claims on ${dialect.name}`, () => {
    let store: Store;
    before(async () => {
      store = await dialect.open();
    });
    after(async () => {
      await store?.close();
    });

    it('a beat renews the leases its instance holds; an instance that stops beating loses them a lease time later; a clean stop gives them back', async () => {
      await registerInstance(store.db, alpha, T0);
      await registerInstance(store.db, beta, T0);
      assert.equal(await claimLease(store.db, 'domain:a.example', alpha.id, T0, 10 * SECOND), true);
      assert.equal(await claimLease(store.db, 'source:imap', alpha.id, T0, 10 * SECOND), true);
      assert.equal(await claimLease(store.db, 'domain:b.example', beta.id, T0, 10 * SECOND), true);
      // Alpha beats on for a minute, long past its first lease time: it keeps what it holds.
      for (let s = 3; s <= 60; s += 3) assert.equal(await beat(store.db, alpha, at(s), 10 * SECOND), 2);
      assert.equal(await claimLease(store.db, 'domain:a.example', beta.id, at(61), 10 * SECOND), false);
      assert.equal((await leaseOf(store.db, 'domain:a.example'))?.holder, alpha.id);
      // Beta never beat after T0: its lease ran out at T0 + 10 s and alpha takes the domain over.
      assert.equal(await claimLease(store.db, 'domain:b.example', alpha.id, at(11), 10 * SECOND), true);
      const listed = await listInstances(store.db, at(61), 10 * SECOND);
      assert.deepEqual(
        listed.map((i) => [i.id, i.live, i.leases]),
        [
          [alpha.id, true, ['domain:a.example', 'source:imap']],
          [beta.id, false, []],
        ],
      );
      // A clean stop: the row and every lease go, at once.
      await deregisterInstance(store.db, alpha.id);
      assert.equal(await claimLease(store.db, 'source:imap', beta.id, at(62), 10 * SECOND), true);
      assert.equal(await leaseOf(store.db, 'domain:b.example'), undefined);
      // A gone instance is forgotten once it is old enough; a late beat registers it again.
      assert.equal(await pruneInstances(store.db, at(100)), 1);
      assert.deepEqual(await listInstances(store.db, at(100), 10 * SECOND), []);
      assert.equal(await beat(store.db, beta, at(101), 10 * SECOND), 1, 'beta still held source:imap');
      assert.deepEqual((await listInstances(store.db, at(101), 10 * SECOND)).map((i) => [i.id, i.live]), [[beta.id, true]]);
      await deregisterInstance(store.db, beta.id);
    });

    it('a DNS write is fenced by the domain\'s lease: refused while another instance holds it, made once the lease is this one\'s', async () => {
      const dns = new MemoryDns();
      let clock = at(0);
      const fenceOf = (holder: string) => new LeaseFence({ db: store.db, holder, leaseMs: 10 * SECOND, now: () => clock });
      assert.equal(await claimLease(store.db, 'domain:fenced.example', beta.id, clock, 10 * SECOND), true, 'beta took the domain over');
      const stale = fenceOf(alpha.id);
      const wrapped = stale.wrap(dns, 'fenced.example');
      await assert.rejects(wrapped.writeTxt('_dmarc.fenced.example', ['v=DMARC1; p=none'], { ttl: 60 }), (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'conflict');
        assert.match(error.message, /lost the lease on fenced\.example before writing/);
        return true;
      });
      assert.deepEqual(dns.writes, [], 'nothing reached DNS');
      assert.deepEqual(await wrapped.readTxt('_dmarc.fenced.example'), [], 'reads pass through');
      assert.equal(stale.unwrap(wrapped), dns, 'the provider set still knows its settings by the original');
      await fenceOf(beta.id).wrap(dns, 'fenced.example').writeTxt('_dmarc.fenced.example', ['v=DMARC1; p=none'], { ttl: 60 });
      assert.equal(dns.writes.length, 1, 'the holder writes');
      // Beta is gone and its lease ran out: alpha's write retakes it and goes through.
      clock = at(11);
      await wrapped.writeTxt('_dmarc.fenced.example', ['v=DMARC1; p=quarantine'], { ttl: 60 });
      assert.equal(dns.writes.length, 2);
      assert.equal((await leaseOf(store.db, 'domain:fenced.example'))?.holder, alpha.id);
    });

    it('a claimed message is not sent by another sender; a dead sender\'s claim is taken over; its late answer changes nothing', async () => {
      const created = T0.toISOString();
      for (const key of ['m1', 'm2']) await insertMessage(store.db, { key, channel: 'ops', kind: 'test', createdAt: created, content: {}, eventCount: 0 });
      const first = await claimNextMessage(store.db, store.dialect, 'ops', alpha.id, at(1), 30 * SECOND);
      assert.ok('claimed' in first && first.claimed.key === 'm1' && first.takenOverFrom === null);
      const second = await claimNextMessage(store.db, store.dialect, 'ops', beta.id, at(2), 30 * SECOND);
      if (store.dialect === 'postgres') {
        // The channel delivers in order: m1 is alpha's, so beta claims nothing, not even m2.
        assert.deepEqual(second, { busy: alpha.id });
        const later = await claimNextMessage(store.db, store.dialect, 'ops', beta.id, at(32), 30 * SECOND);
        assert.ok('claimed' in later && later.claimed.key === 'm1' && later.takenOverFrom === alpha.id, 'alpha went quiet past its claim');
      } else {
        // One daemon per SQLite store (its lock file): a claim by another holder is a dead daemon's.
        assert.ok('claimed' in second && second.claimed.key === 'm1' && second.takenOverFrom === alpha.id);
      }
      // Alpha comes back late: its failure does not push back beta's schedule.
      assert.equal(await settleFailed(store.db, first.claimed.id, alpha.id, { at: at(40).toISOString(), error: 'late', nextAttemptAt: at(3600).toISOString(), giveUp: false }), false);
      assert.equal(await settleDelivered(store.db, first.claimed.id, beta.id, at(41).toISOString()), true);
      const rows = await store.db.selectFrom('notification_messages').select(['key', 'status', 'attempts', 'claimed_by', 'next_attempt_at']).orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => [r.key, r.status, r.attempts, r.claimed_by]),
        [
          ['m1', 'delivered', 1, null],
          ['m2', 'pending', 0, null],
        ],
      );
      const next = await claimNextMessage(store.db, store.dialect, 'ops', alpha.id, at(42), 30 * SECOND);
      assert.ok('claimed' in next && next.claimed.key === 'm2');
      // A failure under a claim still held is recorded and ends the claim; the message waits for its backoff.
      assert.equal(await settleFailed(store.db, next.claimed.id, alpha.id, { at: at(43).toISOString(), error: 'HTTP 503', nextAttemptAt: at(100).toISOString(), giveUp: false }), true);
      assert.deepEqual(await claimNextMessage(store.db, store.dialect, 'ops', beta.id, at(44), 30 * SECOND), { idle: true, nextAttemptAt: at(100).toISOString() });
    });

    it('two instances sending at once send each message once', async () => {
      for (let i = 0; i < 20; i++) await insertMessage(store.db, { key: `race-${i}`, channel: 'race', kind: 'test', createdAt: T0.toISOString(), content: {}, eventCount: 0 });
      const sent: string[] = [];
      const sender = async (holder: string) => {
        for (let guard = 0; guard < 200; guard++) {
          const answer = await claimNextMessage(store.db, store.dialect, 'race', holder, at(1), 30 * SECOND);
          if ('idle' in answer) return;
          if ('busy' in answer) {
            await new Promise((r) => setTimeout(r, 2));
            continue;
          }
          sent.push(answer.claimed.key);
          await new Promise((r) => setTimeout(r, 1));
          await settleDelivered(store.db, answer.claimed.id, holder, at(1).toISOString());
        }
      };
      // On SQLite one daemon sends (two would take each other's claims over by design); on Postgres three race.
      await Promise.all(store.dialect === 'postgres' ? [sender('a'), sender('b'), sender('c')] : [sender('a')]);
      assert.deepEqual(sent, Array.from({ length: 20 }, (_, i) => `race-${i}`), 'each once, in order');
    });

    it('events dispatched by two instances at once go into one digest each', async () => {
      for (let i = 0; i < 40; i++) {
        await insertEvent(store.db, { type: 'halted', severity: 'critical', domain: `e${i}.example`, at: T0.toISOString(), title: `halted ${i}`, detail: 'd' }, []);
      }
      const settings = { baseUrl: null, channels: [{ name: 'all', type: 'webhook' as const, url: 'http://127.0.0.1:9/', secret: 's', filter: { events: null, minSeverity: 'info' as const, tags: null } }] };
      const results = await Promise.all([dispatchEvents(store, settings, at(5)), dispatchEvents(store, settings, at(5))]);
      assert.equal(results.reduce((n, r) => n + r.events, 0), 40);
      const messages = await store.db.selectFrom('notification_messages').select(['content', 'event_count']).where('channel', '=', 'all').execute();
      assert.equal(messages.reduce((n, m) => n + m.event_count, 0), 40, 'no event in two digests');
    });
  });
}

describe('a daemon starting on SQLite', () => {
  it('forgets the daemons registered before it (the lock file proves them dead) and their leases, so nothing waits a lease time', async () => {
    const { dir, db } = tempStore();
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `store: { sqlite: ${db} }\nproviders: { hand: { type: manual } }\n`);
    const crashed = await openSqliteStore(db);
    await registerInstance(crashed.db, alpha, new Date());
    assert.equal(await claimLease(crashed.db, 'domain:left.example', alpha.id, new Date(), 3_600_000), true);
    await crashed.close();
    const daemon = await startDaemon(loadDaemonConfig(file, {}), { logger: pino({ level: 'silent' }), serve: false });
    try {
      const listed = await listInstances(daemon.store.db, new Date(), 60_000);
      assert.deepEqual(listed.map((i) => i.id), [daemon.instanceId]);
      assert.equal(await leaseOf(daemon.store.db, 'domain:left.example'), undefined);
      assert.equal(daemon.health().live_instances, 1);
    } finally {
      await daemon.stop();
    }
  });
});
