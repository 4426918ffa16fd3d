/**
 * The one error family (src/errors.ts): what a door (CLI, API, logs) makes of
 * a failure: its code, the field at fault, the exit code and HTTP status, and
 * one message for any thrown value, causes included. Also kept here: every
 * error class in src/ and providers/ is one of the family (a scan, as
 * test/layering.test.ts scans imports), and the CLI and the HTTP API give the
 * same failure the same code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { AppError, ERROR_CODES, errorJson, errorMessage, exitCodeFor, httpStatusFor, InternalError, toAppError, type ErrorCode } from '../src/errors.js';
import { ApiError } from '../src/api/errors.js';
import { startApiServer } from '../src/api/server.js';
import { generateToken } from '../src/api/tokens.js';
import { DnsLookupError } from '../src/dns/index.js';
import { ActionError } from '../src/fleet/actions.js';
import { DeliveryError } from '../src/notify/channels.js';
import { loadPlan, PlanError } from '../src/plans/index.js';
import { ingestInput, ReportError } from '../src/reports/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { ConfigError } from '../src/daemon/config.js';
import { StartError } from '../src/daemon/daemon.js';
import { LockHeldError } from '../src/daemon/lock.js';
import { ProviderError } from '../providers/shared/errors.js';
import { loopbackApiAccess } from './helpers/api-server.js';
import { REPO_ROOT, runMain, tempStore } from './helpers/cli.js';

test('an AppError keeps its code, field and cause, and maps to one exit code and HTTP status', () => {
  const cause = new Error('ENOENT: no such file');
  const e = new AppError('not-found', 'example.com is not enrolled', { field: 'domain', cause });
  assert.equal(e.code, 'not-found');
  assert.equal(e.field, 'domain');
  assert.equal(e.cause, cause);
  assert.equal(exitCodeFor(e), 1);
  assert.equal(httpStatusFor(e), 404);
  assert.equal(exitCodeFor(new AppError('usage', 'unknown option')), 2);
  assert.equal(httpStatusFor(new AppError('invalid', 'bad')), 400);
  assert.equal(httpStatusFor(new AppError('conflict', 'not paused')), 409);
});

test('the module error classes keep their code and field through toAppError', () => {
  assert.equal(toAppError(new ActionError('not enrolled', 'not-found', 'domain')).code, 'not-found');
  assert.equal(toAppError(new ActionError('not enrolled', 'not-found', 'domain')).field, 'domain');
  assert.equal(toAppError(new ActionError('already paused')).code, 'conflict');
  assert.equal(toAppError(new PlanError([])).code, 'invalid');
  assert.equal(toAppError(new ReportError('xml', 'not well-formed', 'feedback/record')).field, 'feedback/record');
  assert.equal(new ReportError('xml', 'not well-formed').field, undefined);
  assert.equal(new ReportError('limit', 'larger than 25 MiB').code, 'too-large');
  assert.equal(new ReportError('budget', 'over the hour budget').code, 'too-large');
  assert.equal(new ReportError('temporary', 'DNS lookup failed').code, 'unavailable');
  assert.equal(toAppError(new ConfigError('config.yaml: providers.x: unknown type')).code, 'config');
  assert.equal(exitCodeFor(new ConfigError('x')), 1);
  assert.equal(new LockHeldError('another daemon holds store.sqlite.lock').code, 'unavailable');
  assert.equal(new StartError('127.0.0.1:8080 is already in use').code, 'unavailable');
  assert.equal(new StartError('api: session secret', { cause: new ConfigError('too short') }).code, 'config', "a start refused by a config problem says so");
  const zone = new ProviderError('route53', 'zone-not-found', 'no hosted zone holds _dmarc.example.com');
  assert.deepEqual([zone.code, zone.kind, zone.message], ['not-found', 'zone-not-found', 'route53: no hosted zone holds _dmarc.example.com']);
  assert.equal(new ProviderError('powerdns', 'throttled', 'gave up').code, 'unavailable');
  assert.equal(new ProviderError('cloudflare', 'secret', 'token rejected').code, 'config');
  assert.equal(toAppError(new TypeError('x is undefined')).code, 'internal');
  assert.equal(httpStatusFor(new TypeError('x is undefined')), 500);
});

test('one message for any thrown value: each cause that adds something, said once', () => {
  const low = new Error('connect ECONNREFUSED 127.0.0.1:8081');
  const mid = new Error('powerdns: cannot read _dmarc.example.com', { cause: low });
  assert.equal(errorMessage(new AppError('unavailable', 'the tick stopped', { cause: mid })), 'the tick stopped: powerdns: cannot read _dmarc.example.com: connect ECONNREFUSED 127.0.0.1:8081');
  // A wrapper repeating its cause's words does not say them twice.
  assert.equal(errorMessage(toAppError(new Error('disk full'))), 'disk full');
  assert.equal(errorMessage('a string'), 'a string');
  assert.equal(errorMessage({ code: 42 }), '{"code":42}');
  assert.equal(errorMessage(undefined), 'unknown error');
  const loop = new Error('a');
  (loop as { cause?: unknown }).cause = loop;
  assert.equal(errorMessage(loop), 'a');
});

test('the JSON error shape: code, message, and field only when there is one', () => {
  assert.deepEqual(errorJson(new AppError('invalid', '--days "x": expected a whole number', { field: '--days' })), {
    error: { code: 'invalid', message: '--days "x": expected a whole number', field: '--days' },
  });
  assert.deepEqual(errorJson(new Error('boom')), { error: { code: 'internal', message: 'boom' } });
});

// ---------------------------------------------------------------------------
// (a) The one table, code by code: what a script sees (exit) and what a client sees (HTTP).

/** The contract README.md documents ("Exit codes"); changing a row is a change users notice. */
const DOCUMENTED: Readonly<Record<ErrorCode, { exit: number; http: number }>> = {
  invalid: { exit: 1, http: 400 },
  'not-found': { exit: 1, http: 404 },
  conflict: { exit: 1, http: 409 },
  'unsupported-media-type': { exit: 1, http: 415 },
  unauthorized: { exit: 1, http: 401 },
  forbidden: { exit: 1, http: 403 },
  'too-large': { exit: 1, http: 413 },
  usage: { exit: 2, http: 400 },
  config: { exit: 1, http: 500 },
  unavailable: { exit: 1, http: 503 },
  internal: { exit: 1, http: 500 },
};

test('each code maps to its documented exit code and HTTP status, through the error and through the API error', () => {
  assert.deepEqual(ERROR_CODES, DOCUMENTED);
  for (const [code, { exit, http }] of Object.entries(DOCUMENTED) as [ErrorCode, { exit: number; http: number }][]) {
    const e = new AppError(code, `a ${code} failure`);
    assert.equal(exitCodeFor(e), exit, `exit code of ${code}`);
    assert.equal(httpStatusFor(e), http, `HTTP status of ${code}`);
    assert.equal(new ApiError(code, 'x').status, http, `ApiError status of ${code}`);
    assert.equal(errorJson(e).error.code, code);
  }
  // Only a wrong command line is exit 2; an internal error is never blamed on the client.
  assert.deepEqual(Object.entries(DOCUMENTED).filter(([, v]) => v.exit === 2).map(([c]) => c), ['usage']);
  assert.ok(DOCUMENTED.internal.http >= 500 && DOCUMENTED.config.http >= 500);
});

test('the module classes carry the code of what they mean', () => {
  assert.equal(new PlanError([{ file: 'p.yaml', stage: null, field: '(file)', reason: 'x' }]).code, 'invalid');
  assert.equal(new ActionError('not paused').code, 'conflict');
  assert.equal(new ActionError('"-x": not a domain name', 'invalid', 'domain').field, 'domain');
  assert.equal(new DnsLookupError('no answer', 'ETIMEOUT').code, 'unavailable');
  assert.equal(new DnsLookupError('no answer', 'ETIMEOUT').kind, 'ETIMEOUT');
  assert.equal(new DeliveryError('webhook: HTTP 503').code, 'unavailable');
  assert.equal(new InternalError('unreachable').code, 'internal');
  assert.equal(exitCodeFor(new InvalidArgumentError('--stage: bad')), 2, "commander's own errors are usage errors");
  const cause = new Error('EACCES: permission denied');
  const wrapped = new ActionError('plan file x.yaml: cannot register it', 'invalid', 'plan', { cause });
  assert.equal(wrapped.cause, cause);
  assert.equal(errorMessage(wrapped), 'plan file x.yaml: cannot register it: EACCES: permission denied');
});

// ---------------------------------------------------------------------------
// (b) Every error class is one of the family. A ratchet, as in test/layering.test.ts.

/** Classes that may still extend Error directly, each with what would remove it. May only shrink. */
const KNOWN_OFF_FAMILY: readonly string[] = [];

/**
 * The error classes in `files` that are not in the family: a class extending
 * Error (or TypeError, RangeError, ...) directly, other than AppError itself,
 * or a class extending one of those.
 */
export function offFamilyErrorClasses(files: ReadonlyArray<{ path: string; source: string }>): string[] {
  const parent = new Map<string, { path: string; parent: string }>();
  for (const { path, source } of files) {
    const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const m of code.matchAll(/\bclass\s+(\w+)\s+extends\s+([\w.]+)/g)) parent.set(m[1]!, { path, parent: m[2]! });
  }
  const inFamily = (name: string, seen = new Set<string>()): boolean | null => {
    if (name === 'AppError') return true;
    if (/^(Error|TypeError|RangeError|SyntaxError|EvalError|ReferenceError|URIError|AggregateError)$/.test(name)) return false;
    const p = parent.get(name);
    if (!p || seen.has(name)) return null; // not an error class of ours (a library's base, an interface)
    seen.add(name);
    return inFamily(p.parent, seen);
  };
  return [...parent.entries()].filter(([name]) => name !== 'AppError' && inFamily(name) === false).map(([name, { path }]) => `${path}: ${name}`).sort();
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir)).flatMap((name) => {
    const path = `${dir}/${name}`;
    if (statSync(join(REPO_ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const SOURCES = [...sourceFiles('src'), ...sourceFiles('providers')].map((path) => ({ path, source: readFileSync(join(REPO_ROOT, path), 'utf8') }));

test('the scan fails on a deliberately wrong error class, directly or through a parent', () => {
  const files = [
    { path: 'src/errors.ts', source: 'export class AppError extends Error {}\nexport class InternalError extends AppError {}' },
    { path: 'src/x.ts', source: 'class Good extends AppError {}\n// class Commented extends Error {}\nexport class Stray extends Error {}\nclass Child extends Stray {}\nclass Ranged extends RangeError {}' },
  ];
  assert.deepEqual(offFamilyErrorClasses(files), ['src/x.ts: Child', 'src/x.ts: Ranged', 'src/x.ts: Stray']);
});

test('every error class in src/ and providers/ extends AppError (KNOWN_OFF_FAMILY may only shrink)', () => {
  const found = offFamilyErrorClasses(SOURCES);
  assert.deepEqual(found.filter((c) => !KNOWN_OFF_FAMILY.includes(c)), [], 'a new error class must extend AppError (src/errors.ts) with its code');
  assert.deepEqual(KNOWN_OFF_FAMILY.filter((c) => !found.includes(c)), [], 'this class joined the family: delete its KNOWN_OFF_FAMILY entry');
});

/**
 * Files that may still throw a plain Error, with how many: each such throw is
 * an internal invariant whose module may import nothing (the comment above it
 * says so). Anything a user can meet throws an AppError with its code.
 */
const PLAIN_THROWS: Readonly<Record<string, number>> = {
  // "no package.json above": a broken installation; paths.ts imports nothing, not even src/errors.ts.
  'src/paths.ts': 1,
};

test('no new plain `throw new Error(` in src/ or providers/', () => {
  const counts: Record<string, number> = {};
  for (const { path, source } of SOURCES) {
    const n = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').match(/\bthrow new Error\(/g)?.length ?? 0;
    if (n > 0) counts[path] = n;
  }
  assert.deepEqual(counts, PLAIN_THROWS, 'throw an AppError with its code (or InternalError for a broken invariant); a file that threw fewer: lower its count');
});

// ---------------------------------------------------------------------------
// (c) The same failure through both doors: the same code, the exit code and status of the one table.

test('the CLI and the HTTP API answer the same failure with the same code', async (t) => {
  const { dir, db } = tempStore('dmarc-rollout-errors-');
  const store = await openSqliteStore(db);
  const viewer = generateToken();
  const operator = generateToken();
  // The report upload keeps a rejected input in rejected/: here that path is under a file, so keeping it fails.
  writeFileSync(join(dir, 'not-a-folder'), '');
  const server = await startApiServer({
    ...loopbackApiAccess(viewer, operator),
    context: {
      store,
      now: () => new Date('2026-06-15T12:00:00Z'),
      loadPlan: (name) => loadPlan(name),
      sourceRules: [],
      ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: join(dir, 'not-a-folder', 'rejected') }),
    },
  });
  t.after(async () => {
    await server.close();
    await store.close();
  });
  const api = async (path: string, init: { body?: string; type?: string }) => {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator.token}`, 'content-type': init.type ?? 'application/json' },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return { status: res.status, body: (await res.json()) as { error: { status: number; code: ErrorCode; message: string; issues: { field: string }[] } } };
  };
  const cli = async (args: string[]) => {
    const run = await runMain([...args, '--json'], { DMARC_ROLLOUT_DB: db });
    return { exit: run.code, body: JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { error: { code: ErrorCode; message: string; field?: string } } };
  };

  // A domain that is not enrolled.
  const cliMissing = await cli(['pause', 'nosuch.example', '--reason', 'maintenance']);
  const apiMissing = await api('/api/v1/domains/nosuch.example/pause', { body: JSON.stringify({ reason: 'maintenance' }) });
  assert.equal(cliMissing.body.error.code, 'not-found');
  assert.equal(apiMissing.body.error.code, 'not-found');
  assert.equal(cliMissing.exit, ERROR_CODES['not-found'].exit);
  assert.equal(apiMissing.status, ERROR_CODES['not-found'].http);
  assert.match(cliMissing.body.error.message, /nosuch\.example is not enrolled/);
  assert.match(apiMissing.body.error.message, /nosuch\.example is not enrolled/);

  // A name that is not a domain name: invalid, naming the domain.
  const cliBad = await cli(['pause', 'not_a..domain', '--reason', 'maintenance']);
  const apiBad = await api('/api/v1/domains/not_a..domain/pause', { body: JSON.stringify({ reason: 'maintenance' }) });
  assert.deepEqual([cliBad.body.error.code, cliBad.body.error.field, cliBad.exit], ['invalid', 'domain', 1]);
  assert.deepEqual([apiBad.body.error.code, apiBad.body.error.issues[0]?.field, apiBad.status], ['invalid', 'params.domain', 400]);

  // Fastify's own refusals speak the same codes: a body in a format the API does not read.
  const form = await api('/api/v1/domains/nosuch.example/pause', { body: '<reason>x</reason>', type: 'application/xml' });
  assert.deepEqual([form.status, form.body.error.code, form.body.error.status], [415, 'unsupported-media-type', 415]);

  // What fails inside (here: the disk will not keep a rejected upload) is unavailable, without the path.
  const upload = await api('/api/v1/reports', { body: 'not a report', type: 'application/octet-stream' });
  assert.deepEqual([upload.status, upload.body.error.code], [ERROR_CODES.unavailable.http, 'unavailable']);
  assert.doesNotMatch(upload.body.error.message, /not-a-folder/);
});
