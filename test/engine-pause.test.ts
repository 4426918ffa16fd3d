/** Pausing a domain with a change queued but not yet written keeps the change queued. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { backoffMs } from '../src/engine/apply.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { force, pause } from '../src/fleet/actions.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { getDomain } from '../src/store/domains.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';

it('pause stops a queued change that nothing has written yet', async () => {
  const plan = loadPlan('default');
  const store = await openSqliteStore(tempStore().db);
  const dns = new MemoryDns();
  await enrollDomains(store, { inputs: [{ text: 'example.com', origin: 'argv' }], plan, provider: 'memory', providers: { names: ['memory'], get: () => dns }, reportAddress: 'dmarc@reports.example', actor: 'test', now: new Date('2026-03-01T09:00:00Z') });
  const T0 = new Date('2026-03-02T10:00:00Z');
  await runTick({ store, now: T0, providerFor: () => dns });
  // A queued force (or the engine's own advance waiting out a failed write), then a person pauses.
  dns.failWrites = new Error('provider down');
  await force(store, 'example.com', loadPlan, { actor: 'cli:alice', now: T0 }, { to: 'quarantine:25', reason: 'customer asked' });
  await runTick({ store, now: T0, providerFor: () => dns }); // write fails: intent pending, backing off
  await pause(store, 'example.com', { actor: 'cli:bob', now: new Date(T0.getTime() + 1000) }, 'incident: stop everything');
  dns.failWrites = null;
  await runTick({ store, now: new Date(T0.getTime() + backoffMs(1, 'example.com')), providerFor: () => dns });
  const row = (await getDomain(store.db, 'example.com'))!;
  assert.equal(dns.writes.length, 1, 'only the establishing write: nothing moves while paused');
  assert.equal(row.stage_index, 0);
  assert.deepEqual(await dns.readTxt('_dmarc.example.com'), ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example']);
  await store.close();
});

it('a record edited by hand while the domain holds stops it at the next tick, without a write', async () => {
  const plan = loadPlan('default');
  const store = await openSqliteStore(tempStore().db);
  const dns = new MemoryDns();
  await enrollDomains(store, { inputs: [{ text: 'example.com', origin: 'argv' }], plan, provider: 'memory', providers: { names: ['memory'], get: () => dns }, reportAddress: 'dmarc@reports.example', actor: 'test', now: new Date('2026-03-01T09:00:00Z') });
  await runTick({ store, now: new Date('2026-03-02T10:00:00Z'), providerFor: () => dns });
  dns.set('_dmarc.example.com', { txt: ['v=DMARC1; p=reject'], ttl: 300 });
  const [result] = await runTick({ store, now: new Date('2026-03-03T10:00:00Z'), providerFor: () => dns });
  assert.match(result!.error ?? '', /^drift: _dmarc\.example\.com is "v=DMARC1; p=reject", not what this program last wrote \("v=DMARC1; p=none; rua=mailto:dmarc@reports\.example"\)/);
  const row = (await getDomain(store.db, 'example.com'))!;
  assert.deepEqual([row.state, dns.writes.length], ['halted', 1]);
  await store.close();
});
