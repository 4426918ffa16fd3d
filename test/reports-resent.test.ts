/**
 * One report counted once: a report its reporter re-sends under a new
 * report_id (records in another order, another XML layout, gzipped) is
 * stored, flagged with the copy it repeats and not counted; a reporter that
 * splits a day into two reports with other rows has both counted. On a real
 * store through the real ingest; what the engine reads back is checked too.
 * On SQLite and on Postgres (one suite looped over the dialects, a fresh
 * store per test), the migration that backfilled the digests included.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { RowsDigest } from '../src/report-model/digest.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { readReport } from '../src/reports/parse.js';
import { migrations } from '../src/store/migrations.js';
import { loadObservedRows } from '../src/store/observations.js';
import type { Store } from '../src/store/open.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { dayStart, ownServer, rotatedBadly, senderReportXml, type SenderReport } from './helpers/sender-reports.js';

/** A fresh store of the dialect (closed when the file's tests are done) and the real ingest into it. */
async function fresh(dialect: StoreDialect): Promise<{ store: Store; ingest(bytes: Buffer, source: string): Promise<IngestResult> }> {
  const dir = tempDir('dmarc-rollout-resent-');
  const store = await dialect.open();
  return { store, ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: join(dir, 'rejected') }) };
}

const D = 'resent.example';
const DAY = '2026-03-04';
const original: SenderReport = {
  org: 'Enterprise Outlook',
  reportId: 'a1b2c3',
  domain: D,
  day: DAY,
  rows: [ownServer(D, '192.0.2.10', 700), rotatedBadly(D, '198.51.100.20', 40), ownServer(D, '2001:db8::25', 90)],
  layout: 'pretty',
};
const messagesOn = async (store: Store) =>
  (await loadObservedRows(store.db, D, { fromEpoch: dayStart(DAY), toEpoch: dayStart(DAY) + 86_400 })).reduce((n, r) => n + r.count, 0);

for (const dialect of storeDialects()) describe(`a report re-sent under a new report_id, on ${dialect.name}`, () => {
  it('is stored, flagged with the copy it repeats, and not counted, whatever its record order, layout or container', async () => {
    const { store, ingest } = await fresh(dialect);
    const first = await ingest(Buffer.from(senderReportXml(original)), 'first.xml');
    assert.equal(first.status, 'stored');
    assert.equal(first.status === 'stored' && first.counted, true);

    const resent = senderReportXml({ ...original, reportId: 'a1b2c3-retry', rows: [...original.rows].reverse(), layout: 'compact' });
    assert.notEqual(resent, senderReportXml(original));
    const again = await ingest(gzipSync(Buffer.from(resent)), 'retry.xml.gz');
    assert.equal(again.status, 'stored', JSON.stringify(again));
    if (again.status !== 'stored' || first.status !== 'stored') return;
    assert.equal(again.counted, false);
    assert.match(again.flag ?? '', new RegExp(`^re-sent copy: same reporter, domain, date range and rows as #${first.id} \\(report_id a1b2c3\\) under a new report_id; #${first.id} is the one counted$`));

    // The engine sees the day's mail once.
    assert.equal(await messagesOn(store), 830);
    // A third copy under yet another id (its org_name in other case) is flagged too, naming the counted one.
    const third = await ingest(Buffer.from(senderReportXml({ ...original, org: 'enterprise outlook', reportId: 'a1b2c3-third' })), 'third.xml');
    assert.equal(third.status === 'stored' && third.counted, false);
    assert.match(third.status === 'stored' ? third.flag ?? '' : '', new RegExp(`as #${first.id} `));
    assert.equal(await messagesOn(store), 830);
    // The same bytes again are still a plain duplicate.
    assert.equal((await ingest(Buffer.from(senderReportXml(original)), 'first-again.xml')).status, 'duplicate');
  });

  it('a day split into two reports with disjoint rows counts both; other counts, another reporter or another day count too', async () => {
    const { store, ingest } = await fresh(dialect);
    const [a, b, c] = original.rows;
    const morning = await ingest(Buffer.from(senderReportXml({ ...original, reportId: 'part-1', rows: [a!, b!] })), 'part-1.xml');
    const evening = await ingest(Buffer.from(senderReportXml({ ...original, reportId: 'part-2', rows: [c!] })), 'part-2.xml');
    assert.deepEqual([morning.status === 'stored' && morning.counted, evening.status === 'stored' && evening.counted], [true, true]);
    assert.equal(await messagesOn(store), 830);

    // Same rows but one count differs: a different report, counted.
    const recount = await ingest(Buffer.from(senderReportXml({ ...original, reportId: 'part-3', rows: [a!, { ...b!, count: 41 }] })), 'part-3.xml');
    assert.equal(recount.status === 'stored' && recount.counted, true);
    // Another reporter with the same rows is another receiver's view of other mail.
    const other = await ingest(Buffer.from(senderReportXml({ ...original, org: 'google.com', reportId: 'part-1', rows: [a!, b!] })), 'google.xml');
    assert.equal(other.status === 'stored' && other.counted, true);
    // The next day with the same rows (a steady sender) counts.
    const next = await ingest(Buffer.from(senderReportXml({ ...original, day: '2026-03-05', reportId: 'part-1-next', rows: [a!, b!] })), 'next.xml');
    assert.equal(next.status === 'stored' && next.counted, true);
  });
});

for (const dialect of storeDialects()) describe(`migration 0005_report_identity, on ${dialect.name}`, () => {
  it('backfills the rows digest and alignment modes of reports stored before it, leaving what was counted as it was', async () => {
    // An empty store, migrated here only as far as before 0005.
    const location = await dialect.location();
    const kysely = new Kysely<any>({
      dialect: location.kind === 'sqlite' ? new SqliteDialect({ database: new SqliteDatabase(location.path) }) : new PostgresDialect({ pool: new pg.Pool({ ...location.connection, ssl: false, max: 1 }) }),
    });
    const all = migrations(dialect.name);
    for (const name of Object.keys(all).filter((n) => n < '0005')) await all[name]!.up(kysely);
    // A report as the store wrote it before 0005.
    const xml = Buffer.from(senderReportXml(original));
    const parsed = await readReport({ bytes: xml });
    const { id } = await kysely
      .insertInto('reports')
      .values({ org: original.org, report_id: original.reportId, domain: D, begin: dayStart(DAY), end: dayStart(DAY) + 86_399, content_hash: parsed.contentHash, counted: 1, flag: null, duplicates: 0, source: 'old', container: null, repaired: null, metadata: JSON.stringify({ policy_published: parsed.header.policy }), received_at: '2026-03-05T06:00:00Z' })
      .returning('id')
      .executeTakeFirstOrThrow();
    const expected = new RowsDigest();
    await readReport(
      { bytes: xml },
      {
        sink: {
          records: async (batch) => {
            for (const r of batch) {
              expected.add(r);
              await kysely
                .insertInto('report_rows')
                .values({ report: id, source_ip: r.source_ip, count: r.count, disposition: r.disposition, dkim: r.dkim, spf: r.spf, header_from: r.header_from, envelope_from: r.envelope_from, envelope_to: r.envelope_to, reasons: JSON.stringify(r.reasons), auth_dkim: JSON.stringify(r.auth_dkim), auth_spf: JSON.stringify(r.auth_spf) })
                .execute();
            }
          },
        },
      },
    );
    await all['0005_report_identity']!.up(kysely);
    const row = await kysely.selectFrom('reports').select(['rows_digest', 'adkim', 'aspf', 'counted']).where('id', '=', id).executeTakeFirstOrThrow();
    assert.deepEqual(row, { rows_digest: expected.digest(), adkim: 'r', aspf: 'r', counted: 1 });
    await kysely.destroy();
  });
});
