/**
 * `dmarc-rollout tick` run by hand beside a daemon: it joins the store's
 * instances as a daemon does, so the lease on the domain it is applying is
 * renewed by its heartbeat for as long as it lives (a slow provider does not
 * hand the domain to another instance mid-apply), and, if it is killed, the
 * domain is free a lease time later instead of the fixed 15 minutes a CLI
 * run's lease used to last. `status` lists the instances and their leases.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { claimLease, leaseOf } from '../src/store/leases.js';
import { listInstances } from '../src/store/instances.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { BIN, REPO_ROOT, runMain, tempStore } from './helpers/cli.js';
import { waitFor } from './helpers/daemon-process.js';
import { HoldingProxy } from './helpers/holding-proxy.js';
import { startPdns, type PdnsServer } from './helpers/pdns.js';
import { killedAtExit } from './helpers/children.js';

const LEASE_SECONDS = 3;

describe('a CLI tick holds its domains as an instance', () => {
  let pdns: PdnsServer;
  let proxy: HoldingProxy;
  before(async () => {
    pdns = await startPdns();
    proxy = new HoldingProxy(pdns.apiUrl);
    await proxy.start();
  });
  after(async () => {
    await proxy?.stop();
    await pdns?.stop();
  });

  it('its heartbeat keeps the lease past the lease time while a write is slow; killed, the lease runs out a lease time later; a clean run leaves nothing behind', async () => {
    await pdns.createZone('slow.example');
    await pdns.createZone('clean.example');
    const { dir, db } = tempStore('dmarc-rollout-cli-lease-');
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        `store: { sqlite: ${db} }`,
        'report_addresses: [dmarc@reports.example]',
        `instances: { heartbeat_seconds: 1, lease_seconds: ${LEASE_SECONDS} }`,
        'providers:',
        `  pdns: { type: powerdns, api_url: '${proxy.url}', api_key_env: PDNS_KEY, verify: { nameservers: ['${pdns.dnsServer}'] } }`,
      ].join('\n'),
    );
    const env = { DMARC_ROLLOUT_CONFIG: config, PDNS_KEY: pdns.apiKey };
    const enrolled = await runMain(['enroll', 'slow.example', '--provider', 'pdns'], env);
    assert.equal(enrolled.code, 0, enrolled.stderr);

    let store: Store | undefined;
    const { held, release } = proxy.holdNextWrite();
    const child = killedAtExit(spawn(process.execPath, [BIN, 'tick', '--config', config], { cwd: REPO_ROOT, env: { ...process.env, ...env } }));
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    child.stderr.on('data', (b) => (output += b));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      assert.equal(await held, '_dmarc.slow.example');
      store = await openSqliteStore(db);
      const lease = await leaseOf(store.db, 'domain:slow.example');
      assert.ok(lease, 'the tick holds the domain it is writing');
      const [instance] = (await listInstances(store.db, new Date(), LEASE_SECONDS * 1000)).filter((i) => i.live);
      assert.equal(instance?.pid, child.pid, 'the CLI run is listed as a live instance');
      assert.equal(lease.holder, instance!.id);
      assert.deepEqual(instance!.leases, ['domain:slow.example']);
      // `status` shows who works on the store, and what each holds.
      const status = await runMain(['status', '--config', config, '--json'], env);
      assert.equal(status.code, 0, status.stderr);
      const listed = (JSON.parse(status.stdout) as { instances: Array<{ pid: number; live: boolean; leases: string[] }> }).instances;
      assert.deepEqual(listed.map((i) => [i.pid, i.live, i.leases]), [[child.pid, true, ['domain:slow.example']]]);
      const text = await runMain(['status', '--config', config], env);
      assert.match(text.stdout, new RegExp(`instances: 1 live, 0 gone \\(live: a heartbeat within ${LEASE_SECONDS} s\\)\n  \\S+  live  pid ${child.pid} on .*; leases: domain:slow\\.example\n`));

      // Past two lease times with the write still unanswered: renewed by the heartbeat, nobody else may take it.
      await new Promise((r) => setTimeout(r, 2 * LEASE_SECONDS * 1000 + 500));
      assert.equal(await claimLease(store.db, 'domain:slow.example', 'another-daemon', new Date(), 60_000), false, 'a live CLI tick keeps its lease');
      assert.ok((await leaseOf(store.db, 'domain:slow.example'))!.expires_at > lease.expires_at, 'the lease was renewed');

      child.kill('SIGKILL');
      await exited;
      assert.equal(await claimLease(store.db, 'domain:slow.example', 'another-daemon', new Date(), 60_000), false, 'just killed: its lease still runs');
      await waitFor('the killed run’s lease to run out', () => claimLease(store!.db, 'domain:slow.example', 'another-daemon', new Date(), 60_000), (LEASE_SECONDS + 2) * 1000);
    } finally {
      release();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await store?.close();
    }

    // A run that ends cleanly deregisters: no instance row and no lease of its own stays.
    const enrolledClean = await runMain(['enroll', 'clean.example', '--provider', 'pdns'], env);
    assert.equal(enrolledClean.code, 0, enrolledClean.stderr);
    const tick = await runMain(['tick', 'clean.example', '--config', config, '--json'], env);
    assert.equal(tick.code, 0, tick.stderr + tick.stdout + output);
    assert.equal((JSON.parse(tick.stdout.trim()) as { apply: { status: string } }).apply.status, 'verified');
    store = await openSqliteStore(db);
    try {
      const instances = await listInstances(store.db, new Date(), LEASE_SECONDS * 1000);
      assert.deepEqual(instances.filter((i) => i.live), [], 'no run is left live');
      // The killed run never deregistered: it stays listed as gone until it is forgotten; the clean run's row went with it.
      assert.deepEqual(instances.map((i) => i.pid), [child.pid]);
    } finally {
      await store.close();
    }
  });
});
