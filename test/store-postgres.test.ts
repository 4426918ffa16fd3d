/**
 * The doors onto a Postgres store, against a real server (test/helpers/postgres.ts):
 * the CLI chosen by DMARC_ROLLOUT_DATABASE_URL, the daemon by `store.postgres`
 * in its config with the password from a file or the environment, several
 * daemons on one database (each registered as an instance; the whole
 * coordination is in test/daemon-replicas.test.ts), and doctor. Passwords
 * never appear in messages.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadDaemonConfig, ConfigError } from '../src/daemon/config.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { runDoctor } from '../src/daemon/doctor.js';
import { runMain, tempStore } from './helpers/cli.js';
import { startPostgres, type PostgresServer } from './helpers/postgres.js';
import { reportXml } from './fixtures/reports/make.js';

describe('a Postgres store through the CLI and the daemon', () => {
  let server: PostgresServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  it('the CLI ingests into the database DMARC_ROLLOUT_DATABASE_URL names, and a wrong password is refused without being shown', async () => {
    const database = await server.createDatabase('cli');
    const { dir } = tempStore();
    const file = join(dir, 'report.xml');
    writeFileSync(file, reportXml({ records: 2, count: 7 }));
    const env = { DMARC_ROLLOUT_DATABASE_URL: server.url(database), DMARC_ROLLOUT_DB: join(dir, 'unused.sqlite') };
    const ingest = await runMain(['ingest', file], env);
    assert.equal(ingest.code, 0, ingest.stderr);
    const rows = await server.query<{ reports: string; messages: string }>(
      database,
      'select (select count(*) from reports) as reports, (select sum(count) from report_rows) as messages',
    );
    assert.deepEqual(rows[0], { reports: '1', messages: '14' });

    const wrong = server.url(database).replace(server.password, 'not-the-password');
    const refused = await runMain(['status'], { ...env, DMARC_ROLLOUT_DATABASE_URL: wrong });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`postgres://${server.user}@127\\.0\\.0\\.1:${server.port}/${database} \\(DMARC_ROLLOUT_DATABASE_URL\\): password authentication failed`));
    assert.doesNotMatch(refused.stderr + refused.stdout, /not-the-password/);
  });

  it('several daemons on one database: each registers as an instance, doctor names the live ones, a clean stop deregisters; the password comes from a file', async () => {
    const database = await server.createDatabase('daemon');
    const { dir } = tempStore();
    writeFileSync(join(dir, 'pg-password'), `${server.password}\n`, { mode: 0o600 });
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        `store: { postgres: { host: 127.0.0.1, port: ${server.port}, database: ${database}, user: ${server.user}, password_file: pg-password } }`,
        'rejected_dir: rejected',
        'providers: { hand: { type: manual } }',
      ].join('\n'),
    );
    const loaded = loadDaemonConfig(config, {});
    assert.equal(loaded.storePath, null);
    const logger = pino({ level: 'silent' });
    const first = await startDaemon(loaded, { logger, serve: false });
    const second = await startDaemon(loaded, { logger, serve: false });
    try {
      assert.notEqual(first.instanceId, second.instanceId);
      const rows = await server.query<{ id: string; pid: number }>(database, 'select id, pid from instances');
      assert.deepEqual(rows.map((r) => r.id).sort(), [first.instanceId, second.instanceId].sort());
      assert.ok(rows.every((r) => Number(r.pid) === process.pid));
      const checks = await runDoctor(loaded, {});
      assert.equal(checks.find((c) => c.subject === 'store')?.status, 'ok');
      const daemon = checks.find((c) => c.subject === 'daemon')!;
      assert.equal(daemon.status, 'ok');
      assert.match(daemon.detail, new RegExp(`^2 daemons running on postgres://${server.user}@127\\.0\\.0\\.1:${server.port}/${database}: `));
      assert.ok(daemon.detail.includes(first.instanceId) && daemon.detail.includes(second.instanceId));
      assert.equal(second.health().live_instances, 2, 'the second saw the first at its start (each recounts at every heartbeat)');
      await Promise.all([first.tick(), second.tick()]);
    } finally {
      await first.stop();
      await second.stop();
    }
    assert.deepEqual(await server.query(database, 'select id from instances'), [], 'a clean stop leaves no instance behind');
    assert.deepEqual(await server.query(database, 'select name from leases'), [], 'nor a lease');
    assert.equal((await runDoctor(loaded, {})).find((c) => c.subject === 'daemon')?.status, 'warn');
    const log = JSON.stringify(await server.query(database, 'select * from audit_events'));
    assert.doesNotMatch(log, new RegExp(server.password));
  });

  it('a config naming an unset password variable, or both sqlite and postgres, is refused with the field', () => {
    const { dir } = tempStore();
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `store: { postgres: { database: fleet, user: rollout, password_env: FLEET_PG_PASSWORD } }\nrejected_dir: rejected\n`);
    assert.throws(() => loadDaemonConfig(config, {}), (e: Error) => e instanceof ConfigError && e.message === `${config}: store.postgres.password_env: the environment variable FLEET_PG_PASSWORD is not set`);
    assert.equal(loadDaemonConfig(config, { FLEET_PG_PASSWORD: 'x' }).storeLocation.kind, 'postgres');
    writeFileSync(config, `store: { sqlite: a.sqlite, postgres: { database: fleet, user: rollout } }\n`);
    assert.throws(() => loadDaemonConfig(config, {}), /store: give either sqlite \(a file\) or postgres \(a database\), not both or neither/);
    writeFileSync(config, `store: { postgres: { database: fleet, user: rollout } }\n`);
    assert.throws(() => loadDaemonConfig(config, {}), /rejected_dir: required with a Postgres store/);
  });
});
