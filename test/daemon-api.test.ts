/**
 * The API inside the real daemon process: it listens where the config says,
 * and SIGHUP re-reads the tokens, so a revoked token (and every page session
 * signed in with it) stops working without a restart, while a broken token
 * file leaves the tokens in use as they were.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { generateToken } from '../src/api/tokens.js';
import { tempStore } from './helpers/cli.js';
import { freePort, startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { formSignIn } from './helpers/web.js';

let daemon: ReturnType<typeof startDaemonProcess> | undefined;
after(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
});

it('SIGHUP re-reads the tokens: a revoked token and its sessions stop working, a broken file changes nothing', async () => {
  const { dir } = tempStore();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const alice = generateToken();
  const bob = generateToken();
  const tokensFile = join(dir, 'tokens.yaml');
  writeFileSync(tokensFile, `- { name: alice, role: operator, sha256: ${alice.sha256} }\n`);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    ['store: { sqlite: store.sqlite }', "schedule: { ingest: '0 0 1 1 *', tick: '0 0 1 1 *' }", 'api:', `  listen: { host: 127.0.0.1, port: ${port} }`, '  tokens_file: tokens.yaml', ''].join('\n'),
  );
  daemon = startDaemonProcess(config, {});
  const status = async (token: string | null, cookie?: string) =>
    (await fetch(`${base}/api/v1/domains`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(cookie ? { cookie } : {}) } })).status;
  await waitFor('the API to answer', async () => (await fetch(`${base}/healthz`).catch(() => null))?.ok, 60_000);
  assert.equal(await status(alice.token), 200);
  assert.equal(await status(bob.token), 401);
  const { session } = await formSignIn(base, alice.token);
  assert.equal(await status(null, session), 200, "alice's page session works");

  writeFileSync(tokensFile, `- { name: bob, role: viewer, sha256: ${bob.sha256} }\n`);
  daemon.child.kill('SIGHUP');
  await waitFor('bob to be let in', async () => (await status(bob.token)) === 200);
  assert.equal(await status(alice.token), 401, 'the revoked token is refused');
  assert.equal(await status(null, session), 401, 'and so is the session it signed in');

  writeFileSync(tokensFile, `- { name: bob, role: root, sha256: ${bob.sha256} }\n`);
  daemon.child.kill('SIGHUP');
  await waitFor('the refusal to be logged', () => daemon!.output().includes('SIGHUP: the config was not reloaded'));
  assert.match(daemon.output(), /tokens_file: .*0\.role/);
  assert.equal(await status(bob.token), 200, 'a broken file leaves the tokens in use');

  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited, 0);
});
