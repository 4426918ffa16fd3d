/**
 * The HTTP routes over malformed input: fast-check builds requests from the
 * real routes' shapes and breaks them (odd paths and encodings, wrong types,
 * unknown fields, broken JSON and forms, hostile headers and cookies, with no
 * token, a viewer's or an operator's). The server never answers 5xx, every
 * /api error has the one error shape, and it still answers afterwards.
 * Bounded and seeded; the counts by status are printed.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken } from '../src/api/tokens.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { loopbackApiAccess } from './helpers/api-server.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const SEED = 1313;
let store: Store;
let server: RunningApiServer;
let fleet: FleetFixture;
const viewer = generateToken();
const operator = generateToken();

before(async () => {
  const temp = tempStore('dmarc-rollout-fuzz-http-');
  store = await openSqliteStore(temp.db);
  fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: new MemoryDns() });
  server = await startApiServer({
    ...loopbackApiAccess(viewer, operator),
    context: {
      store,
      now: () => NOW,
      loadPlan: fleet.loadPlan,
      sourceRules: [],
      ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: `${temp.dir}/rejected`, now: () => NOW }),
    },
  });
});
after(async () => {
  await server?.close();
  await store?.close();
});

const weird = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', '..', '%2e%2e', '%00', '%0d%0a', '__proto__', 'constructor', 'toString', 'a'.repeat(300), 'xn--', 'é.example', '%E0%A4%A', '[]', '{}', "'", '"><script>', '9007199254740993', '-1', '1e309', 'NaN'),
);
const domain = fc.oneof(fc.constantFrom('gated.example', 'steady.example', 'paused.example', 'spoofed.example', 'GATED.EXAMPLE.', 'not-enrolled.example'), weird);
const path = fc.oneof(
  fc.tuple(domain, fc.constantFrom('approve', 'pause', 'resume', 'rollback', 'force', '__proto__', 'toString', '')).map(([d, a]) => `/api/v1/domains/${encodeURIComponent(d)}/${a}`),
  domain.map((d) => `/api/v1/domains/${encodeURIComponent(d)}`),
  fc.tuple(domain, fc.constantFrom('approve', 'pause', 'resume', 'rollback', '__proto__', 'constructor')).map(([d, a]) => `/ui/domains/${encodeURIComponent(d)}/${a}`),
  fc.constantFrom('/api/v1/domains', '/api/v1/approvals', '/api/v1/plans', '/api/v1/allowlist', '/api/v1/reports', '/api/v1/audit', '/api/v1/openapi.json', '/metrics', '/', '/login', '/ui/login', '/ui/logout', '/audit', '/approvals', '/healthz', '/assets/app.css'),
  fc.tuple(fc.constantFrom('/api/v1/allowlist/', '/api/v1/plans/', '/domains/'), weird).map(([p, w]) => `${p}${encodeURIComponent(w)}`),
  weird.map((w) => `/${w.replace(/[?#\s]/g, '')}`),
);
const query = fc.oneof(
  fc.constant(''),
  fc.dictionary(fc.constantFrom('state', 'stage', 'plan', 'q', 'domain', 'actor', 'action', 'before', 'limit', 'next', 'awaiting_approval', 'provider'), weird, { maxKeys: 4 }).map((q) => `?${new URLSearchParams(q)}`),
);
const jsonValue = fc.jsonValue({ maxDepth: 3 });
const body = fc.oneof(
  fc.constant(undefined),
  fc.record({ to: fc.oneof(weird, fc.constantFrom('quarantine:1', 'reject:100', 'none:100'), fc.integer()), reason: fc.oneof(weird, fc.constant('because')) }, { requiredKeys: [] }).map((b) => ({ type: 'application/json', data: JSON.stringify(b) })),
  jsonValue.map((v) => ({ type: 'application/json', data: JSON.stringify(v) })),
  fc.string({ maxLength: 200 }).map((s) => ({ type: 'application/json', data: `{"to":${s}` })),
  fc.dictionary(fc.constantFrom('_csrf', 'token', 'next', 'reason', 'to'), weird).map((f) => ({ type: 'application/x-www-form-urlencoded', data: new URLSearchParams(f).toString() })),
  fc
    .tuple(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom('application/xml', 'application/gzip', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', ''))
    .map(([b, type]) => ({ type, data: Buffer.from(b) })),
);
const GARBAGE_AUTH = ['Bearer', 'Basic abc', 'Bearer a b', `Bearer ${'x'.repeat(5000)}`, 'bearer \u00e9'];
const auth = fc.oneof(
  fc.constantFrom<'none' | 'viewer' | 'operator' | 'cookie'>('none', 'viewer', 'operator', 'cookie'),
  fc.constantFrom(...GARBAGE_AUTH.map((header) => `garbage:${header}`)),
);

it('malformed requests never make a 5xx, and /api errors keep their shape', async () => {
  const statuses = new Map<number, number>();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD'), path, query, body, auth, async (method, p, q, b, who) => {
      runs++;
      const headers: Record<string, string> = {};
      if (who === 'viewer') headers.authorization = `Bearer ${viewer.token}`;
      if (who === 'operator') headers.authorization = `Bearer ${operator.token}`;
      if (who.startsWith('garbage:')) headers.authorization = who.slice('garbage:'.length);
      if (who === 'cookie') headers.cookie = 'dmarc_rollout_session=s%3Agarbage.sig; dmarc_rollout_sign_in=x';
      const send = b !== undefined && method !== 'GET' && method !== 'HEAD';
      if (send && b.type) headers['content-type'] = b.type;
      const res = await fetch(`${server.url}${p}${q}`, { method, headers, ...(send ? { body: b.data } : {}), redirect: 'manual' });
      const text = method === 'HEAD' ? '' : await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status < 500, `${method} ${p}${q} (${who}) answered ${res.status}: ${text.slice(0, 300)}`);
      if (p.startsWith('/api/v1/reports') && res.status === 422 && method === 'POST') {
        // The documented answer for an upload refused and kept: its outcome, with the reason.
        const json = JSON.parse(text) as { status?: string; reason?: string };
        assert.equal(json.status, 'rejected', text.slice(0, 300));
        assert.equal(typeof json.reason, 'string');
      } else if (p.startsWith('/api/') && res.status >= 400 && method !== 'HEAD') {
        const json = JSON.parse(text) as { error?: { status: number; code: string; message: string; issues: unknown[] } };
        assert.equal(json.error?.status, res.status, text.slice(0, 300));
        assert.equal(typeof json.error?.message, 'string');
        assert.ok(Array.isArray(json.error?.issues));
      }
    }),
    { numRuns: 400, seed: SEED },
  );
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  console.log(`fuzz http (seed ${SEED}): ${runs} requests; by status ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
});
