/**
 * Cheap input, expensive work: each hole of the attack pass reproduced and
 * shown within its budget, through the real ingest on a real store. A 1 MB
 * gzip of XML comments, a small mail that expands to hundreds of thousands of
 * rows, counts up to 2^53 (which made the fleet's API answers fail their own
 * schema), and one reporter's flood: each refused and kept with the reason,
 * the rest going on.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { ReporterBudget } from '../src/reports/budget.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

const NOW = new Date('2026-06-15T12:00:00Z');

describe('input budgets', () => {
  let store: Store;
  let dir: string;
  let fleet: FleetFixture;
  let server: RunningApiServer;
  const viewer = generateToken();

  before(async () => {
    const temp = tempStore('dmarc-rollout-budgets-');
    dir = temp.dir;
    store = await openSqliteStore(temp.db);
    fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
    server = await startApiServer({
      config: { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 1024, trust_proxy: false },
      tokens: new TokenSet([{ name: 'vera', role: 'viewer', sha256: viewer.sha256 }]),
      logger: pino({ level: 'silent' }),
      context: { store, now: () => NOW, loadPlan: fleet.loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) },
    });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });

  const ingest = (bytes: Buffer, source: string, extra: { budget?: ReporterBudget } = {}) =>
    ingestInput(store.db, { bytes, ...extra }, source, { rejectedDir: join(dir, 'rejected'), now: () => NOW });
  const rejected = (r: IngestResult) => {
    assert.equal(r.status, 'rejected', JSON.stringify(r));
    return r as Extract<IngestResult, { status: 'rejected' }>;
  };
  const report = (id: string, rows: ReturnType<typeof cleanRow>[], day = '2026-06-14') =>
    aggregateReportXml({ reporter: 'isp.example', domain: fleet.steady, day, rows }).replace(/<report_id>[^<]*</, `<report_id>${id}<`);

  it('a 1 MB gzip of XML comments is refused within its budget of non-data characters', () => {
    // 1 GiB of small comments, gzipped as concatenated members of one compressed MiB each.
    const comments = '<!-- padding padding padding padding padding padding padding -->\n'.repeat(16_384);
    const member = gzipSync(Buffer.from(comments));
    const head = gzipSync(Buffer.from(`<?xml version="1.0"?>\n${comments}`));
    const bomb = Buffer.concat([head, ...Array.from({ length: Math.floor((1024 * 1024) / member.length) }, () => member)]);
    assert.ok(bomb.length > 900_000 && bomb.length < 1_200_000, `${bomb.length} bytes`);
    return ingest(bomb, 'bomb:comments').then((result) => {
      const r = rejected(result);
      assert.equal(r.kind, 'limit');
      assert.match(r.reason, /characters of comments, processing instructions or text outside the report \(limit\)/);
      console.log(`comment bomb: ${bomb.length} bytes of gzip refused after at most ${1024 * 1024} characters of comments`);
    });
  });

  it('a small mail that expands to 200,000 rows is refused as a decompression bomb, nothing stored', async () => {
    const rows = Array.from({ length: 200_000 }, () => cleanRow(fleet.steady, '192.0.2.77', 1));
    const gz = gzipSync(report('rows-bomb', rows), { level: 9 });
    const mail = Buffer.from(
      `From: dmarc@isp.example\r\nTo: dmarc@${fleet.steady}\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: application/gzip; name=r.xml.gz\r\nContent-Transfer-Encoding: base64\r\n\r\n${gz.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`,
    );
    assert.ok(mail.length < 600_000, `${mail.length} bytes`);
    const r = rejected(await ingest(mail, 'mail:rows-bomb'));
    assert.match(r.reason, /expands to more than .* \(over 100 times its size\); refused as a decompression bomb/);
    const stored = await store.db.selectFrom('reports').select('id').where('report_id', '=', 'rows-bomb').execute();
    assert.equal(stored.length, 0);
    console.log(`rows bomb: a ${mail.length}-byte mail of 200000 rows refused`);
  });

  it('counts beyond what a reporter could see are refused; the API answers within its schema after the largest allowed', async () => {
    const huge = rejected(await ingest(Buffer.from(report('huge', [cleanRow(fleet.steady, '192.0.2.78', Number.MAX_SAFE_INTEGER)])), 'huge'));
    assert.match(huge.reason, /claims more than 1000000000 messages per day/);
    assert.equal(huge.field, 'record[1]/row/count');
    // The most a report may claim, many times over: the sums stay exact integers and every answer passes its schema.
    for (let i = 0; i < 5; i++) {
      const r = await ingest(Buffer.from(report(`big-${i}`, [cleanRow(fleet.steady, `192.0.2.${80 + i}`, 1_000_000_000)], `2026-06-${String(10 + i).padStart(2, '0')}`)), `big-${i}`);
      assert.equal(r.status, 'stored', JSON.stringify(r));
    }
    for (const path of ['/api/v1/domains', `/api/v1/domains/${fleet.steady}`, '/api/v1/approvals']) {
      const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${viewer.token}` } });
      assert.equal(res.status, 200, `${path}: ${await res.text()}`);
    }
  });

  it("one reporter's flood stops at its hourly budget, kept with the reason; another reporter goes on", async () => {
    const budget = new ReporterBudget(300, () => NOW.getTime());
    const rows = (n: number, ip: string) => Array.from({ length: n }, (_, i) => cleanRow(fleet.steady, `${ip}.${i % 250}`, 1));
    assert.equal((await ingest(Buffer.from(report('flood-1', rows(200, '198.51.100'))), 'flood-1', { budget })).status, 'stored');
    const over = rejected(await ingest(Buffer.from(report('flood-2', rows(200, '198.51.101'))), 'flood-2', { budget }));
    assert.equal(over.kind, 'budget');
    assert.match(over.reason, /isp\.example sent more than 300 report records in the last hour \(200 stored before this report\)/);
    assert.ok(existsSync(over.kept_at));
    const other = aggregateReportXml({ reporter: 'other.example', domain: fleet.steady, day: '2026-06-14', rows: rows(100, '198.51.102') });
    assert.equal((await ingest(Buffer.from(other), 'other', { budget })).status, 'stored');
    const flood2 = await store.db.selectFrom('reports').select('id').where('report_id', '=', 'flood-2').execute();
    assert.equal(flood2.length, 0, 'the refused report left no rows');
  });

  it('a rejected input’s reason never carries its bytes', async () => {
    const secret = 'BEGIN-PRIVATE-KEY-abcdefghijklmnopqrstuvwxyz0123456789';
    const r = rejected(await ingest(Buffer.from(`${secret}\n${secret}\n`), 'not-a-report'));
    assert.ok(!r.reason.includes('BEGIN') && !r.reason.includes('abcdef'), r.reason);
    assert.ok(!r.reason.includes(Buffer.from(secret.slice(0, 8)).toString('hex')), `the reason carries the bytes in hex: ${r.reason}`);
    assert.equal(readFileSync(r.kept_at, 'utf8').includes(secret), true, 'the bytes are kept in the file, not the reason');
  });
});
