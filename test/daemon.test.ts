/**
 * The real daemon process: config validation at start, the instance lock,
 * reports delivered through a folder, ticks on a fast schedule against a real
 * PowerDNS, and SIGTERM then restart with nothing lost or done twice.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { queryTxt } from '../src/dns/index.js';
import { REPO_ROOT, runCli, tempStore } from './helpers/cli.js';
import { CORPUS_DIR } from './helpers/corpus.js';
import { freePort, startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { startDovecot, type DovecotServer } from './helpers/dovecot.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

describe('the daemon', () => {
  it('refuses to start on a bad config, naming the file, the field and the reason', async () => {
    const { dir } = tempStore();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'schedule:\n  tick: every hour\nsources:\n  - { type: folder }\nproviders:\n  pdns: { type: powerdns }\n');
    const res = await runCli(['daemon', '--config', config]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`refusing to start:\\n${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: schedule\\.tick: not a valid cron expression`));
    assert.match(res.stderr, /sources\.0\.path: /);
  });

  describe('with a folder source and real PowerDNS', () => {
    let pdns: PdnsServer;
    let dir: string;
    let db: string;
    let config: string;
    let env: Record<string, string>;
    let smtpPort: number;
    let dovecot: DovecotServer;
    before(async () => {
      smtpPort = await freePort();
      pdns = await startPdns();
      dovecot = await startDovecot();
      // A real report mail waiting in the mailbox the daemon reads.
      const imap = new ImapFlow({ host: dovecot.host, port: dovecot.port, secure: false, auth: { user: dovecot.user, pass: dovecot.password }, logger: false });
      await imap.connect();
      await imap.append('INBOX', readFileSync(join(CORPUS_DIR, 'aggregate/parsedmarc/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml')));
      await imap.logout();
      await pdns.createZone('daemon.example');
      ({ dir, db } = tempStore());
      mkdirSync(join(dir, 'inbox'));
      config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'store: { sqlite: store.sqlite }',
          "schedule: { ingest: '* * * * * *', tick: '*/2 * * * * *' }",
          'sources:',
          // Trusted: these are corpus mails whose signatures only the reporters' own DNS could verify (test/provenance.test.ts covers that).
          '  - { type: folder, path: inbox, trusted: true }',
          `  - { type: smtp, host: 127.0.0.1, port: ${smtpPort}, recipients: ['dmarc-reports@daemon.example'], trusted: true }`,
          `  - { type: imap, host: ${dovecot.host}, port: ${dovecot.port}, secure: false, user: ${dovecot.user}, password_env: IMAP_DAEMON_PASSWORD, trusted: true }`,
          'providers:',
          `  pdns: { type: powerdns, api_url: "${pdns.apiUrl}", api_key_env: PDNS_DAEMON_KEY, verify: { nameservers: ["${pdns.dnsServer}"] } }`,
          '',
        ].join('\n'),
      );
      env = { PDNS_DAEMON_KEY: pdns.apiKey, IMAP_DAEMON_PASSWORD: dovecot.password, DMARC_ROLLOUT_DB: db };
      // Enrolment reads the live record through the config's provider; the daemon's own SMTP address becomes the rua.
      assert.equal((await runCli(['enroll', 'daemon.example', '--provider', 'pdns', '--config', config, '--report-address', 'dmarc-reports@daemon.example'], env)).code, 0);
    });
    after(async () => {
      await pdns?.stop();
      await dovecot?.stop();
    });

    it('ingests, ticks, stops cleanly on SIGTERM, keeps a second daemon out, and goes on after a restart', async () => {
      // Twenty days of clean reports, ending yesterday.
      const today = Math.floor(Date.now() / 86_400_000);
      for (let d = 20; d >= 1; d--) {
        const day = new Date((today - d) * 86_400_000).toISOString().slice(0, 10);
        writeFileSync(join(dir, 'inbox', `r-${day}.xml`), aggregateReportXml({ reporter: 'google.com', domain: 'daemon.example', day, rows: [cleanRow('daemon.example', '192.0.2.1', 600)] }));
      }
      const first = startDaemonProcess(config, env);
      await waitFor('the first stage in DNS', async () => (await queryTxt('_dmarc.daemon.example', [pdns.dnsServer])).txt[0] === 'v=DMARC1; p=none; rua=mailto:dmarc-reports@daemon.example');
      await waitFor('the inbox to empty', () => readdirSync(join(dir, 'inbox')).filter((f) => f.endsWith('.xml')).length === 0);
      await waitFor('the IMAP report to be stored', () => {
        const peek = new SqliteDatabase(join(dir, 'store.sqlite'), { readonly: true });
        const row = peek.prepare(`select count(*) n from reports where source like 'imap:%'`).get() as { n: number };
        peek.close();
        return row.n === 1;
      });

      // The daemon is also the rua mailbox: a real report mail over SMTP.
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
      await transport.sendMail({
        envelope: { from: 'noreply-dmarc-support@google.com', to: ['dmarc-reports@daemon.example'] },
        raw: readFileSync(join(CORPUS_DIR, 'aggregate/parsedmarc/twilight.eml')),
      });
      await assert.rejects(
        transport.sendMail({ envelope: { from: 'x@example.net', to: ['someone-else@daemon.example'] }, raw: 'Subject: hi\r\n\r\nhi\r\n' }),
        /550/,
      );
      transport.close();

      const second = await runCli(['daemon', '--config', config], env);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /refusing to start: another daemon holds .*store\.sqlite\.lock/);

      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0, first.output());
      assert.match(first.output(), /"msg":"daemon stopped"/);
      assert.doesNotMatch(first.output(), new RegExp(pdns.apiKey), 'the API key never reaches the log');

      // The stage took effect long enough ago for the reports to judge it (as if 20 days had passed).
      const sqlite = new SqliteDatabase(join(dir, 'store.sqlite'));
      const windowStart = new Date((today - 20) * 86_400_000).toISOString();
      sqlite.prepare('update domains set window_start = ?, stage_since = ?').run(windowStart, windowStart);
      const stored = sqlite.prepare('select count(*) n from reports').get() as { n: number };
      sqlite.close();
      assert.equal(stored.n, 22, 'every report stored exactly once: 20 from the folder, 1 by SMTP, 1 from IMAP');

      const restarted = startDaemonProcess(config, env);
      await waitFor('quarantine:1 in DNS', async () => (await queryTxt('_dmarc.daemon.example', [pdns.dnsServer])).txt[0] === 'v=DMARC1; p=quarantine; pct=1; t=y; rua=mailto:dmarc-reports@daemon.example');
      restarted.child.kill('SIGTERM');
      assert.equal(await restarted.exited, 0, restarted.output());

      const after = new SqliteDatabase(join(dir, 'store.sqlite'), { readonly: true });
      const history = after.prepare('select action, to_stage from stage_history order by id').all();
      const reports = after.prepare('select count(*) n from reports').get() as { n: number };
      after.close();
      assert.deepEqual(history, [
        { action: 'enroll', to_stage: 'none:100' },
        { action: 'establish', to_stage: 'none:100' },
        { action: 'advance', to_stage: 'quarantine:1' },
      ]);
      assert.equal(reports.n, 22);
    });
  });
});

describe('SIGTERM in the middle of a tick', () => {
  it('finishes the job in flight, leaves the change as an intent, and the restarted daemon completes it without writing again', async () => {
    const pdns = await startPdns();
    // A name server that never answers keeps the tick in its verification step.
    const blackhole = createSocket('udp4');
    await new Promise<void>((resolve) => blackhole.bind(0, '127.0.0.1', resolve));
    const silentServer = `127.0.0.1:${blackhole.address().port}`;
    try {
      await pdns.createZone('sigterm.example');
      const { dir } = tempStore();
      const config = (verifyAt: string) => {
        const file = join(dir, 'config.yaml');
        writeFileSync(
          file,
          [
            'store: { sqlite: store.sqlite }',
            "schedule: { ingest: '0 0 1 1 *', tick: '* * * * * *' }",
            'providers:',
            `  pdns: { type: powerdns, api_url: "${pdns.apiUrl}", api_key_env: PDNS_SIGTERM_KEY, verify: { nameservers: ["${verifyAt}"] } }`,
            '',
          ].join('\n'),
        );
        return file;
      };
      const env = { PDNS_SIGTERM_KEY: pdns.apiKey, DMARC_ROLLOUT_DB: join(dir, 'store.sqlite') };
      assert.equal((await runCli(['enroll', 'sigterm.example', '--provider', 'pdns', '--config', config(pdns.dnsServer), '--report-address', 'dmarc@reports.example'], env)).code, 0);

      const first = startDaemonProcess(config(silentServer), env);
      // The record is written; the tick now waits on the silent server.
      await waitFor('the write', async () => (await queryTxt('_dmarc.sigterm.example', [pdns.dnsServer])).txt[0] === 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example');
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0, first.output());
      const mid = new SqliteDatabase(join(dir, 'store.sqlite'), { readonly: true });
      const intent = mid.prepare('select status, record from intents').get() as { status: string; record: string } | undefined;
      const stage = mid.prepare('select stage_since from domains').get() as { stage_since: string | null };
      mid.close();
      assert.deepEqual(intent, { status: 'written', record: 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example' }, 'the change is kept as an intent');
      assert.equal(stage.stage_since, null, 'an unverified change does not move the stage');

      const second = startDaemonProcess(config(pdns.dnsServer), env);
      await waitFor('the change to be verified', () => {
        const peek = new SqliteDatabase(join(dir, 'store.sqlite'), { readonly: true });
        const row = peek.prepare('select stage_since from domains').get() as { stage_since: string | null };
        peek.close();
        return row.stage_since !== null;
      }, 180_000);
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0, second.output());
      const done = new SqliteDatabase(join(dir, 'store.sqlite'), { readonly: true });
      const history = done.prepare(`select action from stage_history where action != 'enroll'`).all();
      const writes = done.prepare(`select details from audit_events where action = 'verified'`).all() as Array<{ details: string }>;
      done.close();
      assert.deepEqual(history, [{ action: 'establish' }], 'made once');
      assert.equal(writes.length, 1);
    } finally {
      blackhole.close();
      await pdns.stop();
    }
  });
});

describe('doctor', () => {
  it('names what is wrong and how to fix it: a missing secret, a rua on another domain without its authorisation record', async () => {
    const pdns = await startPdns();
    try {
      await pdns.createZone('doc.example', [
        { name: '_dmarc.doc.example.', type: 'TXT', ttl: 300, records: [{ content: '"v=DMARC1; p=none; rua=mailto:agg@reports.example"' }] },
      ]);
      await pdns.createZone('reports.example');
      const { dir, db } = tempStore();
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'store: { sqlite: store.sqlite }',
          'report_addresses: [agg@reports.example]',
          `dns: { resolvers: ["${pdns.dnsServer}"] }`,
          'providers:',
          `  pdns: { type: powerdns, api_url: "${pdns.apiUrl}", api_key_env: PDNS_DOCTOR_KEY }`,
          `  cf: { type: cloudflare, api_token_env: CF_TOKEN_NOT_SET }`,
          '',
        ].join('\n'),
      );
      const env = { PDNS_DOCTOR_KEY: pdns.apiKey, DMARC_ROLLOUT_DB: join(dir, 'store.sqlite') };
      assert.equal((await runCli(['enroll', 'doc.example', '--provider', 'pdns', '--config', config], env)).code, 0);

      const before = await runCli(['doctor', '--config', config, '--json'], env);
      assert.equal(before.code, 1, before.stderr);
      const checks = JSON.parse(before.stdout).checks;
      const bySubject = (s: string) => checks.filter((c: { subject: string }) => c.subject === s);
      assert.equal(bySubject('provider pdns')[0].status, 'ok');
      assert.equal(bySubject('provider cf')[0].status, 'fail');
      assert.match(bySubject('provider cf')[0].detail, /CF_TOKEN_NOT_SET/);
      const rua = bySubject('rua doc.example');
      assert.deepEqual(rua.map((c: { status: string }) => c.status), ['ok', 'fail']);
      assert.match(rua[1].fix, /publish doc\.example\._report\._dmarc\.reports\.example TXT "v=DMARC1" in the reports\.example zone/);

      await pdns.patchZone('reports.example', [
        { name: 'doc.example._report._dmarc.reports.example.', type: 'TXT', ttl: 300, changetype: 'REPLACE', records: [{ content: '"v=DMARC1"' }] },
      ]);
      const after = await runCli(['doctor', '--config', config, '--json'], env);
      const ruaAfter = JSON.parse(after.stdout).checks.filter((c: { subject: string }) => c.subject === 'rua doc.example');
      assert.deepEqual(ruaAfter.map((c: { status: string }) => c.status), ['ok', 'ok']);
    } finally {
      await pdns.stop();
    }
  });
});
