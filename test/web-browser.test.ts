/**
 * The web page in a real browser (Debian's chromium driven by playwright-core)
 * against the real daemon process on loopback, with real PowerDNS behind it:
 * an operator signs in, sees a domain waiting for approval, approves it, and
 * sees the stage change (verified in DNS by the daemon's tick) and the audit
 * entry; a viewer sees no buttons and a forged approval is refused.
 * Screenshots of the fleet, approvals, domain and audit pages go to
 * test-output/screenshots/ (git-ignored).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createProvider } from '../providers/index.js';
import { generateToken } from '../src/api/tokens.js';
import { queryTxt } from '../src/dns/index.js';
import { dnsVerifier } from '../src/engine/verify.js';
import { getDomain } from '../src/store/domains.js';
import { openSqliteStore } from '../src/store/open.js';
import { REPO_ROOT, tempStore } from './helpers/cli.js';
import { freePort, startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { buildFleetFixture, FIXTURE_REPORT_ADDRESS, type FleetFixture } from './helpers/fleet-fixture.js';

/** What the approved stage writes: quarantine at 100 % with the rua enrolment added. */
const QUARANTINE_RECORD = `v=DMARC1; p=quarantine; rua=mailto:${FIXTURE_REPORT_ADDRESS}`;
import { startPdns, type PdnsServer } from './helpers/pdns.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(REPO_ROOT, 'test-output', 'screenshots');
// As root in a sandbox, with no network: no sandbox, no GPU, and nothing that phones home.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the web page in chromium', () => {
  let pdns: PdnsServer;
  let daemon: ReturnType<typeof startDaemonProcess>;
  let browser: Browser;
  let base: string;
  let db: string;
  let fleet: FleetFixture;
  const operator = generateToken();
  const viewer = generateToken();

  before(async () => {
    pdns = await startPdns();
    await pdns.createZone('web.example');
    const temp = tempStore();
    db = temp.db;
    // The fleet as of now: established six days ago through the same PowerDNS, five clean days reported since.
    const store = await openSqliteStore(db);
    const provider = createProvider({ type: 'powerdns', api_url: pdns.apiUrl, api_key_env: 'PDNS_WEB_KEY' }, { env: { PDNS_WEB_KEY: pdns.apiKey } });
    const verify = dnsVerifier({ nameservers: [pdns.dnsServer], timeoutMs: 2000 });
    fleet = await buildFleetFixture(store, { now: new Date(), providerName: 'pdns', provider, verifier: () => verify, domainSuffix: 'web.example' });
    await store.close();

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = join(temp.dir, 'config.yaml');
    writeFileSync(
      config,
      [
        'store: { sqlite: store.sqlite }',
        // Ticks every two seconds, so an approval is applied while the browser waits.
        "schedule: { ingest: '0 0 1 1 *', tick: '*/2 * * * * *' }",
        'providers:',
        `  pdns: { type: powerdns, api_url: "${pdns.apiUrl}", api_key_env: PDNS_WEB_KEY, verify: { nameservers: ["${pdns.dnsServer}"] } }`,
        'api:',
        `  listen: { host: 127.0.0.1, port: ${port} }`,
        '  tokens:',
        `    - { name: otto, role: operator, sha256: ${operator.sha256} }`,
        `    - { name: vera, role: viewer, sha256: ${viewer.sha256} }`,
        '',
      ].join('\n'),
    );
    daemon = startDaemonProcess(config, { PDNS_WEB_KEY: pdns.apiKey, DMARC_ROLLOUT_PLANS: fleet.plansDir });
    await waitFor('the API to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 60_000);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    if (daemon) {
      daemon.child.kill('SIGTERM');
      await daemon.exited;
    }
    await pdns?.stop();
  });

  async function signIn(token: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    assert.match(page.url(), /\/login\?next=%2F$/, 'a visitor is sent to the sign-in form');
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/`);
    return page;
  }

  it('an operator approves a waiting domain and sees the stage change and the audit entry', async () => {
    const page = await signIn(operator.token);
    const row = page.locator('#fleet tr', { hasText: fleet.gated });
    await assert.doesNotReject(row.waitFor());
    assert.match(await row.innerText(), /none:100/);
    assert.match(await row.innerText(), /awaiting approval/i);
    await page.screenshot({ path: join(SCREENSHOTS, 'fleet.png'), fullPage: true });
    await page.getByRole('link', { name: 'Approvals' }).first().click();
    assert.match(await page.locator('#approvals').innerText(), new RegExp(fleet.gated.replace(/\./g, '\\.')));
    await page.screenshot({ path: join(SCREENSHOTS, 'approvals.png'), fullPage: true });
    await page.getByRole('link', { name: 'Fleet' }).first().click();

    await row.getByRole('link', { name: fleet.gated }).click();
    await page.waitForURL(`${base}/domains/${fleet.gated}`);
    await page.getByRole('button', { name: /^Approve quarantine:100/ }).click();
    await page.waitForURL(`${base}/domains/${fleet.gated}`);
    assert.match(await page.getByRole('status').innerText(), /quarantine:100 approved/);

    // The daemon's next ticks advance, write to PowerDNS and verify there; the page then shows the new stage.
    await waitFor(
      'the page to show quarantine:100 in force',
      async () => {
        await page.reload();
        return (await page.locator('#record-now').innerText()) === QUARANTINE_RECORD;
      },
      60_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n--- daemon output ---\n${daemon.output().slice(-4000)}`);
    });
    assert.match(await page.locator('main').innerText(), /quarantine:100 \(2 of 3\)|quarantine:100 · 2 of 3|quarantine:100\s+2 of 3/);
    assert.deepEqual((await queryTxt(`_dmarc.${fleet.gated}`, [pdns.dnsServer])).txt, [QUARANTINE_RECORD]);
    assert.match(await page.locator('#history').innerText(), /none:100\s*(→|->)\s*quarantine:100/);
    await page.screenshot({ path: join(SCREENSHOTS, 'domain.png'), fullPage: true });

    await page.getByRole('link', { name: 'Audit log' }).first().click();
    const approval = page
      .locator('#audit tr')
      .filter({ has: page.locator('td', { hasText: /^approve$/ }) })
      .filter({ hasText: fleet.gated })
      .first();
    assert.match(await approval.innerText(), /web:otto/);
    assert.match(await approval.innerText(), /quarantine:100 approved/);
    await page.screenshot({ path: join(SCREENSHOTS, 'audit.png'), fullPage: true });
    await page.context().close();
  });

  it('a viewer sees no buttons, and an approval forged with the page’s own CSRF token is refused', async () => {
    const page = await signIn(viewer.token);
    await page.goto(`${base}/domains/${fleet.spoofed}`);
    assert.match(await page.locator('h1').innerText(), new RegExp(fleet.spoofed.replace(/\./g, '\\.')));
    assert.equal(await page.getByRole('button', { name: /^Approve/ }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /^(Pause|Roll back)/ }).count(), 0);
    // The viewer builds the operator's form by hand, with the CSRF token of their own logout form.
    const status = await page.evaluate(async (domain) => {
      const csrf = (document.querySelector('input[name="_csrf"]') as HTMLInputElement).value;
      const res = await fetch(`/ui/domains/${domain}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, reason: 'sneaky' }).toString(),
      });
      return res.status;
    }, fleet.spoofed);
    assert.equal(status, 403);
    const store = await openSqliteStore(db);
    assert.equal((await getDomain(store.db, fleet.spoofed))!.approved_stage_index, null);
    await store.close();
    await page.context().close();
  });
});
