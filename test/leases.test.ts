/**
 * Leases on SQLite and Postgres: two instances ticking one store at once
 * never work the same domain at the same time and change no domain twice;
 * a lease left by an instance that died runs out and is taken over; a
 * holder that comes back late cannot give away a lease it lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { claimLease, leaseOf, releaseLease } from '../src/store/leases.js';
import type { Store } from '../src/store/open.js';
import { storeDialects } from './helpers/dialects.js';
import { createWorld, type World } from './helpers/world.js';

const T0 = new Date('2026-07-01T10:00:00Z');
const MINUTE = 60_000;

for (const dialect of storeDialects()) {
  describe(`leases on ${dialect.name}`, () => {
    let w: World;
    let store: Store;
    before(async () => {
      w = await createWorld({ dialect, start: new Date(T0.getTime() - MINUTE) });
      store = w.store;
    });
    after(async () => {
      await w?.close();
    });

    it('one holder at a time; a lease that ran out is taken over; the old holder cannot give it back', async () => {
      assert.equal(await claimLease(store.db, 'domain:a.example', 'alpha', T0, 10 * MINUTE), true);
      assert.equal(await claimLease(store.db, 'domain:a.example', 'beta', new Date(T0.getTime() + 5 * MINUTE), 10 * MINUTE), false);
      assert.equal(await claimLease(store.db, 'domain:a.example', 'alpha', new Date(T0.getTime() + 5 * MINUTE), 10 * MINUTE), true, 'the holder renews');
      const later = new Date(T0.getTime() + 16 * MINUTE);
      assert.equal(await claimLease(store.db, 'domain:a.example', 'beta', later, 10 * MINUTE), true, 'alpha went quiet past its lease');
      await releaseLease(store.db, 'domain:a.example', 'alpha');
      assert.equal((await leaseOf(store.db, 'domain:a.example'))?.holder, 'beta');
      // Many asking at once: exactly one yes.
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => claimLease(store.db, 'source:inbox', `i${i}`, T0, MINUTE)));
      assert.equal(answers.filter(Boolean).length, 1);
    });

    it('two instances ticking together establish each domain once; a domain whose lease a dead instance holds waits for it to run out', async () => {
      const dns = w.dns;
      const names = Array.from({ length: 12 }, (_, i) => `lease${i}.example`);
      await w.enrol(names);
      // An instance that died holding lease0's lease a minute ago.
      assert.equal(await claimLease(store.db, 'domain:lease0.example', 'dead', new Date(T0.getTime() - MINUTE), 10 * MINUTE), true);
      const tick = (holder: string, at: Date) => w.tick(at, { lease: { holder, ttlMs: 10 * MINUTE, now: () => at } });
      const [a, b] = await Promise.all([tick('alpha', T0), tick('beta', T0)]);
      const worked = [...a, ...b].filter((r) => !r.skipped && r.domain !== 'lease0.example');
      const established = await store.db.selectFrom('stage_history').select(['domain', 'action']).where('domain', 'in', names).where('action', '!=', 'enroll').execute();
      assert.deepEqual(established.map((h) => h.domain).sort(), names.slice(1).sort(), 'every domain but the leased one established, each once');
      assert.ok(worked.length >= names.length - 1);
      assert.equal(dns.writes.length, names.length - 1, 'one DNS write per domain');
      assert.deepEqual(
        [...a, ...b].filter((r) => r.domain === 'lease0.example').map((r) => r.skipped),
        ['another instance holds its lease', 'another instance holds its lease'],
      );
      assert.equal(await store.db.selectFrom('intents').select('domain').where('domain', 'in', names).executeTakeFirst(), undefined, 'nothing left in flight');
      assert.equal(await store.db.selectFrom('leases').select('name').where('name', 'like', 'domain:lease%').where('holder', '!=', 'dead').executeTakeFirst(), undefined, 'every lease given back');

      // Past the dead instance's lease, the next tick takes lease0 over.
      const later = new Date(T0.getTime() + 10 * MINUTE);
      const c = await tick('alpha', later);
      assert.equal(c.find((r) => r.domain === 'lease0.example')?.skipped, undefined);
      assert.equal(dns.writes.filter((w) => w.fqdn === '_dmarc.lease0.example').length, 1);
      assert.equal(dns.writes.length, names.length, 'still one write per domain');
    });
  });
}
