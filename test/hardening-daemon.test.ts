/**
 * The attack pass's holes against the real daemon process, over real HTTP,
 * with a real PowerDNS behind it: a signed-in viewer's CR/LF `next` no longer
 * ends the process, and a force that arrives while the tick is reading the
 * zone for a queued rollback is applied, not answered "queued" and dropped.
 * A proxy in front of the PowerDNS API holds one request, so the moment is
 * the test's choice, not luck.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createProvider } from '../providers/index.js';
import { queryTxt } from '../src/dns/index.js';
import { generateToken } from '../src/api/tokens.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { stageLabel } from '../src/record/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { freePort, startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { formSignIn } from './helpers/web.js';
import nodemailer from 'nodemailer';
import { gzipSync } from 'node:zlib';
import { aggregateReportXml, cleanRow, spoofRow } from './helpers/reports.js';

const DOMAIN = 'lost-force.example';
const labels = loadPlan('default').stages.map(stageLabel);

/** Forwards to the PowerDNS API; `hold(method)` keeps the next such request until released. */
class HoldingProxy {
  #server: Server | null = null;
  #hold: { method: string; caught: (release: () => void) => void } | null = null;
  url = '';
  constructor(private readonly target: string) {}
  async start() {
    this.#server = createServer((req, res) => this.#forward(req, res));
    const port = await freePort();
    await new Promise<void>((resolve) => this.#server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${port}`;
  }
  /** Resolves with a release function once a request of `method` is being held. */
  hold(method: string): Promise<() => void> {
    return new Promise((caught) => (this.#hold = { method, caught }));
  }
  async #forward(req: IncomingMessage, res: ServerResponse) {
    const held = this.#hold;
    if (held && req.method === held.method && req.url?.includes('/zones/')) {
      this.#hold = null;
      await new Promise<void>((release) => held.caught(release));
    }
    const target = new URL(req.url!, this.target);
    const upstream = httpRequest(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    req.pipe(upstream);
  }
  stop() {
    return new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

describe('the daemon process under attack', () => {
  let pdns: PdnsServer;
  let proxy: HoldingProxy;
  let daemon: ReturnType<typeof startDaemonProcess>;
  let base: string;
  let dbPath: string;
  let smtpPort: number;
  const operator = generateToken();
  const viewer = generateToken();

  before(async () => {
    pdns = await startPdns();
    await pdns.createZone(DOMAIN, [{ name: `_dmarc.${DOMAIN}.`, type: 'TXT', ttl: 60, records: [{ content: `"v=DMARC1; p=none; rua=mailto:dmarc@${DOMAIN}"` }] }]);
    // What google.com publishes, as far as this test needs: an SPF record that does not list the test's client.
    await pdns.createZone('google.com', [{ name: 'google.com.', type: 'TXT', ttl: 60, records: [{ content: '"v=spf1 ip4:192.0.2.0/24 ~all"' }] }]);
    proxy = new HoldingProxy(pdns.apiUrl);
    await proxy.start();
    const { dir, db } = tempStore('dmarc-rollout-hardening-daemon-');
    dbPath = db;
    const store = await openSqliteStore(db);
    const provider = createProvider({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'K' }, { env: { K: pdns.apiKey } });
    const enrolled = await enrollDomains(store, {
      inputs: [{ text: DOMAIN, origin: 'argv' }],
      plan: loadPlan('default'),
      provider: 'pdns',
      providers: { names: ['pdns'], get: () => provider },
      actor: 'test',
      now: new Date(),
    } as Parameters<typeof enrollDomains>[1]);
    assert.deepEqual(enrolled.enrolled, [DOMAIN]);
    await store.close();
    const port = await freePort();
    smtpPort = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'store: { sqlite: store.sqlite }',
        // A tick every second: the test picks the moment with the proxy, not the clock.
        "schedule: { ingest: '0 0 1 1 *', tick: '* * * * * *' }",
        'sources:',
        `  - { type: smtp, host: 127.0.0.1, port: ${smtpPort}, recipients: ['dmarc@${DOMAIN}'] }`,
        `dns: { resolvers: ['${pdns.dnsServer}'] }`,
        'providers:',
        `  pdns: { type: powerdns, api_url: '${proxy.url}', api_key_env: PDNS_KEY, verify: { nameservers: ['${pdns.dnsServer}'] } }`,
        'api:',
        `  listen: { host: 127.0.0.1, port: ${port} }`,
        '  tokens:',
        `    - { name: otto, role: operator, sha256: ${operator.sha256} }`,
        `    - { name: vera, role: viewer, sha256: ${viewer.sha256} }`,
        '',
      ].join('\n'),
    );
    daemon = startDaemonProcess(config, { PDNS_KEY: pdns.apiKey });
    await waitFor('the API to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 60_000);
  });
  after(async () => {
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await proxy?.stop();
    await pdns?.stop();
  });

  const act = async (action: string, body: object) => {
    const res = await fetch(`${base}/api/v1/domains/${DOMAIN}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as { message?: string; error?: { message: string } } };
  };
  const domainRow = async () => {
    const store = await openSqliteStore(dbPath);
    try {
      const row = await store.db.selectFrom('domains').select(['stage_index', 'last_record']).where('domain', '=', DOMAIN).executeTakeFirstOrThrow();
      const intent = await store.db.selectFrom('intents').selectAll().where('domain', '=', DOMAIN).executeTakeFirst();
      return { ...row, intent };
    } finally {
      await store.close();
    }
  };
  const settledAt = (index: number) => waitFor(`${DOMAIN} at ${labels[index]} with nothing queued`, async () => {
    const row = await domainRow();
    return row.stage_index === index && !row.intent && row.last_record !== null ? row : undefined;
  }, 30_000);

  it('a forged report mail "from google.com" over SMTP is kept as rejected with the reason and counts for nothing', async () => {
    const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const xml = aggregateReportXml({ reporter: 'google.com', domain: DOMAIN, day, rows: [cleanRow(DOMAIN, '198.51.100.7', 85), spoofRow(DOMAIN, '198.51.100.7', 15)] });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({
      from: 'noreply-dmarc-support@google.com',
      to: `dmarc@${DOMAIN}`,
      subject: `Report Domain: ${DOMAIN} Submitter: google.com`,
      text: 'aggregate report',
      attachments: [{ filename: 'google.com!report.xml.gz', content: gzipSync(xml) }],
    });
    transport.close();
    assert.match(info.response, /^250 .*kept as rejected input: report_metadata\/email: the mail does not authenticate as the reporter it names \(google\.com\)/);
    const store = await openSqliteStore(dbPath);
    try {
      const reports = await store.db.selectFrom('reports').select('id').where('domain', '=', DOMAIN).execute();
      assert.equal(reports.length, 0, 'nothing stored, nothing counted');
      const kept = await store.db.selectFrom('rejected_inputs').selectAll().execute();
      assert.equal(kept.length, 1);
      assert.match(kept[0]!.reason, /DKIM none; SPF softfail/);
      assert.ok(kept[0]!.kept_at && (await import('node:fs')).existsSync(kept[0]!.kept_at));
    } finally {
      await store.close();
    }
  });

  it('a CR, LF or tab in a signed-in viewer’s next does not end the process', async () => {
    for (const next of ['/\r\n/x', '/%0A/x', '/\t/evil.example']) {
      const { res } = await formSignIn(base, viewer.token, next);
      assert.equal(res.status, 303);
      assert.equal(res.headers.get('location'), '/');
    }
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal(daemon.child.exitCode, null, daemon.output());
  });

  it('a force that arrives while the tick reads the zone for a queued rollback is applied, not lost', async () => {
    await settledAt(0);
    const start = 8;
    assert.equal((await act('force', { to: labels[start], reason: 'set the scene' })).status, 200);
    await settledAt(start);

    const held = proxy.hold('GET');
    const queuedRollback = await act('rollback', { reason: 'first: back one' });
    assert.equal(queuedRollback.status, 200, JSON.stringify(queuedRollback.json));
    const release = await held; // the tick is now inside provider.inspect for the rollback
    const forced = await act('force', { to: labels[2], reason: 'second: the operator’s force' });
    release();
    assert.equal(forced.status, 200, JSON.stringify(forced.json));
    assert.match(forced.json.message ?? '', /queued/);
    const row = await settledAt(2);
    assert.match(row.last_record!, /p=quarantine/);
    const live = await queryTxt(`_dmarc.${DOMAIN}`, [pdns.dnsServer]);
    assert.deepEqual(live.txt, [row.last_record], 'the zone shows the forced stage');
  });

  it('a force that arrives while the tick writes a queued rollback is refused with 409 and the reason', async () => {
    const held = proxy.hold('PATCH');
    assert.equal((await act('rollback', { reason: 'back one again' })).status, 200);
    const release = await held; // the rollback is being written: it cannot be replaced any more
    const refused = await act('force', { to: labels[6], reason: 'too late' });
    release();
    assert.equal(refused.status, 409);
    assert.match(refused.json.error!.message, /in flight .*not queued/);
    await settledAt(1);
  });
});
