/**
 * The holes an attack pass found in the page and the API, each reproduced
 * and shown closed: a CR, LF or tab in the sign-in `next` (which killed the
 * process through the session-save callback), page actions named after
 * Object.prototype members, a session row per anonymous visitor, unthrottled
 * sign-in, bodies validated before auth, and an anonymous OpenAPI document.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { buildApiServer, startApiServer, type RunningApiServer } from '../src/api/server.js';
import { safeLocalPath } from '../src/api/redirect.js';
import { PersistentSessionStore } from '../src/api/session-store.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { SIGN_IN_LIMIT } from '../src/api/web.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { LOOPBACK_API_CONFIG } from './helpers/api-server.js';
import { tempStore } from './helpers/cli.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { csrfOf, formSignIn, postForm } from './helpers/web.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const config = LOOPBACK_API_CONFIG;

describe('the sign-in redirect target', () => {
  it('keeps same-site paths of safe characters', () => {
    for (const good of ['/', '/domains/gated.example', '/audit?domain=a.example&before=12', '/domains/xn--bcher-kva.example', '/domains/b%C3%BCcher.example']) {
      assert.equal(safeLocalPath(good), good);
    }
  });
  it('refuses CR, LF, tab, backslash, a second slash, other hosts and schemes, raw or encoded', () => {
    const bad = [
      '/\r\nSet-Cookie: x=1', '/%0A/x', '/%0d%0aLocation:%20//evil', '/\t/evil.example', '/%09/evil.example', '//evil.example',
      '/\\evil.example', '/%5cevil.example', '/%2f%2fevil.example', '/%252f%252fevil.example', '/%25252f%25252fevil', '/a//b',
      'https://evil.example/', 'evil.example', '', '/%', '/%E0%A4%A', '/ space', '/\u0000', '/é', '/x'.repeat(2000), 42, null, ['/'],
    ];
    for (const next of bad) assert.equal(safeLocalPath(next), '/', JSON.stringify(next));
  });
});

describe('the page and the API under attack', () => {
  let store: Store;
  let server: RunningApiServer;
  let fleet: FleetFixture;
  const viewer = generateToken();
  const operator = generateToken();
  const tokens = () =>
    new TokenSet([
      { name: 'vera', role: 'viewer', sha256: viewer.sha256 },
      { name: 'otto', role: 'operator', sha256: operator.sha256 },
    ]);
  const context = () => ({ store, now: () => NOW, loadPlan: fleet.loadPlan, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) });

  before(async () => {
    store = await openSqliteStore(tempStore().db);
    fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
    server = await startApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context: context() });
  });
  after(async () => {
    await server?.close();
    await store?.close();
  });
  const sessions = async () => (await store.db.selectFrom('web_sessions').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n;

  it('a CR, LF or tab in next sends a signed-in viewer home, and the server goes on', async () => {
    for (const next of ['/\r\nX-Injected: 1', '/%0A/x', '/\t/evil.example', '/%09/evil.example']) {
      const { res } = await formSignIn(server.url, viewer.token, next);
      assert.equal(res.status, 303, JSON.stringify(next));
      assert.equal(res.headers.get('location'), '/');
      assert.equal(res.headers.get('x-injected'), null);
    }
    const page = await (await fetch(`${server.url}/login?next=${encodeURIComponent('/\r\n/x')}`)).text();
    assert.match(page, /name="next" value="\/"/, 'a poisoned link carries only / into the form');
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });

  it('a header with a control character is refused with a 500, the session saved, and the process lives', async () => {
    const app = await buildApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context: context() });
    // A route that makes the mistake the sign-in route used to make: a raw value into Location, after touching the session.
    app.get('/broken', async (request, reply) => {
      request.session.set('flash', { kind: 'ok', text: 'x' });
      return reply.redirect(`/${(request.query as { to: string }).to}`, 303);
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    let unhandled: unknown;
    const onUnhandled = (reason: unknown) => (unhandled = reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const res = await fetch(`${url}/broken?to=${encodeURIComponent('\r\n/x')}`, { redirect: 'manual' });
      assert.equal(res.status, 500);
      assert.equal(res.headers.get('location'), null);
      assert.equal((await res.json()).error.code, 'internal');
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(unhandled, undefined);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await app.close();
    }
  });

  it('a session callback that throws is reported, not left as an unhandled rejection', async () => {
    const errors: unknown[] = [];
    const sessionStore = new PersistentSessionStore(store, 60_000, { onCallbackError: (e) => errors.push(e) });
    let unhandled: unknown;
    const onUnhandled = (reason: unknown) => (unhandled = reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const boom = () => {
        throw new TypeError('Invalid character in header content ["location"]');
      };
      await new Promise<void>((resolve) => sessionStore.set('sid', { cookie: {} } as never, () => (resolve(), boom())));
      await new Promise<void>((resolve) => sessionStore.get('sid', () => (resolve(), boom())));
      await new Promise<void>((resolve) => sessionStore.destroy('sid', () => (resolve(), boom())));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(errors.length, 3);
      assert.equal(unhandled, undefined);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('an anonymous visitor to the sign-in page leaves no session row; signing in makes one', async () => {
    await store.db.deleteFrom('web_sessions').execute();
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${server.url}/login`)).status, 200);
    assert.equal((await fetch(`${server.url}/domains/${fleet.gated}`, { redirect: 'manual' })).status, 303);
    assert.equal(await sessions(), 0);
    const { res } = await formSignIn(server.url, viewer.token);
    assert.equal(res.status, 303);
    assert.equal(await sessions(), 1);
  });

  it('the sign-in form refuses a post without its cookie (a cross-site form)', async () => {
    const login = await fetch(`${server.url}/login`);
    const csrf = csrfOf(await login.text());
    const res = await postForm(server.url, '/ui/login', '', { token: operator.token, _csrf: csrf, next: '/' });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('set-cookie')?.includes('dmarc_rollout_session'), false);
  });

  it('page actions come from a fixed list: __proto__, toString and constructor are 404s', async () => {
    const { session } = await formSignIn(server.url, operator.token);
    const page = await (await fetch(`${server.url}/domains/${fleet.gated}`, { headers: { cookie: session! } })).text();
    for (const action of ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
      const res = await postForm(server.url, `/ui/domains/${fleet.gated}/${action}`, session!, { _csrf: csrfOf(page) });
      assert.equal(res.status, 404, action);
    }
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  });

  it('sign-in is rate-limited per client: after the failures, even the right token waits (429, Retry-After)', async () => {
    const limited = await startApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context: context() });
    try {
      for (let i = 0; i < SIGN_IN_LIMIT.attempts; i++) assert.equal((await formSignIn(limited.url, generateToken().token)).res.status, 401);
      const { res } = await formSignIn(limited.url, operator.token);
      assert.equal(res.status, 429);
      assert.ok(Number(res.headers.get('retry-after')) > 0);
      assert.match(await res.text(), /Too many failed sign-ins/);
    } finally {
      await limited.close();
    }
  });

  it('authentication comes before validation: a bad body without a token is 401, with a viewer token 403', async () => {
    const post = (token?: string) =>
      fetch(`${server.url}/api/v1/domains/${fleet.gated}/force`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ to: 42, unknown: true }),
      });
    assert.equal((await post()).status, 401);
    assert.equal((await post(viewer.token)).status, 403);
    assert.equal((await post(operator.token)).status, 400);
    const upload = await fetch(`${server.url}/api/v1/reports`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"not":"xml"' });
    assert.equal(upload.status, 401);
  });

  it('the OpenAPI document needs a viewer token', async () => {
    assert.equal((await fetch(`${server.url}/api/v1/openapi.json`)).status, 401);
    assert.equal((await fetch(`${server.url}/api/v1/openapi.json`, { headers: { authorization: `Bearer ${viewer.token}` } })).status, 200);
  });
});
