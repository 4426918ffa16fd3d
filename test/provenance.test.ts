/**
 * Report provenance against real parts: report mails DKIM-signed by
 * nodemailer with real RSA keys, the public keys (and an SPF record) served
 * by a real PowerDNS on loopback, verified by mailauth through a resolver
 * pointed at it. The attack pass's forged reports "from google.com" are
 * refused, kept with the reason, and count for nothing; genuine ones count.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import nodemailer from 'nodemailer';
import { dnsResolve, type ProvenancePolicy } from '../src/reports/provenance.js';
import { ingestInput, type IngestResult } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { aggregateReportXml, cleanRow, spoofRow } from './helpers/reports.js';

const DOMAIN = 'victim.example';
const DAY = '2026-05-04';

function dkimKey() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const txt = `v=DKIM1; k=rsa; p=${spki}`;
  // TXT strings are at most 255 octets each: the record is split, as any DNS operator publishes it.
  const content = (txt.match(/.{1,250}/g) ?? []).map((part) => `"${part}"`).join(' ');
  return { privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), content };
}

/** A report mail as a receiver sends it: the report gzipped and attached, DKIM-signed when a key is given. */
async function reportMail(opts: { from: string; xml: string; sign?: { domain: string; privateKey: string } }): Promise<Buffer> {
  const transport = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: 'windows',
    ...(opts.sign ? { dkim: { domainName: opts.sign.domain, keySelector: 'sel1', privateKey: opts.sign.privateKey } } : {}),
  });
  const info = await transport.sendMail({
    from: opts.from,
    to: `dmarc@${DOMAIN}`,
    subject: `Report Domain: ${DOMAIN} Submitter: ${opts.from.split('@')[1]}`,
    text: 'This is an aggregate report.',
    attachments: [{ filename: `${DOMAIN}!report.xml.gz`, content: gzipSync(opts.xml), contentType: 'application/gzip' }],
  });
  return info.message as Buffer;
}

describe('report provenance', () => {
  let pdns: PdnsServer;
  let store: Store;
  let dir: string;
  let policy: ProvenancePolicy;
  const google = dkimKey();
  const attacker = dkimKey();
  const esp = dkimKey();

  before(async () => {
    pdns = await startPdns();
    await pdns.createZone('google.com', [{ name: 'sel1._domainkey.google.com.', type: 'TXT', ttl: 60, records: [{ content: google.content }] }]);
    await pdns.createZone('attacker.example', [{ name: 'sel1._domainkey.attacker.example.', type: 'TXT', ttl: 60, records: [{ content: attacker.content }] }]);
    await pdns.createZone('esp-signer.example', [{ name: 'sel1._domainkey.esp-signer.example.', type: 'TXT', ttl: 60, records: [{ content: esp.content }] }]);
    await pdns.createZone('spf-reporter.example', [{ name: 'spf-reporter.example.', type: 'TXT', ttl: 60, records: [{ content: '"v=spf1 ip4:127.0.0.1 -all"' }] }]);
    const temp = tempStore('dmarc-rollout-provenance-');
    dir = temp.dir;
    store = await openSqliteStore(temp.db);
    policy = { trusted: false, resolve: dnsResolve([pdns.dnsServer], 2000), reporters: { 'reports.example.net': ['esp-signer.example'] } };
  });
  after(async () => {
    await store?.close();
    await pdns?.stop();
  });

  const ingest = (bytes: Buffer, source: string, p: ProvenancePolicy = policy) =>
    ingestInput(store.db, { bytes, provenance: p }, source, { rejectedDir: join(dir, 'rejected') });
  const counted = async () =>
    Number((await store.db.selectFrom('report_rows').innerJoin('reports', 'reports.id', 'report_rows.report').select(({ fn }) => fn.sum<number>('count').as('n')).where('reports.domain', '=', DOMAIN).executeTakeFirst())?.n ?? 0);
  const forgedXml = (reporter: string, id: string, rows = [cleanRow(DOMAIN, '198.51.100.7', 85), spoofRow(DOMAIN, '198.51.100.7', 15)]) =>
    aggregateReportXml({ reporter, domain: DOMAIN, day: DAY, rows }).replace(/<report_id>[^<]*</, `<report_id>${id}<`);
  const rejected = (r: IngestResult) => {
    assert.equal(r.status, 'rejected', JSON.stringify(r));
    return r as Extract<IngestResult, { status: 'rejected' }>;
  };

  it('refuses the forged reports of the attack pass (unsigned, "from google.com"), keeps them with the reason, counts nothing', async () => {
    for (const id of ['forged-1', 'forged-2']) {
      const mail = await reportMail({ from: 'noreply-dmarc-support@google.com', xml: forgedXml('google.com', id) });
      const r = rejected(await ingest(mail, `smtp:${id}`));
      assert.equal(r.kind, 'provenance');
      assert.match(r.reason, /does not authenticate as the reporter it names \(google\.com\): DKIM none/);
      assert.ok(existsSync(r.kept_at), 'the mail is kept');
      assert.ok(readFileSync(r.kept_at).equals(mail));
      assert.ok(!r.reason.includes('198.51.100.7'), 'the reason carries none of the report');
    }
    assert.equal(await counted(), 0, 'nothing counted');
  });

  it('refuses a mail signed by another domain that claims to be google.com', async () => {
    const mail = await reportMail({ from: 'noreply-dmarc-support@google.com', xml: forgedXml('google.com', 'forged-3'), sign: { domain: 'attacker.example', privateKey: attacker.privateKey } });
    const r = rejected(await ingest(mail, 'smtp:forged-3'));
    assert.match(r.reason, /DKIM d=attacker\.example: pass/);
    assert.equal(await counted(), 0);
  });

  it('refuses a google.com-signed mail whose report was changed after signing', async () => {
    const mail = await reportMail({ from: 'noreply-dmarc-support@google.com', xml: forgedXml('google.com', 'tampered'), sign: { domain: 'google.com', privateKey: google.privateKey } });
    const text = mail.toString('latin1');
    const at = text.indexOf('This is an aggregate report.');
    const tampered = Buffer.from(`${text.slice(0, at)}This is an aggregate r3port.${text.slice(at + 28)}`, 'latin1');
    const r = rejected(await ingest(tampered, 'smtp:tampered'));
    assert.match(r.reason, /DKIM d=google\.com: (fail|neutral)/);
    assert.equal(await counted(), 0);
  });

  it('stores a report whose mail is signed by the reporter it names', async () => {
    const mail = await reportMail({ from: 'noreply-dmarc-support@google.com', xml: forgedXml('google.com', 'genuine', [cleanRow(DOMAIN, '192.0.2.1', 40)]), sign: { domain: 'google.com', privateKey: google.privateKey } });
    const r = await ingest(mail, 'smtp:genuine');
    assert.equal(r.status, 'stored', JSON.stringify(r));
    assert.equal(await counted(), 40);
  });

  it('stores a report signed by a domain the operator listed for that reporter', async () => {
    const xml = forgedXml('reports.example.net', 'listed', [cleanRow(DOMAIN, '192.0.2.2', 5)]);
    const mail = await reportMail({ from: 'dmarc@reports.example.net', xml, sign: { domain: 'esp-signer.example', privateKey: esp.privateKey } });
    assert.equal((await ingest(mail, 'smtp:listed')).status, 'stored');
    const other = await reportMail({ from: 'dmarc@reports.example.net', xml: xml.replace('listed', 'unlisted'), sign: { domain: 'esp-signer.example', privateKey: esp.privateKey } });
    assert.equal((await ingest(other, 'smtp:unlisted', { ...policy, reporters: {} })).status, 'rejected', 'without the list it is refused');
  });

  it('at the SMTP listener, SPF for the connecting client counts as the reporter authenticating', async () => {
    const xml = forgedXml('spf-reporter.example', 'spf', [cleanRow(DOMAIN, '192.0.2.3', 7)]);
    const mail = await reportMail({ from: 'dmarc@spf-reporter.example', xml });
    const viaSmtp = { ...policy, envelope: { ip: '127.0.0.1', helo: 'mx.spf-reporter.example', mailFrom: 'dmarc@spf-reporter.example' } };
    assert.equal((await ingest(mail, 'smtp:spf', viaSmtp)).status, 'stored');
    const elsewhere = { ...policy, envelope: { ip: '203.0.113.99', helo: 'mx.spf-reporter.example', mailFrom: 'dmarc@spf-reporter.example' } };
    const r = rejected(await ingest(await reportMail({ from: 'dmarc@spf-reporter.example', xml: xml.replace('>spf<', '>spf-2<') }), 'smtp:spf-2', elsewhere));
    assert.match(r.reason, /SPF fail/);
  });

  it('a bare report file from an untrusted source is refused; from a trusted one it counts', async () => {
    const xml = Buffer.from(forgedXml('google.com', 'bare', [cleanRow(DOMAIN, '192.0.2.4', 3)]));
    const r = rejected(await ingest(xml, 'folder:bare'));
    assert.match(r.reason, /did not come in a mail/);
    assert.equal((await ingest(xml, 'folder:bare', { trusted: true })).status, 'stored');
  });

  it('when DNS cannot answer, the mail is left for a retry, not rejected', async () => {
    const mail = await reportMail({ from: 'noreply-dmarc-support@google.com', xml: forgedXml('google.com', 'dns-down'), sign: { domain: 'google.com', privateKey: google.privateKey } });
    // A port nothing listens on: every lookup times out.
    const r = await ingest(mail, 'smtp:dns-down', { ...policy, resolve: dnsResolve(['127.0.0.1:9'], 300) });
    assert.equal(r.status, 'error', JSON.stringify(r));
  });
});
