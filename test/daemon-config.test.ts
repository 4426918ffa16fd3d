import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import { generateToken, hashToken, TokenSet } from '../src/api/tokens.js';
import { ConfigError, configSourceRules, loadDaemonConfig } from '../src/daemon/config.js';
import { runDoctor } from '../src/daemon/doctor.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { runCli, runMain, tempStore } from './helpers/cli.js';
import { aggregateReportXml, cleanRow, unalignedEspRow } from './helpers/reports.js';

it('the config allowlist is validated at load and classes a source for the engine', async () => {
  const { dir, db } = tempStore();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `store: { sqlite: store.sqlite }\nallowlist:\n  - { source: 'dkim:mailer-esp.example' }\n  - { domain: Other.Example, source: 203.0.113.0/24, verdict: abuse }\n`);
  const config = loadDaemonConfig(file);
  assert.deepEqual(configSourceRules(config), [
    { domain: null, kind: 'dkim', value: 'mailer-esp.example', verdict: 'authorised' },
    { domain: 'other.example', kind: 'ip', value: '203.0.113.0/24', verdict: 'abuse' },
  ]);

  writeFileSync(file, `allowlist:\n  - { source: 'dkim:' }\n  - { domain: '*.x.example', source: 192.0.2.1 }\n`);
  assert.throws(() => loadDaemonConfig(file), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /allowlist\.0\.source: not an IP, CIDR, dkim:<domain> or spf:<domain>/);
    return true;
  });

  // The same ESP that holds a domain is authorised by the config rule alone.
  const store = await openSqliteStore(db);
  try {
    const plan = loadPlan('default');
    const dns = new MemoryDns();
    await enrollDomains(store, { inputs: [{ text: 'esp.example', origin: 'test' }], plan, provider: 'memory', providers: { names: ['memory'], get: () => dns }, reportAddress: 'dmarc@reports.example', actor: 'test', now: new Date('2026-01-01T00:00:00Z') });
    await runTick({ store, now: new Date('2026-01-01T12:00:00Z'), providerFor: () => dns });
    for (let d = 1; d <= 16; d++) {
      const day = new Date(Date.UTC(2026, 0, 1 + d)).toISOString().slice(0, 10);
      const xml = aggregateReportXml({ reporter: 'google.com', domain: 'esp.example', day, rows: [cleanRow('esp.example', '192.0.2.1', 4000), unalignedEspRow('esp.example', '198.51.100.7', 30, 'mailer-esp.example')] });
      await ingestInput(store.db, { bytes: Buffer.from(xml) }, `gen:${day}`, { rejectedDir: join(dir, 'rejected') });
    }
    const now = new Date('2026-01-18T12:00:00Z');
    const [held] = await runTick({ store, now, providerFor: () => dns, dryRun: true });
    assert.equal(held!.decision!.checks.find((c) => c.rule === 'unaligned-sender')!.outcome, 'failed');
    writeFileSync(join(dir, 'ok.yaml'), "allowlist:\n  - { source: 'dkim:mailer-esp.example' }\n");
    const rules = configSourceRules(loadDaemonConfig(join(dir, 'ok.yaml'), {}));
    const [moved] = await runTick({ store, now, providerFor: () => dns, sourceRules: rules });
    assert.equal(moved!.decision!.action, 'advance', moved!.decision!.summary);
  } finally {
    await store.close();
  }
});

it('the api block: tokens from the config and a token file, validated at load with the file, field and reason', () => {
  const { dir } = tempStore();
  const file = join(dir, 'config.yaml');
  const alice = generateToken();
  const bob = generateToken();
  writeFileSync(join(dir, 'tokens.yaml'), `- { name: bob, role: viewer, sha256: ${bob.sha256} }\n`);
  writeFileSync(file, `api:\n  tokens:\n    - { name: alice, role: operator, sha256: ${alice.sha256} }\n  tokens_file: tokens.yaml\n`);
  const config = loadDaemonConfig(file);
  assert.deepEqual(config.api!.listen, { host: '127.0.0.1', port: 8080 }, 'loopback by default');
  assert.deepEqual(
    config.apiTokens.map((t) => [t.name, t.role]),
    [
      ['alice', 'operator'],
      ['bob', 'viewer'],
    ],
  );

  const refusal = (text: string) => {
    writeFileSync(file, text);
    try {
      loadDaemonConfig(file);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.message;
    }
    assert.fail('the config was accepted');
  };
  assert.match(refusal(`api:\n  tokens:\n    - { name: alice, role: admin, sha256: ${alice.sha256} }\n`), /config\.yaml: api\.tokens\.0\.role: /);
  assert.match(refusal(`api:\n  tokens:\n    - { name: alice, role: operator, sha256: ${alice.token} }\n`), /api\.tokens\.0\.sha256: expected the SHA-256 of the token/);
  assert.match(refusal(`api:\n  tokens_file: missing.yaml\n`), /config\.yaml: api\.tokens_file: .*missing\.yaml: cannot be read/);
  writeFileSync(join(dir, 'tokens.yaml'), `- { name: alice, role: viewer, sha256: ${bob.sha256} }\n`);
  assert.match(
    refusal(`api:\n  tokens:\n    - { name: alice, role: operator, sha256: ${alice.sha256} }\n  tokens_file: tokens.yaml\n`),
    /api\.tokens: the name "alice" is used twice/,
  );
  writeFileSync(join(dir, 'tokens.yaml'), `- { name: carol, role: operator }\n`);
  assert.match(refusal(`api:\n  tokens_file: tokens.yaml\n`), /tokens\.yaml: 0\.sha256: /);
});

it('a daemon whose API port is taken, or whose session secret is missing, refuses to start and says why', async () => {
  const { dir } = tempStore();
  const file = join(dir, 'config.yaml');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    writeFileSync(file, `store: { sqlite: store.sqlite }\napi:\n  listen: { host: 127.0.0.1, port: ${port} }\n`);
    const taken = await runCli(['daemon', '--config', file]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, new RegExp(`refusing to start: .*config\\.yaml: api: 127\\.0\\.0\\.1:${port} is already in use`));
  } finally {
    blocker.close();
  }
  writeFileSync(file, `store: { sqlite: store.sqlite }\napi:\n  listen: { host: 127.0.0.1, port: 0 }\n  session: { secret_env: DMARC_TEST_NO_SUCH_SECRET }\n`);
  const secret = await runCli(['daemon', '--config', file]);
  assert.equal(secret.code, 1);
  assert.match(secret.stderr, /api: session\.secret_env: the environment variable DMARC_TEST_NO_SUCH_SECRET is not set/);
  // The refused starts left the store usable: a run without the API goes ahead on it.
  writeFileSync(file, `store: { sqlite: store.sqlite }\n`);
  assert.equal((await runCli(['daemon', '--config', file, '--once'])).code, 0);
});

it('doctor says who can use the API, whether sessions survive a restart, and warns of plain HTTP off loopback', async () => {
  const { dir } = tempStore();
  const file = join(dir, 'config.yaml');
  const apiChecks = async (text: string, env: NodeJS.ProcessEnv = {}) => {
    writeFileSync(file, `store: { sqlite: store.sqlite }\n${text}`);
    return (await runDoctor(loadDaemonConfig(file), env)).filter((c) => c.subject.startsWith('api')).map((c) => `${c.subject}: ${c.status}`);
  };
  assert.deepEqual(await apiChecks('api: {}\n'), ['api tokens: fail', 'api session secret: warn', 'api listen: ok']);
  const viewerOnly = `api:\n  tokens: [{ name: vera, role: viewer, sha256: ${generateToken().sha256} }]\n`;
  assert.deepEqual(await apiChecks(viewerOnly), ['api tokens: warn', 'api session secret: warn', 'api listen: ok']);
  const exposed = `api:\n  listen: { host: 0.0.0.0, port: 8080 }\n  tokens: [{ name: otto, role: operator, sha256: ${generateToken().sha256} }]\n  session: { secret_env: SESSION_SECRET }\n`;
  assert.deepEqual(await apiChecks(exposed, { SESSION_SECRET: 'x'.repeat(40) }), ['api tokens: ok', 'api session secret: ok', 'api listen: warn']);
  assert.deepEqual(await apiChecks(exposed, { SESSION_SECRET: 'short' }), ['api tokens: ok', 'api session secret: fail', 'api listen: warn']);
  assert.deepEqual(await apiChecks('schedule: { tick: "17 * * * *" }\n'), [], 'no api block, no api checks');
});

it('token create prints a token once and an entry the config accepts, holding only its hash', async () => {
  const { dir } = tempStore();
  const made = await runMain(['token', 'create', 'prometheus', '--role', 'viewer']);
  assert.equal(made.code, 0, made.stderr);
  const token = /^ {2}(dmr_\S+)$/m.exec(made.stdout)![1]!;
  const entry = made.stdout.slice(made.stdout.indexOf('- name: prometheus'));
  assert.ok(!entry.includes(token), 'the entry holds no token');
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `api:\n  tokens:\n${entry.replace(/^/gm, '    ').trimEnd()}\n`);
  const config = loadDaemonConfig(file);
  assert.equal(new TokenSet(config.apiTokens).lookup(token)?.name, 'prometheus');
  assert.equal(new TokenSet(config.apiTokens).lookup(generateToken().token), undefined);

  const json = JSON.parse((await runMain(['token', 'create', 'alice', '--role', 'operator', '--json'])).stdout);
  assert.equal(json.sha256, hashToken(json.token));
  const bad = await runMain(['token', 'create', 'alice smith', '--role', 'operator']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /token name "alice smith": letters, digits/);
  // An unknown role is a usage error (README, "Exit codes").
  assert.equal((await runMain(['token', 'create', 'alice', '--role', 'admin'])).code, 2);
});

it('in the daemon a manual provider prints and returns unless the file sets a wait, and doctor warns of a wait', async () => {
  const { dir } = tempStore();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'store: { sqlite: store.sqlite }\nproviders:\n  manual: { type: manual }\n  patient: { type: manual, timeout_seconds: 600 }\n');
  const config = loadDaemonConfig(file);
  assert.equal((config.providers.manual as { timeout_seconds: number }).timeout_seconds, 0);
  assert.equal((config.providers.patient as { timeout_seconds: number }).timeout_seconds, 600);
  const warnings = (await runDoctor(config, {})).filter((c) => c.status === 'warn' && c.subject.startsWith('provider '));
  assert.ok(warnings.some((c) => c.subject === 'provider patient' && /wait up to 600 s/.test(c.detail)), JSON.stringify(warnings));
  assert.ok(!warnings.some((c) => c.subject === 'provider manual' && /wait up to/.test(c.detail)));
});

it('relative paths in the config (store, folder sources, rejected_dir) are the config file\'s neighbours, wherever the daemon is started', () => {
  const { dir } = tempStore();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `store: { sqlite: store.sqlite }\nrejected_dir: rejected\nsources:\n  - { type: folder, path: inbox }\n`);
  const config = loadDaemonConfig(file);
  assert.equal(config.storePath, join(dir, 'store.sqlite'));
  assert.equal(config.rejected_dir, join(dir, 'rejected'));
  assert.equal(config.sources[0]!.type === 'folder' ? config.sources[0]!.path : null, join(dir, 'inbox'));
});
