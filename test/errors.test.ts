/**
 * The one error family (src/errors.ts): what a door (CLI, API, logs) makes of
 * a failure: its code, the field at fault, the exit code and HTTP status, and
 * one message for any thrown value, causes included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, errorJson, errorMessage, exitCodeFor, httpStatusFor, toAppError } from '../src/errors.js';
import { ActionError } from '../src/fleet/actions.js';
import { PlanError } from '../src/plans/index.js';
import { ReportError } from '../src/reports/index.js';
import { ConfigError } from '../src/daemon/config.js';

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

test('the older error classes map by what they mean until each extends AppError', () => {
  assert.equal(toAppError(new ActionError('not enrolled', 'not-found', 'domain')).code, 'not-found');
  assert.equal(toAppError(new ActionError('not enrolled', 'not-found', 'domain')).field, 'domain');
  assert.equal(toAppError(new ActionError('already paused')).code, 'conflict');
  assert.equal(toAppError(new PlanError([])).code, 'invalid');
  assert.equal(toAppError(new ReportError('xml', 'not well-formed', 'feedback/record')).field, 'feedback/record');
  assert.equal(toAppError(new ConfigError('config.yaml: providers.x: unknown type')).code, 'config');
  assert.equal(exitCodeFor(new ConfigError('x')), 1);
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
