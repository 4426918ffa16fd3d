/**
 * The domain page's daily chart counts a domain's own mail and that of its
 * subdomains that follow its record, but not the mail of a subdomain that is
 * enrolled on its own (nor of that one's subdomains): the same attribution
 * the engine judges by, found by name rather than by reading the fleet.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { domainView } from '../src/fleet/views.js';
import { loadPlan } from '../src/plans/index.js';
import { storeDialects } from './helpers/dialects.js';
import { cleanRow } from './helpers/reports.js';
import { createWorld } from './helpers/world.js';

const T0 = new Date('2026-05-04T10:00:00Z');

for (const dialect of storeDialects()) {
  describe(`the daily chart and enrolled subdomains on ${dialect.name}`, () => {
    it('counts the domain and its following subdomains, not an enrolled subdomain or the ones under it', async () => {
      const w = await createWorld({ dialect, start: T0, plan: loadPlan('default') });
      assert.deepEqual((await w.enrol(['example.com', 'shop.example.com'])).enrolled, ['example.com', 'shop.example.com']);
      // Established at p=none with no sp=: subdomains follow the domain's record.
      for (const r of await w.tick(T0)) assert.equal(r.apply?.status, 'verified', JSON.stringify(r));
      await w.sendReports([
        {
          reporter: 'isp.example',
          domain: 'example.com',
          day: '2026-05-05',
          rows: [
            cleanRow('example.com', '192.0.2.1', 50),
            cleanRow('news.example.com', '192.0.2.2', 7),
            cleanRow('shop.example.com', '192.0.2.3', 11),
            cleanRow('deep.shop.example.com', '192.0.2.4', 5),
          ],
        },
      ]);
      const at = new Date('2026-05-06T12:00:00Z');
      await w.runUntil(at);
      const view = (await domainView(w.store, 'example.com', at, { loadPlan }))!;
      const day = view.daily.find((d) => d.day === '2026-05-05');
      assert.equal(day?.messages, 57, JSON.stringify(view.daily));
      await w.close();
    });
  });
}
