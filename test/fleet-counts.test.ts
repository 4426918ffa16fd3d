/**
 * The metrics' fleet counts, read a range of names (or report ids) a
 * statement, equal one statement over everything: ranges cover every name
 * and id once, and a report still being staged is not yet a stored report.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { domainsPerStage, storedReports } from '../src/store/fleet-counts.js';
import { ingestInput } from '../src/reports/index.js';
import { storeDialects } from './helpers/dialects.js';
import { tempStore } from './helpers/cli.js';
import { domainRow } from './helpers/domain-rows.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

const NOW = new Date('2026-05-06T12:00:00Z');
const STATES = ['active', 'paused', 'halted', 'completed'] as const;

for (const dialect of storeDialects()) {
  describe(`fleet counts by ranges on ${dialect.name}`, () => {
    it('sum to what one statement counts, for every range size', async () => {
      const store = await dialect.open();
      try {
        const names = Array.from({ length: 11 }, (_, i) => `d${String.fromCharCode(97 + i)}.example`);
        await store.db
          .insertInto('domains')
          .values(
            names.map((domain, i) => domainRow(domain, NOW, { plan: i % 3 === 0 ? 'careful' : 'default', stage_index: i % 4, state: STATES[i % STATES.length]! })),
          )
          .execute();
        // Reports of enrolled domains, and of domains nobody enrolled sorting before and after every enrolled name.
        const reported = [...names.filter((_, i) => i % 2 === 0), 'aa-unenrolled.example', 'zz-unenrolled.example'];
        const { dir } = tempStore();
        for (const domain of reported) {
          const xml = aggregateReportXml({ reporter: 'isp.example', domain, day: '2026-05-05', rows: [cleanRow(domain, '192.0.2.1', 5)] });
          assert.equal((await ingestInput(store.db, { bytes: Buffer.from(xml) }, domain, { rejectedDir: `${dir}/rejected`, now: () => NOW })).status, 'stored');
        }
        // A report half way through being staged (SQLite's ingest; its domain is set when it is stored).
        await store.db
          .insertInto('reports')
          .values({ org: 'isp.example', report_id: 'staged-1', domain: '', begin: 1, end: 2, content_hash: 'pending:x', counted: 0, flag: null, rows_digest: null, adkim: 'r', aspf: 'r', duplicates: 0, source: 'x', container: null, repaired: null, metadata: '{}', received_at: NOW.toISOString(), staged_at: NOW.getTime() })
          .execute();

        const whole = await store.db.selectFrom('domains').select(['plan', 'stage_index', 'state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy(['plan', 'stage_index', 'state']).execute();
        const key = (r: { plan: string; stage_index: number; state: string }) => `${r.plan} ${r.stage_index} ${r.state}`;
        const expected = whole.map((r) => `${key(r)} ${Number(r.n)}`).sort();
        for (const range of [1, 2, 3, 5, 11, 2000]) {
          assert.deepEqual((await domainsPerStage(store.db, range)).map((r) => `${key(r)} ${r.domains}`).sort(), expected, `range ${range}`);
          assert.equal(await storedReports(store.db, range), reported.length, `id range ${range}`);
        }
      } finally {
        await store.close();
      }
    });
  });
}
