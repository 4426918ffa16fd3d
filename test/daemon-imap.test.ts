/**
 * The IMAP report source against a real Dovecot on loopback, holding real
 * report mails from the corpus (appended over IMAP), with ingest into a real
 * SQLite store as `deliver`: mails are stored once and moved to the processed
 * folder, failure reports are rejected-and-kept and moved to the rejected
 * folder, a poll cut short leaves the rest in place and the next one finishes
 * with every report stored exactly once, and a wrong password is reported
 * without the password.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { createImapSource, imapSourceConfigSchema, type ImapSourceConfigInput, type SourceLogger } from '../src/daemon/sources/imap.js';
import type { Deliver } from '../src/daemon/sources/types.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { REPO_ROOT, tempStore } from './helpers/cli.js';
import { CORPUS_DIR } from './helpers/corpus.js';
import { startDovecot, type DovecotServer } from './helpers/dovecot.js';
import { aggregateReportXml, cleanRow, spoofRow } from './helpers/reports.js';

const CORPUS = CORPUS_DIR;
const AGGREGATE_DIR = join(CORPUS, 'aggregate/parsedmarc');
const AGGREGATE_MAILS = readdirSync(AGGREGATE_DIR)
  .filter((f) => f.endsWith('.eml'))
  .sort()
  .map((f) => ({ name: f, bytes: readFileSync(join(AGGREGATE_DIR, f)) }));
const FORENSIC_MAIL = readFileSync(join(CORPUS, 'forensic/parsedmarc/dmarc_ruf_report_linkedin.eml'));

/** A report mail as a receiver sends it: the generated report gzipped as an attachment. */
function generatedReportMail(day: string): Buffer {
  const xml = aggregateReportXml({
    reporter: 'imap-test.example',
    domain: 'rollout.example',
    day,
    rows: [cleanRow('rollout.example', '192.0.2.10', 40), spoofRow('rollout.example', '198.51.100.7', 3)],
  });
  const attachment = gzipSync(Buffer.from(xml)).toString('base64').replace(/(.{76})/g, '$1\r\n');
  const name = `imap-test.example!rollout.example!${day}.xml.gz`;
  return Buffer.from(
    [
      'From: noreply-dmarc@imap-test.example',
      'To: dmarc@rollout.example',
      `Subject: Report domain: rollout.example Submitter: imap-test.example Report-ID: ${day}`,
      'Date: Mon, 23 Nov 2026 10:00:00 +0000',
      `Message-ID: <${day}@imap-test.example>`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'This is an aggregate report from imap-test.example.',
      '--b1',
      `Content-Type: application/gzip; name="${name}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename="${name}"`,
      '',
      attachment,
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

let server: DovecotServer;
let admin: ImapFlow;

before(async () => {
  server = await startDovecot();
  // A second client of our own, for putting mail in and looking at folders.
  admin = new ImapFlow({ host: server.host, port: server.port, secure: false, auth: { user: server.user, pass: server.password }, logger: false });
  await admin.connect();
});

after(async () => {
  await admin?.logout().catch(() => undefined);
  await server?.stop();
});

async function appendAll(mailbox: string, mails: Buffer[]): Promise<void> {
  await admin.mailboxCreate(mailbox);
  for (const mail of mails) await admin.append(mailbox, mail);
}

/** How many messages a folder holds (0 if it does not exist). */
async function count(mailbox: string): Promise<number> {
  try {
    const status = await admin.status(mailbox, { messages: true });
    return status ? (status.messages ?? 0) : 0;
  } catch {
    return 0;
  }
}

/** Per test: its own folders (so tests cannot see each other's mail) and its own store. */
async function setup(prefix: string): Promise<{ config: ImapSourceConfigInput; store: Store; dir: string; deliver: Deliver; results: IngestResult[] }> {
  const { dir, db } = tempStore('dmarc-rollout-imap-');
  const store = await openSqliteStore(db);
  const results: IngestResult[] = [];
  const deliver: Deliver = async (input, source) => {
    const r = await ingestInput(store.db, input, source, { rejectedDir: join(dir, 'rejected') });
    results.push(r);
    return r;
  };
  const config: ImapSourceConfigInput = {
    type: 'imap',
    host: server.host,
    port: server.port,
    secure: false,
    user: server.user,
    password_env: 'TEST_IMAP_PASSWORD',
    mailbox: `${prefix}-in`,
    processed_mailbox: `${prefix}-processed`,
    rejected_mailbox: `${prefix}-rejected`,
    // The mechanics of the source, on corpus mails no local DNS can verify; provenance has its own tests.
    trusted: true,
  };
  return { config, store, dir, deliver, results };
}

const env = () => ({ TEST_IMAP_PASSWORD: server.password });

async function storedReports(store: Store): Promise<Array<{ org: string; report_id: string }>> {
  return store.db.selectFrom('reports').select(['org', 'report_id']).orderBy('id').execute();
}

describe('imap source against Dovecot', () => {
  test('stores the corpus report mails, moves them to processed, keeps the failure report in rejected; a second poll stores nothing', async () => {
    const { config, store, dir, deliver, results } = await setup('main');
    const logged: string[] = [];
    const logger: SourceLogger = {
      info: (o, m) => logged.push(JSON.stringify(o) + (m ?? '')),
      warn: (o, m) => logged.push(JSON.stringify(o) + (m ?? '')),
    };
    const mails = [...AGGREGATE_MAILS.map((m) => m.bytes), FORENSIC_MAIL, generatedReportMail('2026-11-20')];
    assert.ok(AGGREGATE_MAILS.length >= 3, 'the corpus holds at least three aggregate report mails');
    await appendAll(config.mailbox!, mails);
    const source = createImapSource(config, { env: env(), logger });
    try {
      assert.equal(source.kind, 'poll');
      const first = await source.poll(deliver);
      assert.deepEqual(first, { delivered: mails.length, acknowledged: mails.length, failed: [] });

      const statuses = results.map((r) => r.status);
      assert.deepEqual(statuses, [...AGGREGATE_MAILS.map(() => 'stored'), 'rejected', 'stored']);
      const rejected = results[AGGREGATE_MAILS.length];
      assert.ok(rejected?.status === 'rejected');
      assert.equal(rejected.kind, 'failure-report');
      // The source names say mailbox, UIDVALIDITY and UID, in the order they were appended.
      for (const [i, r] of results.entries()) assert.match(r.source, new RegExp(`^imap:main-in/\\d+/${i + 1}$`));

      assert.equal(await count('main-in'), 0);
      assert.equal(await count('main-processed'), AGGREGATE_MAILS.length + 1);
      assert.equal(await count('main-rejected'), 1);
      const reports = await storedReports(store);
      assert.equal(reports.length, AGGREGATE_MAILS.length + 1);
      assert.ok(reports.some((r) => r.org === 'imap-test.example'));
      const kept = await store.db.selectFrom('rejected_inputs').selectAll().execute();
      assert.equal(kept.length, 1);
      assert.match(kept[0]?.source ?? '', /^imap:main-in\//);

      const second = await source.poll(deliver);
      assert.deepEqual(second, { delivered: 0, acknowledged: 0, failed: [] });
      assert.equal((await storedReports(store)).length, reports.length);

      // The same report mailed twice: a duplicate, acknowledged (moved), not stored again.
      await appendAll('main-in', [generatedReportMail('2026-11-20')]);
      const third = await source.poll(deliver);
      assert.deepEqual(third, { delivered: 1, acknowledged: 1, failed: [] });
      assert.equal(results.at(-1)?.status, 'duplicate');
      assert.equal((await storedReports(store)).length, reports.length);
      assert.equal(await count('main-processed'), AGGREGATE_MAILS.length + 2);

      assert.ok(logged.length > 0);
      assert.ok(!logged.some((line) => line.includes(server.password)), 'the password is never logged');
    } finally {
      await source.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a poll that dies at the second mail leaves the rest in the mailbox; the next poll stores each report exactly once', async () => {
    const { config, store, dir, deliver, results } = await setup('crash');
    const mails = [...AGGREGATE_MAILS.map((m) => m.bytes), generatedReportMail('2026-11-21')];
    await appendAll(config.mailbox!, mails);
    // A batch smaller than the mailbox, so the poll runs over several fetch rounds.
    const source = createImapSource({ ...config, batch: 2 }, { env: env() });
    try {
      let calls = 0;
      // The store write of the 2nd mail happens, then the process "dies"
      // before the source hears back: the worst point for double counting.
      const dying: Deliver = async (input, src) => {
        calls++;
        const r = await deliver(input, src);
        if (calls === 2) throw new Error('daemon killed mid-poll');
        return r;
      };
      await assert.rejects(source.poll(dying), /daemon killed mid-poll/);
      assert.equal(await count('crash-processed'), 1, 'only the acknowledged first mail moved');
      assert.equal(await count('crash-in'), mails.length - 1, 'the second mail and the rest stay');

      const rerun = await source.poll(deliver);
      assert.deepEqual(rerun, { delivered: mails.length - 1, acknowledged: mails.length - 1, failed: [] });
      assert.equal(await count('crash-in'), 0);
      assert.equal(await count('crash-processed'), mails.length);
      // The 2nd mail was delivered twice: stored, then duplicate.
      assert.deepEqual(
        results.map((r) => r.status),
        ['stored', 'stored', 'duplicate', ...mails.slice(2).map(() => 'stored')],
      );
      const reports = await storedReports(store);
      assert.equal(reports.length, mails.length);
      assert.equal(new Set(reports.map((r) => `${r.org}|${r.report_id}`)).size, mails.length, 'each report stored exactly once');
    } finally {
      await source.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a mail whose ingest ends in error stays in place and is listed in failed; the next poll takes it', async () => {
    const { config, store, dir, deliver } = await setup('err');
    const mails = [generatedReportMail('2026-11-01'), generatedReportMail('2026-11-02'), generatedReportMail('2026-11-03')];
    await appendAll(config.mailbox!, mails);
    // A mail someone already opened is still unprocessed: seen or not, everything left in the mailbox is taken.
    await admin.mailboxOpen(config.mailbox!);
    await admin.messageFlagsAdd('1:*', ['\\Seen']);
    await admin.mailboxClose();
    const source = createImapSource(config, { env: env() });
    try {
      let calls = 0;
      const flaky: Deliver = async (input, src) => {
        calls++;
        if (calls === 2) return { source: src, status: 'error', reason: 'store unavailable' };
        return deliver(input, src);
      };
      const first = await source.poll(flaky);
      assert.equal(first.delivered, 3);
      assert.equal(first.acknowledged, 2);
      assert.equal(first.failed.length, 1);
      assert.match(first.failed[0]?.source ?? '', /^imap:err-in\/\d+\/2$/);
      assert.equal(first.failed[0]?.reason, 'store unavailable');
      assert.equal(await count('err-in'), 1);
      assert.equal(await count('err-processed'), 2);
      assert.equal((await storedReports(store)).length, 2);

      const second = await source.poll(deliver);
      assert.deepEqual(second, { delivered: 1, acknowledged: 1, failed: [] });
      assert.equal(await count('err-in'), 0);
      assert.deepEqual(
        (await storedReports(store)).map((r) => r.report_id).sort(),
        ['2026-11-01', '2026-11-02', '2026-11-03'].map((d) => `imap-test.example-rollout.example-${d}`),
      );
    } finally {
      await source.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a mail over max_message_bytes is skipped without being delivered and stays in place', async () => {
    const { config, store, dir, deliver, results } = await setup('big');
    const small = generatedReportMail('2026-11-05');
    const big = Buffer.concat([generatedReportMail('2026-11-06'), Buffer.from(`X-Padding: ${'x'.repeat(8000)}\r\n`)]);
    await appendAll(config.mailbox!, [big, small]);
    const source = createImapSource({ ...config, max_message_bytes: small.length + 100 }, { env: env() });
    try {
      const summary = await source.poll(deliver);
      assert.equal(summary.delivered, 1);
      assert.equal(summary.acknowledged, 1);
      assert.equal(summary.failed.length, 1);
      assert.match(summary.failed[0]?.source ?? '', /^imap:big-in\/\d+\/1$/);
      assert.match(summary.failed[0]?.reason ?? '', /over max_message_bytes/);
      assert.equal(results.length, 1, 'the big mail never reached deliver');
      assert.equal(await count('big-in'), 1);
      assert.equal(await count('big-processed'), 1);
    } finally {
      await source.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unreachable server and a missing password env fail with clear errors', async () => {
    const { config, store, dir, deliver } = await setup('down');
    try {
      // Port 1 on loopback: nothing listens there, the connection is refused.
      const closed = createImapSource({ ...config, port: 1 }, { env: env() });
      await assert.rejects(closed.poll(deliver), (e: Error) => {
        assert.match(e.message, /cannot log in to 127\.0\.0\.1:1 as user reports/);
        assert.ok(!e.message.includes(server.password));
        return true;
      });
      await closed.close();

      const noSecret = createImapSource(config, { env: {} });
      await assert.rejects(noSecret.poll(deliver), /TEST_IMAP_PASSWORD \(password_env\) is not set/);
      await noSecret.close();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  // Last to log in: after a failed login Dovecot delays every later login from the same address.
  test('the password can come from a file; a wrong one fails the poll naming host and user, never the password', async () => {
    const { config, store, dir, deliver } = await setup('auth');
    await appendAll(config.mailbox!, [generatedReportMail('2026-11-10')]);
    const file = join(dir, 'imap-password');
    writeFileSync(file, `${server.password}\n`);
    const { password_env: _unused, ...base } = config;
    const good = createImapSource({ ...base, password_file: file });
    try {
      assert.deepEqual(await good.poll(deliver), { delivered: 1, acknowledged: 1, failed: [] });
    } finally {
      await good.close();
    }

    await appendAll(config.mailbox!, [generatedReportMail('2026-11-11')]);
    const wrong = `wrong-${server.password}`;
    writeFileSync(file, `${wrong}\n`);
    const bad = createImapSource({ ...base, password_file: file });
    try {
      const error: unknown = await bad.poll(deliver).then(
        () => assert.fail('a wrong password must fail the poll'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof Error);
      assert.match(error.message, new RegExp(`user ${server.user}`));
      assert.match(error.message, /127\.0\.0\.1/);
      assert.match(error.message, /authentication failed/i);
      assert.ok(!error.message.includes(wrong), 'the password is not in the message');
      assert.ok(!error.message.includes(server.password));
      assert.equal(await count('auth-in'), 1, 'nothing moved');
    } finally {
      await bad.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('config: defaults, and exactly one password source', () => {
  const parsed = imapSourceConfigSchema.parse({ type: 'imap', host: 'imap.example', user: 'dmarc', password_env: 'P' });
  assert.equal(parsed.port, 993);
  assert.equal(parsed.secure, true);
  assert.equal(parsed.mailbox, 'INBOX');
  assert.equal(parsed.processed_mailbox, 'dmarc-processed');
  assert.equal(parsed.rejected_mailbox, 'dmarc-rejected');
  assert.equal(parsed.tls_reject_unauthorized, true);
  assert.equal(parsed.max_message_bytes, 50 * 1024 * 1024);
  assert.equal(parsed.batch, 100);
  const base = { type: 'imap', host: 'imap.example', user: 'dmarc' };
  assert.equal(imapSourceConfigSchema.safeParse(base).success, false, 'no password source');
  assert.equal(imapSourceConfigSchema.safeParse({ ...base, password_env: 'P', password_file: '/run/p' }).success, false, 'both');
  // A password written into the config itself is refused, not silently ignored.
  assert.equal(imapSourceConfigSchema.safeParse({ ...base, password: 'hunter2' }).success, false);
  assert.equal(imapSourceConfigSchema.safeParse({ ...base, password_env: 'P', processed_mailbox: 'INBOX' }).success, false);
});
