/**
 * A real PowerDNS authoritative server for tests: its own config dir, a
 * fresh SQLite database built from the schema the Debian package ships, DNS
 * and the HTTP API on free loopback ports, no caches (so a read right after a
 * write sees it), stopped when the test is done. Never the system service.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { serverKilledAtExit } from './children.js';

const INSTALL_HINT =
  'install the Debian packages pdns-server and pdns-backend-sqlite3 (bash test/setup.sh installs them)';

/** A running pdns_server and what a test needs to reach it. */
export interface PdnsServer {
  /** Base of the HTTP API, e.g. http://127.0.0.1:40123 (the adapter adds /api/v1). */
  apiUrl: string;
  apiKey: string;
  dnsPort: number;
  /** `127.0.0.1:PORT`, for a resolver's setServers. */
  dnsServer: string;
  /** Creates a zone with an NS record and the nameserver's A record (127.0.0.1), plus `rrsets`. */
  createZone(name: string, rrsets?: PdnsRrset[]): Promise<void>;
  /** Sends rrsets to the API as they are (test setup that bypasses the adapter). */
  patchZone(name: string, rrsets: PdnsRrset[]): Promise<void>;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
}

/** An RRset in the PowerDNS API's shape. */
export interface PdnsRrset {
  name: string;
  type: string;
  ttl?: number;
  changetype?: 'REPLACE' | 'DELETE';
  records: { content: string; disabled?: boolean }[];
}

function findBinary(): string {
  for (const candidate of ['/usr/sbin/pdns_server', '/usr/local/sbin/pdns_server']) {
    if (existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v pdns_server'], { encoding: 'utf8' });
  const found = which.stdout.trim();
  if (which.status === 0 && found !== '') return found;
  throw new Error(`pdns_server not found: ${INSTALL_HINT}`);
}

function findSchema(): string {
  const known = '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql';
  if (existsSync(known)) return known;
  const listed = spawnSync('dpkg', ['-L', 'pdns-backend-sqlite3'], { encoding: 'utf8' });
  const schema = (listed.stdout ?? '').split('\n').find((line) => line.endsWith('/schema.sqlite3.sql'));
  if (listed.status !== 0 || schema === undefined) {
    throw new Error(`the PowerDNS SQLite schema (schema.sqlite3.sql) was not found: ${INSTALL_HINT}`);
  }
  return schema;
}

/** A loopback port free for both TCP and UDP at the time of asking. */
async function freePort(): Promise<number> {
  for (let tries = 0; tries < 20; tries += 1) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (port !== 0 && udpFree) return port;
  }
  throw new Error('no free loopback port for pdns_server');
}

async function waitForApi(apiUrl: string, apiKey: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`pdns_server exited with code ${child.exitCode} (if a backend is missing: ${INSTALL_HINT}):\n${log()}`);
    try {
      const res = await fetch(`${apiUrl}/api/v1/servers/localhost`, { headers: { 'X-API-Key': apiKey } });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`pdns_server did not answer on its API within 20 s:\n${log()}`);
}

/** Starts a private pdns_server; throws (so the test fails) with an install hint when PowerDNS is missing. */
export async function startPdns(): Promise<PdnsServer> {
  const binary = findBinary();
  const schema = findSchema();
  const dir = mkdtempSync(join(tmpdir(), 'pdns-test-'));
  const dbPath = join(dir, 'pdns.sqlite3');
  const db = new Database(dbPath);
  db.exec(readFileSync(schema, 'utf8'));
  db.close();

  const dnsPort = await freePort();
  const apiPort = await freePort();
  const apiKey = randomBytes(16).toString('hex');
  writeFileSync(
    join(dir, 'pdns.conf'),
    [
      'launch=gsqlite3',
      `gsqlite3-database=${dbPath}`,
      'local-address=127.0.0.1',
      `local-port=${dnsPort}`,
      'api=yes',
      `api-key=${apiKey}`,
      'webserver=yes',
      'webserver-address=127.0.0.1',
      `webserver-port=${apiPort}`,
      'webserver-allow-from=127.0.0.0/8',
      'guardian=no',
      'daemon=no',
      `socket-dir=${dir}`,
      'cache-ttl=0',
      'negquery-cache-ttl=0',
      'query-cache-ttl=0',
      'zone-cache-refresh-interval=0',
      'default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 60',
      'loglevel=4',
      '',
    ].join('\n'),
  );

  let output = '';
  const child = serverKilledAtExit(spawn(binary, [`--config-dir=${dir}`, '--guardian=no', '--daemon=no', `--socket-dir=${dir}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const apiUrl = `http://127.0.0.1:${apiPort}`;

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitForApi(apiUrl, apiKey, child, () => output);
  } catch (error) {
    await stop();
    throw error;
  }

  const api = async (method: string, path: string, body?: unknown): Promise<void> => {
    const res = await fetch(`${apiUrl}/api/v1/servers/localhost${path}`, {
      method,
      headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`pdns API ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  };

  return {
    apiUrl,
    apiKey,
    dnsPort,
    dnsServer: `127.0.0.1:${dnsPort}`,
    async createZone(name, rrsets = []) {
      const zone = `${name.replace(/\.$/, '')}.`;
      await api('POST', '/zones', {
        name: zone,
        kind: 'Native',
        nameservers: [`ns1.${zone}`],
        rrsets: [
          { name: `ns1.${zone}`, type: 'A', ttl: 300, records: [{ content: '127.0.0.1', disabled: false }] },
          ...rrsets.map((r) => ({ ttl: 300, ...r, records: r.records.map((x) => ({ disabled: false, ...x })) })),
        ],
      });
    },
    async patchZone(name, rrsets) {
      const zone = `${name.replace(/\.$/, '')}.`;
      await api('PATCH', `/zones/${encodeURIComponent(zone)}`, {
        rrsets: rrsets.map((r) => ({ ttl: 300, changetype: 'REPLACE', ...r })),
      });
    },
    stop,
  };
}
