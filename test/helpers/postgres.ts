/**
 * A real Postgres for tests, from Debian's `postgresql` package: a cluster
 * initdb'd in a temp folder, listening on loopback at a free port with
 * password (SCRAM) authentication and no Unix socket, fsync off (a test
 * cluster is thrown away), stopped and removed by stop(). initdb runs once
 * per machine; each cluster starts from a copy of that one. Started once per
 * test file; each test takes a fresh database of its own with
 * createDatabase(). Never the system service. As root (initdb refuses root)
 * the server runs as the package's `postgres` user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { PostgresConnection } from '../../src/store/location.js';
import { serverKilledAtExit } from './children.js';

const INSTALL_HINT = 'install the Debian package postgresql (bash test/setup.sh installs it)';

export interface PostgresServer {
  port: number;
  user: string;
  password: string;
  /** Creates an empty database and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  /** The connection settings for `database`, as the store opener takes them. */
  connection(database: string): PostgresConnection;
  /** postgres://user:password@127.0.0.1:port/database, for DMARC_ROLLOUT_DATABASE_URL. */
  url(database: string): string;
  /** Runs one statement on `database` as the cluster's user (test setup and inspection). */
  query<R extends object = Record<string, unknown>>(database: string, text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

/** The newest installed server's bin folder (/usr/lib/postgresql/<major>/bin). */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) throw new Error(`initdb not found under ${root}/*/bin: ${INSTALL_HINT}`);
  return join(root, majors[0]!, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** uid/gid to run the server as: ours, or the `postgres` user's when we are root. */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) throw new Error(`running as root and there is no postgres user to run the server as: ${INSTALL_HINT}`);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

const USER = 'dmarc_test';

/**
 * A cluster initdb'd once per machine (per server version and user) in the
 * temp folder, with its password beside it: each test file copies it instead
 * of running initdb (2.7 s on a busy two-core machine, the copy 0.3 s). Made
 * in a folder of its own and renamed into place, so test files starting
 * together never see half of one.
 */
function initializedCluster(bin: string, owner: { uid: number; gid: number } | null): { data: string; password: string } {
  const args = ['-U', USER, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'];
  const key = createHash('sha256').update(JSON.stringify([bin, args])).digest('hex').slice(0, 12);
  const cache = join(tmpdir(), `dmarc-rollout-pg-initdb-${process.getuid?.() ?? 'u'}-${key}`);
  if (!existsSync(join(cache, 'password'))) {
    const staging = mkdtempSync(`${cache}.tmp-`);
    const password = randomBytes(12).toString('hex');
    const pwfile = join(staging, 'pw');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) {
      chownSync(staging, owner.uid, owner.gid);
      chownSync(pwfile, owner.uid, owner.gid);
    }
    const init = spawnSync(join(bin, 'initdb'), ['-D', join(staging, 'data'), `--pwfile=${pwfile}`, ...args], {
      encoding: 'utf8',
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    });
    rmSync(pwfile);
    if (init.status !== 0) {
      rmSync(staging, { recursive: true, force: true });
      throw new Error(`initdb failed (${init.status}): ${init.stderr || init.stdout}`);
    }
    writeFileSync(join(staging, 'password'), password, { mode: 0o600 });
    try {
      renameSync(staging, cache);
    } catch {
      rmSync(staging, { recursive: true, force: true }); // another test file's copy got there first
    }
  }
  return { data: join(cache, 'data'), password: readFileSync(join(cache, 'password'), 'utf8') };
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const owner = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-pg-'));
  const data = join(dir, 'data');
  const user = USER;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const asOwner = owner ? { uid: owner.uid, gid: owner.gid } : {};
  const cluster = initializedCluster(bin, owner);
  const password = cluster.password;
  // cp -a keeps the server user's ownership and the 0700 mode postgres insists on.
  const copy = spawnSync('cp', ['-a', cluster.data, data], { encoding: 'utf8' });
  if (copy.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`copying the initialized cluster failed: ${copy.stderr}`);
  }

  let server: ChildProcess | undefined;
  let port = 0;
  let log = '';
  for (let attempt = 0; attempt < 5 && !server; attempt++) {
    port = await freePort();
    const child = serverKilledAtExit(spawn(
      join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'],
      { stdio: ['ignore', 'pipe', 'pipe'], ...asOwner },
    ));
    child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    if (await ready(child, port, user, password)) server = child;
    else if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (!server) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postgres did not start: ${log.slice(-2000)}`);
  }
  const running = server;

  const query = async <R extends object>(database: string, text: string, values: unknown[] = []): Promise<R[]> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user, password, database });
    await client.connect();
    try {
      return (await client.query(text, values)).rows as R[];
    } finally {
      await client.end();
    }
  };
  let databases = 0;
  return {
    port,
    user,
    password,
    async createDatabase(prefix = 'test') {
      const name = `${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${++databases}`;
      await query('postgres', `create database ${name}`);
      return name;
    },
    connection(database) {
      return { host: '127.0.0.1', port, database, user, password, ssl: false, poolSize: 10, origin: 'test' };
    },
    url(database) {
      return `postgres://${user}:${password}@127.0.0.1:${port}/${database}`;
    },
    query,
    async stop() {
      if (running.exitCode === null) {
        const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
        running.kill('SIGINT'); // fast shutdown: disconnect clients, no waiting for them
        const timer = setTimeout(() => running.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ready(child: ChildProcess, port: number, user: string, password: string): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres', connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return true;
    } catch {
      await client.end().catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return false;
}
