/**
 * The HTTP API over real HTTP on loopback: every endpoint, who may call it
 * (no token, viewer, operator, page session without CSRF), and bad input
 * answered with the field and the reason. The fleet behind it is built with
 * the real engine on the in-memory zone. On SQLite and on Postgres (several
 * daemons serve the API from one Postgres store): one suite looped over the
 * dialects, each run on a fresh store of its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { createDaemonMetrics } from '../src/daemon/metrics.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { listPlans, planDirectories } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { getDomain } from '../src/store/domains.js';
import { getIntent } from '../src/store/intents.js';
import { postgresConnectionFromUrl } from '../src/store/location.js';
import { openStore, type Store } from '../src/store/open.js';
import { storeDialects } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { csrfOf, formSignIn, postForm } from './helpers/web.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';
import { loopbackApiAccess } from './helpers/api-server.js';

const NOW = new Date('2026-06-15T12:00:00Z');

for (const dialect of storeDialects()) describe(`the HTTP API, on ${dialect.name}`, () => {
  let store: Store;
  let server: RunningApiServer;
  let fleet: FleetFixture;
  const viewer = generateToken();
  const operator = generateToken();
  let dir: string;
  const dns = new MemoryDns();

  before(async () => {
    dir = tempDir('dmarc-rollout-api-');
    store = await dialect.open();
    fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: dns });
    const metrics = createDaemonMetrics({ store, loadPlan: fleet.loadPlan });
    server = await startApiServer({
      ...loopbackApiAccess(viewer, operator),
      context: {
        store,
        now: () => NOW,
        loadPlan: fleet.loadPlan,
        sourceRules: [{ domain: null, kind: 'dkim', value: 'esp.example', verdict: 'authorised' }],
        metrics,
        ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: `${dir}/rejected`, now: () => NOW }),
      },
    });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });

  const call = async (method: string, path: string, opts: { token?: string; body?: unknown; raw?: Buffer | string; type?: string; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | Blob | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    } else if (opts.raw !== undefined) {
      headers['content-type'] = opts.type ?? 'application/xml';
      body = typeof opts.raw === 'string' ? opts.raw : new Blob([new Uint8Array(opts.raw)]);
    }
    const res = await fetch(`${server.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}), redirect: 'manual' });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status: res.status, json, text, headers: res.headers };
  };
  const asViewer = (method: string, path: string, opts: Parameters<typeof call>[2] = {}) => call(method, path, { ...opts, token: viewer.token });
  const asOperator = (method: string, path: string, opts: Parameters<typeof call>[2] = {}) => call(method, path, { ...opts, token: operator.token });

  describe('access', () => {
    it('refuses a request with no token, with a JSON error and a Bearer challenge', async () => {
      const res = await call('GET', '/api/v1/domains');
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="dmarc-rollout"');
      assert.equal(res.json.error.code, 'unauthorized');
      assert.deepEqual(res.json.error.issues, [{ field: 'headers.authorization', reason: 'missing' }]);
    });

    it('refuses an unknown token and a header that is not Bearer, naming the header', async () => {
      const unknown = await call('GET', '/api/v1/domains', { token: generateToken().token });
      assert.equal(unknown.status, 401);
      assert.equal(unknown.json.error.issues[0].field, 'headers.authorization');
      const basic = await call('GET', '/api/v1/domains', { headers: { authorization: 'Basic b3R0bzpwdw==' } });
      assert.equal(basic.status, 401);
      assert.match(basic.json.error.message, /Bearer <token>/);
    });

    it('lets a viewer read but not act, and nothing changes', async () => {
      assert.equal((await asViewer('GET', '/api/v1/domains')).status, 200);
      const res = await asViewer('POST', `/api/v1/domains/${fleet.gated}/approve`, { body: {} });
      assert.equal(res.status, 403);
      assert.match(res.json.error.message, /"vera" holds a viewer token; this needs operator/);
      assert.equal((await getDomain(store.db, fleet.gated))!.approved_stage_index, null);
    });

    it('needs the CSRF token for a state change made with a page session', async () => {
      const { res: signIn, cookie, session } = await formSignIn(server.url, operator.token);
      assert.equal(signIn.status, 303);
      assert.ok(session);
      assert.notEqual(session, cookie, 'a new session id at sign-in');
      const read = await call('GET', '/api/v1/domains', { headers: { cookie: session } });
      assert.equal(read.status, 200, 'the session reads like a token');
      const forged = await call('POST', `/api/v1/domains/${fleet.steady}/pause`, { headers: { cookie: session }, body: { reason: 'forged' } });
      assert.equal(forged.status, 403);
      assert.equal(forged.json.error.issues[0].field, 'body._csrf');
      assert.equal((await getDomain(store.db, fleet.steady))!.state, 'active');

      const fleetPage = await (await fetch(`${server.url}/`, { headers: { cookie: session } })).text();
      const signOut = await postForm(server.url, '/ui/logout', session, { _csrf: csrfOf(fleetPage) });
      assert.equal(signOut.status, 303);
      assert.equal((await call('GET', '/api/v1/domains', { headers: { cookie: session } })).status, 401, 'the session is gone after logout');
    });

    it('refuses to sign in with an unknown token, and sends a visitor to the sign-in form', async () => {
      const { res: wrong, cookie, csrf } = await formSignIn(server.url, generateToken().token);
      assert.equal(wrong.status, 401);
      assert.match(await wrong.text(), /That token is not known here/);
      const visitor = await fetch(`${server.url}/domains/${fleet.gated}`, { redirect: 'manual' });
      assert.equal(visitor.status, 303);
      assert.equal(visitor.headers.get('location'), `/login?next=${encodeURIComponent(`/domains/${fleet.gated}`)}`);
      const offsite = await postForm(server.url, '/ui/login', cookie, { token: viewer.token, _csrf: csrf, next: '//evil.example/' });
      assert.equal(offsite.status, 303);
      assert.equal(offsite.headers.get('location'), '/', 'never redirected off the site');
    });
  });

  describe('sessions', () => {
    /** A second server on the same store, as after a restart of the daemon (or another daemon on `on`, a store of its own on the same database). */
    const restartedServer = (secret: string | undefined, on: Store = store) =>
      startApiServer({
        config: {
          listen: { host: '127.0.0.1', port: 0 },
          tokens: [],
          session: { max_age_hours: 1, secure_cookie: false, ...(secret ? { secret_env: 'TEST_SESSION_SECRET' } : {}) },
          upload_max_bytes: 1024,
          trust_proxy: false,
        },
        tokens: new TokenSet([{ name: 'otto', role: 'operator', sha256: operator.sha256 }]),
        logger: pino({ level: 'silent' }),
        env: secret ? { TEST_SESSION_SECRET: secret } : {},
        context: { store: on, now: () => NOW, loadPlan: fleet.loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) },
      });
    const signInAt = async (url: string) => (await formSignIn(url, operator.token)).session!;

    it('survive a restart when the session secret is set, and are kept only by the hash of their id', async () => {
      const secret = 'a-session-secret-of-more-than-32-characters';
      const first = await restartedServer(secret);
      const cookie = await signInAt(first.url);
      await first.close();
      const second = await restartedServer(secret);
      try {
        assert.equal((await fetch(`${second.url}/api/v1/domains`, { headers: { cookie } })).status, 200);
      } finally {
        await second.close();
      }
      const sessionId = decodeURIComponent(cookie.split('=')[1]!).split('.')[0]!;
      const rows = await store.db.selectFrom('web_sessions').selectAll().execute();
      assert.ok(rows.length > 0);
      assert.ok(rows.every((r) => r.id_hash !== sessionId && !r.data.includes(sessionId)), 'no usable session id at rest');
    });

    it('end at a restart without a session secret', async () => {
      const first = await restartedServer(undefined);
      const cookie = await signInAt(first.url);
      assert.equal((await fetch(`${first.url}/api/v1/domains`, { headers: { cookie } })).status, 200);
      await first.close();
      const second = await restartedServer(undefined);
      try {
        assert.equal((await fetch(`${second.url}/api/v1/domains`, { headers: { cookie } })).status, 401);
      } finally {
        await second.close();
      }
    });

    // Several daemons serve the API from one Postgres store at once. Not on SQLite: one daemon holds a SQLite store (the single-instance lock).
    if (dialect.name === 'postgres') {
      it('are one for daemons serving one Postgres store at once: signed in on one, known to the other, signed out on both', async () => {
        const secret = 'a-session-secret-shared-by-every-daemon';
        const other = await openStore({ kind: 'postgres', connection: postgresConnectionFromUrl(dialect.cliEnv(store).DMARC_ROLLOUT_DATABASE_URL!) });
        const a = await restartedServer(secret);
        const b = await restartedServer(secret, other);
        try {
          const cookie = await signInAt(a.url);
          assert.equal((await fetch(`${b.url}/api/v1/domains`, { headers: { cookie } })).status, 200, 'the other daemon knows the session');
          const page = await (await fetch(`${b.url}/`, { headers: { cookie } })).text();
          assert.equal((await postForm(b.url, '/ui/logout', cookie, { _csrf: csrfOf(page) })).status, 303);
          assert.equal((await fetch(`${a.url}/api/v1/domains`, { headers: { cookie } })).status, 401, 'signed out on the other daemon is signed out here');
        } finally {
          await Promise.all([a.close(), b.close()]);
          await other.close();
        }
      });
    }
  });

  describe('domains', () => {
    it('lists the fleet with figures and next decisions, filtered', async () => {
      const all = await asViewer('GET', '/api/v1/domains');
      assert.deepEqual(all.json.domains.map((d: any) => d.domain).sort(), [fleet.gated, fleet.paused, fleet.spoofed, fleet.steady].sort());
      const gated = all.json.domains.find((d: any) => d.domain === fleet.gated);
      assert.equal(gated.stage, 'none:100');
      assert.equal(gated.awaiting_approval, true);
      assert.equal(gated.next_decision.action, 'await-approval');
      assert.equal(gated.authorised_fail_rate, 0);
      assert.equal(gated.authorised_messages, 2000);
      const spoofed = all.json.domains.find((d: any) => d.domain === fleet.spoofed);
      assert.equal(spoofed.spoofing_messages, 375);
      const paused = await asViewer('GET', '/api/v1/domains?state=paused');
      assert.deepEqual(paused.json.domains.map((d: any) => d.domain), [fleet.paused]);
      // Spoofing is shown, never blocking: the spoofed domain's own mail is clean, so it waits too.
      const waiting = await asViewer('GET', '/api/v1/domains?awaiting_approval=true');
      assert.deepEqual(waiting.json.domains.map((d: any) => d.domain).sort(), [fleet.gated, fleet.spoofed].sort());
      const notWaiting = await asViewer('GET', '/api/v1/domains?awaiting_approval=false');
      assert.deepEqual(notWaiting.json.domains.map((d: any) => d.domain).sort(), [fleet.paused, fleet.steady].sort());
      const q = await asViewer('GET', '/api/v1/domains?q=STEADY');
      assert.deepEqual(q.json.domains.map((d: any) => d.domain), [fleet.steady]);
    });

    it('answers a bad filter with the field and the reason', async () => {
      const res = await asViewer('GET', '/api/v1/domains?state=asleep');
      assert.equal(res.status, 400);
      assert.equal(res.json.error.code, 'invalid');
      assert.equal(res.json.error.issues[0].field, 'querystring.state');
      assert.match(res.json.error.issues[0].reason, /active|paused/);
      const unknown = await asViewer('GET', '/api/v1/domains?colour=blue');
      assert.equal(unknown.status, 400);
      assert.match(unknown.json.error.issues[0].reason, /unknown field\(s\) colour/);
    });

    it('shows one domain in depth: records now and next, checks, sources, the daily series and history', async () => {
      const res = await asViewer('GET', `/api/v1/domains/${fleet.gated}`);
      assert.equal(res.status, 200);
      const v = res.json;
      assert.equal(v.record_now, 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example');
      assert.equal(v.record_next, 'v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.example');
      assert.equal(v.next_stage, 'quarantine:100');
      assert.deepEqual(v.plan_stages.map((s: any) => s.label), ['none:100', 'quarantine:100', 'reject:100']);
      assert.ok(v.checks.some((c: any) => c.rule === 'approval' && c.outcome === 'inconclusive'));
      assert.deepEqual(v.sources.map((s: any) => [s.ip, s.class]), [['192.0.2.10', 'authorised']]);
      // From the establishing write (six days ago) through today; days without reports are zeros.
      assert.deepEqual(v.daily.map((d: any) => [d.day, d.messages]), [
        ['2026-06-09', 0],
        ['2026-06-10', 400],
        ['2026-06-11', 400],
        ['2026-06-12', 400],
        ['2026-06-13', 400],
        ['2026-06-14', 400],
        ['2026-06-15', 0],
      ]);
      assert.deepEqual(v.daily.at(-2), { day: '2026-06-14', messages: 400, authorised: 400, authorised_failed: 0, authorised_fail_rate: 0, spoofing: 0, stage: 'none:100' });
      assert.equal(v.daily.at(-1).authorised_fail_rate, null);
      assert.deepEqual(v.history.map((h: any) => h.to_stage), ['none:100', 'none:100']);
      assert.ok(v.audit.some((e: any) => e.action === 'establish'));
      const spoofed = await asViewer('GET', `/api/v1/domains/${fleet.spoofed}?days=3`);
      assert.deepEqual(spoofed.json.daily.map((d: any) => d.day), ['2026-06-12', '2026-06-13', '2026-06-14', '2026-06-15']);
      assert.equal(spoofed.json.daily[0].spoofing, 75);
    });

    it('answers 404 for a domain not enrolled and 400 for a name that is not one', async () => {
      const missing = await asViewer('GET', '/api/v1/domains/nobody.example');
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.message, 'nobody.example is not enrolled');
      const bad = await asViewer('GET', '/api/v1/domains/not_a..domain');
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.issues[0].field, 'params.domain');
      // Names are read as enrolment reads them: any case, a trailing dot, Unicode as its A-label.
      assert.equal((await asViewer('GET', `/api/v1/domains/${fleet.gated.toUpperCase()}.`)).json.domain, fleet.gated);
      const idn = await asViewer('GET', `/api/v1/domains/${encodeURIComponent('bücher.example')}`);
      assert.equal(idn.status, 404);
      assert.equal(idn.json.error.message, 'xn--bcher-kva.example is not enrolled');
    });

    it('lists the approvals queue', async () => {
      const res = await asViewer('GET', '/api/v1/approvals');
      assert.deepEqual(
        res.json.domains.map((d: any) => [d.domain, d.next_decision.to]).sort(),
        [
          [fleet.gated, 'quarantine:100'],
          [fleet.spoofed, 'quarantine:100'],
        ].sort(),
      );
    });
  });

  describe('actions', () => {
    it('approves the gated stage, audited with the token name, and the queue shows it approved', async () => {
      const res = await asOperator('POST', `/api/v1/domains/${fleet.gated}/approve`, { body: { reason: 'change ticket 4711' } });
      assert.equal(res.status, 200);
      assert.match(res.json.message, /quarantine:100 approved/);
      assert.equal(res.json.status.approved_stage, 'quarantine:100');
      assert.equal(res.json.status.next_decision.action, 'advance');
      const audit = await asViewer('GET', `/api/v1/audit?domain=${fleet.gated}&action=approve`);
      assert.equal(audit.json.events[0].actor, 'api:otto');
      assert.match(audit.json.events[0].reason, /change ticket 4711/);
    });

    it('pauses only with a reason, and resumes', async () => {
      const missing = await asOperator('POST', `/api/v1/domains/${fleet.steady}/pause`, { body: {} });
      assert.equal(missing.status, 400);
      assert.equal(missing.json.error.issues[0].field, 'body.reason');
      const blank = await asOperator('POST', `/api/v1/domains/${fleet.steady}/pause`, { body: { reason: '   ' } });
      assert.equal(blank.status, 400);
      assert.equal(blank.json.error.issues[0].reason, 'must not be empty');
      const paused = await asOperator('POST', `/api/v1/domains/${fleet.steady}/pause`, { body: { reason: 'mail migration' } });
      assert.equal(paused.status, 200);
      assert.equal(paused.json.status.state, 'paused');
      assert.equal(paused.json.status.state_reason, 'mail migration');
      const resumed = await asOperator('POST', `/api/v1/domains/${fleet.steady}/resume`, { body: {} });
      assert.equal(resumed.json.status.state, 'active');
    });

    it('refuses a rollback from the first stage as a conflict, and an unknown body field as bad input', async () => {
      const res = await asOperator('POST', `/api/v1/domains/${fleet.steady}/rollback`, { body: {} });
      assert.equal(res.status, 409);
      assert.match(res.json.error.message, /first stage/);
      const extra = await asOperator('POST', `/api/v1/domains/${fleet.steady}/rollback`, { body: { to: 'none:100', force: true } });
      assert.equal(extra.status, 400);
      assert.match(extra.json.error.issues[0].reason, /unknown field\(s\) force/);
      const notJson = await asOperator('POST', `/api/v1/domains/${fleet.steady}/rollback`, { raw: '{"to":', type: 'application/json' });
      assert.equal(notJson.status, 400);
      assert.equal(notJson.json.error.issues[0].field, 'body');
    });

    it('forces only to a stage of the plan and with a reason, and queues the change for the tick', async () => {
      const wrongStage = await asOperator('POST', `/api/v1/domains/${fleet.spoofed}/force`, { body: { to: 'quarantine:50', reason: 'x' } });
      assert.equal(wrongStage.status, 400);
      assert.equal(wrongStage.json.error.issues[0].field, 'body.to');
      assert.match(wrongStage.json.error.issues[0].reason, /not a stage of plan gated \(none:100, quarantine:100, reject:100\)/);
      const noReason = await asOperator('POST', `/api/v1/domains/${fleet.spoofed}/force`, { body: { to: 'reject:100' } });
      assert.equal(noReason.status, 400);
      assert.equal(noReason.json.error.issues[0].field, 'body.reason');
      const ok = await asOperator('POST', `/api/v1/domains/${fleet.spoofed}/force`, { body: { to: 'reject:100', reason: 'spoofing campaign, owner consents' } });
      assert.equal(ok.status, 200);
      assert.deepEqual(
        { to: ok.json.status.change_in_flight.to, status: ok.json.status.change_in_flight.status, actor: ok.json.status.change_in_flight.actor },
        { to: 'reject:100', status: 'requested', actor: 'api:otto' },
      );
      assert.equal((await getIntent(store.db, fleet.spoofed))!.to_index, 2);
    });

    it('rolls back to a named earlier stage once a tick has applied the forced one', async () => {
      await fleet.world.tick(NOW, { domains: [fleet.spoofed] });
      assert.equal((await getDomain(store.db, fleet.spoofed))!.stage_index, 2, 'the forced reject:100 is verified');
      const later = await asOperator('POST', `/api/v1/domains/${fleet.spoofed}/rollback`, { body: { to: 'reject:100' } });
      assert.equal(later.status, 409, 'a stage of the plan, but not before the current one');
      assert.match(later.json.error.message, /use force/);
      const res = await asOperator('POST', `/api/v1/domains/${fleet.spoofed}/rollback`, { body: { to: 'none:100', reason: 'invoices bouncing' } });
      assert.equal(res.status, 200);
      assert.equal(res.json.status.change_in_flight.to, 'none:100');
      assert.equal(res.json.status.change_in_flight.action, 'rollback');
    });
  });

  describe('plans', () => {
    it('lists plan files with problems, and shows one plan', async () => {
      const list = await asViewer('GET', '/api/v1/plans');
      const names = list.json.plans.map((p: any) => p.name);
      assert.ok(names.includes('default'));
      const one = await asViewer('GET', '/api/v1/plans/default');
      assert.equal(one.status, 200);
      assert.equal(one.json.stages.length, listPlans(planDirectories()).find((p) => p.name === 'default')!.plan!.stages.length);
      assert.equal(one.json.stages.find((s: any) => s.requires_approval).label, 'reject:1');
      assert.equal((await asViewer('GET', '/api/v1/plans/nope')).status, 404);
      const bad = await asViewer('GET', '/api/v1/plans/..%2Fetc');
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.issues[0].field, 'params.name');
    });
  });

  describe('allowlist', () => {
    it('adds an entry once, lists it with the config entries, and removes it, all audited', async () => {
      const add = await asOperator('POST', '/api/v1/allowlist', { body: { domain: fleet.spoofed, source: 'dkim:mailer.esp.example', note: 'newsletter' } });
      assert.equal(add.status, 200);
      assert.equal(add.json.created, true);
      assert.equal(add.json.entry.source, 'dkim:mailer.esp.example');
      const again = await asOperator('POST', '/api/v1/allowlist', { body: { domain: fleet.spoofed, source: 'dkim:mailer.esp.example' } });
      assert.equal(again.json.created, false);
      const list = await asViewer('GET', `/api/v1/allowlist?domain=${fleet.spoofed}`);
      assert.deepEqual(
        list.json.entries.map((e: any) => [e.source, e.from]),
        [
          ['dkim:mailer.esp.example', 'store'],
          ['dkim:esp.example', 'config'],
        ],
      );
      const removed = await asOperator('DELETE', `/api/v1/allowlist/${add.json.entry.id}?reason=contract+ended`);
      assert.equal(removed.status, 200);
      assert.equal((await asViewer('GET', `/api/v1/allowlist?domain=${fleet.spoofed}`)).json.entries.length, 1);
      const audit = await asViewer('GET', '/api/v1/audit?actor=api:otto&action=remove-source-rule');
      assert.match(audit.json.events[0].reason, /contract ended/);
      assert.equal((await asOperator('DELETE', `/api/v1/allowlist/${add.json.entry.id}`)).status, 404);
    });

    it('refuses a source that is not one, and a viewer', async () => {
      const bad = await asOperator('POST', '/api/v1/allowlist', { body: { domain: null, source: 'mail.example' } });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.issues[0].field, 'body.source');
      const viewerTry = await asViewer('POST', '/api/v1/allowlist', { body: { domain: null, source: '192.0.2.0/24' } });
      assert.equal(viewerTry.status, 403);
      const notEnrolled = await asOperator('POST', '/api/v1/allowlist', { body: { domain: 'other.example', source: '192.0.2.0/24' } });
      assert.equal(notEnrolled.status, 404);
    });
  });

  describe('report upload', () => {
    const xml = aggregateReportXml({ reporter: 'upload.example', domain: 'steady.example', day: '2026-06-13', rows: [cleanRow('steady.example', '192.0.2.40', 30)] });

    it('stores a report once, counts it in the metrics, and keeps a rejected input with its reason', async () => {
      const stored = await asOperator('POST', '/api/v1/reports?name=upload.xml', { raw: xml });
      assert.equal(stored.status, 201);
      assert.equal(stored.json.status, 'stored');
      assert.equal(stored.json.source, 'upload:otto/upload.xml');
      assert.equal(stored.json.messages, 30);
      const again = await asOperator('POST', '/api/v1/reports', { raw: xml, type: 'application/octet-stream' });
      assert.equal(again.status, 200);
      assert.equal(again.json.status, 'duplicate');
      const junk = await asOperator('POST', '/api/v1/reports', { raw: 'this is not a report', type: 'text/plain' });
      assert.equal(junk.status, 422);
      assert.equal(junk.json.status, 'rejected');
      assert.ok(junk.json.reason.length > 0);
      const kept = await store.db.selectFrom('rejected_inputs').selectAll().where('source', '=', 'upload:otto').execute();
      assert.equal(kept.length, 1);
      const metrics = await asViewer('GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /^dmarc_rollout_ingest_total\{source="upload",outcome="stored"\} 1$/m);
      assert.match(metrics.text, /^dmarc_rollout_ingest_total\{source="upload",outcome="duplicate"\} 1$/m);
      assert.match(metrics.text, /^dmarc_rollout_ingest_total\{source="upload",outcome="rejected"\} 1$/m);
    });

    it('refuses an empty body, one over the size limit, and a viewer', async () => {
      const empty = await asOperator('POST', '/api/v1/reports', { raw: '' });
      assert.equal(empty.status, 400);
      assert.equal(empty.json.error.issues[0].field, 'body');
      const big = await asOperator('POST', '/api/v1/reports', { raw: Buffer.alloc(65 * 1024, 0x41) });
      assert.equal(big.status, 413);
      assert.equal(big.json.error.code, 'too-large');
      assert.equal((await asViewer('POST', '/api/v1/reports', { raw: xml })).status, 403);
    });
  });

  describe('audit log', () => {
    it('pages newest first and filters', async () => {
      const first = await asViewer('GET', '/api/v1/audit?limit=2');
      assert.equal(first.json.events.length, 2);
      assert.ok(first.json.events[0].id > first.json.events[1].id);
      const second = await asViewer('GET', `/api/v1/audit?limit=2&before=${first.json.next_before}`);
      assert.ok(second.json.events[0].id < first.json.events[1].id);
      const pauses = await asViewer('GET', `/api/v1/audit?domain=${fleet.paused.toUpperCase()}&action=pause`);
      assert.deepEqual(pauses.json.events.map((e: any) => [e.actor, e.reason]), [['test:setup', 'waiting for the new mail gateway']]);
      const engine = await asViewer('GET', '/api/v1/audit?actor=engine&limit=500');
      assert.ok(engine.json.events.every((e: any) => e.actor === 'engine'));
      assert.equal(engine.json.next_before, null);
      assert.ok(engine.json.events.some((e: any) => e.details && Array.isArray(e.details.checks)), 'decisions carry their checks');
    });

    it('answers a bad page size or domain with the field', async () => {
      const res = await asViewer('GET', '/api/v1/audit?limit=0');
      assert.equal(res.status, 400);
      assert.equal(res.json.error.issues[0].field, 'querystring.limit');
      const name = await asViewer('GET', '/api/v1/audit?domain=not_a..domain');
      assert.equal(name.status, 400);
      assert.equal(name.json.error.issues[0].field, 'querystring.domain');
    });
  });

  describe('OpenAPI and the rest', () => {
    it('publishes an OpenAPI document of every endpoint, generated from the schemas', async () => {
      const res = await asViewer('GET', '/api/v1/openapi.json');
      assert.equal(res.status, 200);
      assert.equal(res.json.openapi, '3.1.0');
      const paths = Object.keys(res.json.paths).sort();
      assert.deepEqual(paths, [
        '/api/v1/allowlist',
        '/api/v1/allowlist/{id}',
        '/api/v1/approvals',
        '/api/v1/audit',
        '/api/v1/domains',
        '/api/v1/domains/{domain}',
        '/api/v1/domains/{domain}/approve',
        '/api/v1/domains/{domain}/force',
        '/api/v1/domains/{domain}/pause',
        '/api/v1/domains/{domain}/resume',
        '/api/v1/domains/{domain}/rollback',
        '/api/v1/domains/{domain}/set-plan',
        '/api/v1/domains/{domain}/set-provider',
        '/api/v1/domains/{domain}/unenroll',
        '/api/v1/notifications',
        '/api/v1/notifications/retry',
        '/api/v1/notifications/test',
        '/api/v1/plans',
        '/api/v1/plans/{name}',
        '/api/v1/reports',
        '/api/v1/summary',
      ]);
      assert.equal(res.json.components.securitySchemes.bearer.scheme, 'bearer');
      const force = res.json.paths['/api/v1/domains/{domain}/force'].post;
      assert.deepEqual(force.requestBody.content['application/json'].schema.required.sort(), ['reason', 'to']);
      assert.ok(res.json.components.schemas.Error, 'the error shape is documented');
    });

    it('answers an unknown route with the JSON error shape, and /healthz without a token', async () => {
      const res = await asViewer('GET', '/api/v1/nothing');
      assert.equal(res.status, 404);
      assert.equal(res.json.error.code, 'not-found');
      const page = await call('GET', '/nope', { headers: { accept: 'text/html,application/xhtml+xml' } });
      assert.equal(page.status, 404);
      assert.match(page.headers.get('content-type')!, /^text\/html/);
      assert.match(page.text, /no route GET \/nope/);
      assert.equal((await call('GET', '/healthz')).status, 200);
      const css = await asViewer('GET', '/assets/app.css');
      assert.match(css.headers.get('content-type')!, /^text\/css/);
      assert.equal(css.headers.get('cache-control'), 'public, max-age=3600');
      const data = await asViewer('GET', '/api/v1/domains');
      assert.equal(data.headers.get('cache-control'), 'no-store', 'what a holder sees stays out of shared caches');
      assert.match(data.headers.get('content-security-policy')!, /default-src 'self'/);
      assert.equal((await call('GET', '/metrics')).status, 401);
    });
  });
});
