/** Pausing a domain with a change queued but not yet written keeps the change queued; a record edited by hand halts. On SQLite and Postgres. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs } from '../src/engine/apply.js';
import { force, pause } from '../src/fleet/actions.js';
import { loadPlan } from '../src/plans/index.js';
import { storeDialects } from './helpers/dialects.js';
import { createWorld } from './helpers/world.js';

const ENROLLED = new Date('2026-03-01T09:00:00Z');

for (const dialect of storeDialects()) {
  describe(`pause and drift on ${dialect.name}`, () => {
    it('pause stops a queued change that nothing has written yet', async () => {
      const w = await createWorld({ dialect, start: ENROLLED });
      await w.enrol(['example.com']);
      const T0 = new Date('2026-03-02T10:00:00Z');
      await w.tick(T0);
      // A queued force (or the engine's own advance waiting out a failed write), then a person pauses.
      w.dns.failWrites = new Error('provider down');
      await force(w.store, 'example.com', loadPlan, { actor: 'cli:alice', now: T0 }, { to: 'quarantine:25', reason: 'customer asked' });
      await w.tick(); // write fails: intent pending, backing off
      await pause(w.store, 'example.com', { actor: 'cli:bob', now: new Date(T0.getTime() + 1000) }, 'incident: stop everything');
      w.dns.failWrites = null;
      await w.tick(new Date(T0.getTime() + backoffMs(1, 'example.com')));
      const row = await w.row();
      assert.equal(w.dns.writes.length, 1, 'only the establishing write: nothing moves while paused');
      assert.equal(row.stage_index, 0);
      assert.deepEqual(await w.dns.readTxt('_dmarc.example.com'), ['v=DMARC1; p=none; rua=mailto:dmarc@reports.example']);
      await w.close();
    });

    it('a record edited by hand while the domain holds stops it at the next tick, without a write', async () => {
      const w = await createWorld({ dialect, start: ENROLLED });
      await w.enrol(['example.com']);
      await w.tick(new Date('2026-03-02T10:00:00Z'));
      w.dns.set('_dmarc.example.com', { txt: ['v=DMARC1; p=reject'], ttl: 300 });
      const result = await w.tickOne(new Date('2026-03-03T10:00:00Z'));
      assert.match(result.error ?? '', /^drift: _dmarc\.example\.com is "v=DMARC1; p=reject", not what this program last wrote \("v=DMARC1; p=none; rua=mailto:dmarc@reports\.example"\)/);
      const row = await w.row();
      assert.deepEqual([row.state, w.dns.writes.length], ['halted', 1]);
      await w.close();
    });
  });
}
