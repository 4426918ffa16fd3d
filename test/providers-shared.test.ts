/**
 * The adapters' shared parts and the registry: backoff and Retry-After,
 * the pacing bucket's guarantee over a whole window, secrets from env or
 * file, and building each provider from raw config.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  PROVIDER_TYPES,
  ProviderError,
  createProvider,
  parseProviderConfig,
} from '../providers/index.js';
import { backoffDelayMs, parseRetryAfter, withRetry } from '../providers/shared/retry.js';
import { readSecret } from '../providers/shared/secret.js';
import { TokenBucket } from '../providers/shared/token-bucket.js';
import { sameRecords, zoneCandidates } from '../providers/shared/names.js';
import { fromPresentation, toPresentation } from '../providers/shared/txt.js';
import { fakeClock } from './helpers/fake-clock.js';
import { tempDir } from './helpers/temp-dirs.js';

describe('retry', () => {
  test('full jitter stays under a doubling ceiling capped at the maximum', () => {
    assert.equal(backoffDelayMs(0, 250, 20_000, () => 0.999), 249);
    assert.equal(backoffDelayMs(3, 250, 20_000, () => 0.5), 1000);
    assert.equal(backoffDelayMs(20, 250, 20_000, () => 0.5), 10_000);
    assert.equal(backoffDelayMs(5, 250, 20_000, () => 0), 0);
  });

  test('Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('7', 0), 7000);
    assert.equal(parseRetryAfter(' 1.5 ', 0), 1500);
    assert.equal(parseRetryAfter(new Date(60_000).toUTCString(), 0), 60_000);
    assert.equal(parseRetryAfter(null, 0), undefined);
    assert.equal(parseRetryAfter('soon', 0), undefined);
  });

  test('retries what classify allows, waits at least Retry-After, rethrows the rest', async () => {
    const clock = fakeClock({ start: 0 });
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls += 1;
        if (calls < 3) throw new Error('busy');
        return 'done';
      },
      { provider: 'x', what: 'op', clock, random: () => 0, classify: () => ({ retry: true, retryAfterMs: 4000 }) },
    );
    assert.equal(result, 'done');
    assert.deepEqual(clock.sleeps, [4000, 4000]);

    await assert.rejects(
      withRetry(async () => Promise.reject(new Error('bad request')), { provider: 'x', what: 'op', clock, classify: () => ({ retry: false }) }),
      /^Error: bad request$/,
    );
    await assert.rejects(
      withRetry(async () => Promise.reject(new Error('token s3cr3t rejected')), {
        provider: 'x',
        what: 'op',
        clock,
        maxAttempts: 2,
        secrets: ['s3cr3t'],
        classify: () => ({ retry: true }),
      }),
      (e: unknown) => e instanceof ProviderError && e.kind === 'throttled' && e.message === 'x: op: gave up after 2 attempts (last: token [redacted] rejected)',
    );
  });
});

describe('token bucket', () => {
  test('forWindow never lets more than the limit through in any window', async () => {
    const clock = fakeClock({ start: 0 });
    const bucket = TokenBucket.forWindow(120, 300, 20, clock);
    const times: number[] = [];
    for (let i = 0; i < 400; i += 1) {
      await bucket.take();
      times.push(clock.now());
    }
    let worst = 0;
    for (let i = 0, j = 0; i < times.length; i += 1) {
      while (times[i]! - times[j]! >= 300_000) j += 1;
      worst = Math.max(worst, i - j + 1);
    }
    assert.ok(worst <= 120, `${worst} requests in one 300 s window`);
    assert.ok(worst >= 110, `pacing too cautious: ${worst}`);
    assert.equal(times.filter((t) => t === 0).length, 20, 'the burst goes out at once');
  });

  test('waiters are served in order', async () => {
    const clock = fakeClock({ start: 0 });
    const bucket = new TokenBucket({ capacity: 1, refillPerSecond: 1, clock });
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((n) => bucket.take().then(() => order.push(n))));
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(clock.now(), 2000);
  });
});

describe('names, TXT and secrets', () => {
  test('zone candidates run from the name up; record sets compare as multisets', () => {
    assert.deepEqual(zoneCandidates('_DMARC.Mail.Example.com.'), ['_dmarc.mail.example.com', 'mail.example.com', 'example.com', 'com']);
    assert.ok(sameRecords(['a', 'b'], ['b', 'a']));
    assert.ok(!sameRecords(['a', 'a'], ['a', 'b']));
  });

  test('presentation round trip through src/record', () => {
    const record = `v=DMARC1; p=none; x="${'y'.repeat(300)}\\"`;
    const shown = toPresentation(record);
    assert.ok(shown.startsWith('"v=DMARC1; p=none; x=\\"'));
    assert.equal(fromPresentation(shown), record);
    assert.equal(fromPresentation('v=DMARC1; p=none'), 'v=DMARC1; p=none');
  });

  test('a secret is read from env or a file, and errors name the source only', () => {
    const keys = { env: 'key_env', file: 'key_file' };
    assert.equal(readSecret('p', 'key', { env: 'K' }, keys, { K: ' value\n' }), 'value');
    assert.throws(() => readSecret('p', 'key', { env: 'K' }, keys, { K: '  ' }), /environment variable K \(key_env\) is not set or empty/);
    const dir = tempDir('dmarc-rollout-secret-');
    const file = join(dir, 'k');
    writeFileSync(file, '');
    assert.throws(() => readSecret('p', 'key', { file }, keys, {}), /file .*k \(key_file\) is empty/);
    writeFileSync(file, 'from-file\n');
    assert.equal(readSecret('p', 'key', { file }, keys, {}), 'from-file');
  });
});

describe('registry', () => {
  test('knows every provider and builds each from raw config', () => {
    assert.deepEqual(PROVIDER_TYPES, ['powerdns', 'route53', 'cloudflare', 'manual']);
    const env = { PDNS_KEY: 'k', CF_TOKEN: 't', AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' };
    const built = [
      createProvider({ type: 'powerdns', api_url: 'http://127.0.0.1:8081', api_key_env: 'PDNS_KEY' }, { env }),
      createProvider({ type: 'route53', endpoint: 'http://127.0.0.1:9', credential_source: 'env' }, { env }),
      createProvider({ type: 'cloudflare', api_token_env: 'CF_TOKEN' }, { env }),
      createProvider({ type: 'manual', nameservers: ['127.0.0.1:5353'] }, { env }),
    ];
    assert.deepEqual(built.map((p) => p.name), PROVIDER_TYPES);
    for (const p of built) p.close?.();
    const manual = parseProviderConfig({ type: 'manual' });
    assert.deepEqual(manual, { type: 'manual', authoritative_port: 53, poll_seconds: 30, timeout_seconds: 86400, output: 'stderr' });
  });

  test('the registry equals the adapter folders, and each has its README section and its test file', () => {
    // Renovate checks its datasources this way: an adapter folder that is not registered, or a
    // registered type without its folder, documentation or tests, fails here rather than in use.
    const providersDir = fileURLToPath(new URL('../providers/', import.meta.url));
    const folders = readdirSync(providersDir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== 'shared')
      .map((e) => e.name)
      .sort();
    assert.deepEqual([...PROVIDER_TYPES].sort(), folders, 'providers/<type>/ folders and the registry');
    const readme = readFileSync(join(providersDir, 'README.md'), 'utf8');
    const sections = [...readme.matchAll(/^## ([a-z0-9]+)$/gm)].map((m) => m[1]!).sort();
    assert.deepEqual(sections, folders, 'a "## <type>" section in providers/README.md for each adapter');
    for (const type of folders) {
      assert.ok(existsSync(join(providersDir, type, 'index.ts')), `providers/${type}/index.ts`);
      assert.ok(existsSync(fileURLToPath(new URL(`./providers-${type}.test.ts`, import.meta.url))), `test/providers-${type}.test.ts`);
    }
  });

  test('unknown types, bad settings and missing secrets fail with the key named', () => {
    assert.throws(() => createProvider({ type: 'godaddy' }), /unknown provider type "godaddy"; known: powerdns, route53, cloudflare, manual/);
    assert.throws(() => createProvider(null), /unknown provider type null/);
    assert.throws(() => createProvider({ type: 'powerdns', api_url: 'not a url', api_key_env: 'X' }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'config');
      assert.match(e.message, /^powerdns: invalid settings: api_url: /);
      return true;
    });
    assert.throws(() => createProvider({ type: 'cloudflare', api_token_env: 'X', api_token_file: '/f' }), /exactly one of api_token_env or api_token_file/);
    assert.throws(() => createProvider({ type: 'manual', nameservers: ['ns1.example.com'] }), /nameservers\.0: an IP address/);
    assert.throws(() => createProvider({ type: 'cloudflare', api_token_env: 'CF_UNSET' }, { env: {} }), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.kind, 'secret');
      assert.match(e.message, /^cloudflare: API token missing: environment variable CF_UNSET/);
      return true;
    });
  });
});
