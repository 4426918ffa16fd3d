/**
 * `doctor`: what is wrong with this installation and how to fix it. It reads
 * and never writes: the config, the store and its lock, each provider's
 * credentials (by reading a record), each source, and for every enrolled
 * domain whether its `rua` reaches a source this daemon reads, including the
 * external-destination authorisation (RFC 7489 §7.1) a rua on another domain
 * needs.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { providerSetFrom } from '../../providers/config-file.js';
import { sessionSecret } from '../api/server.js';
import { queryTxt } from '../dns/index.js';
import { dmarcName, dmarcRecordsOf, mailtoAddresses, parseRecord, tagValue } from '../record/index.js';
import { listDomains } from '../store/domains.js';
import { openStore } from '../store/open.js';
import { describeStore } from '../store/location.js';
import type { DomainRow } from '../store/schema.js';
import { errorMessage } from '../errors.js';
import { notificationChecks } from '../notify/doctor.js';
import type { DaemonConfig } from './config.js';
import { acquireInstanceLock, LockHeldError } from './lock.js';
import { listInstances } from '../store/instances.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  /** What was checked, e.g. `provider pdns`, `rua example.com`. */
  subject: string;
  status: CheckStatus;
  detail: string;
  /** How to fix it, when it is not ok. */
  fix?: string;
}

export async function runDoctor(config: DaemonConfig, env: NodeJS.ProcessEnv = process.env): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [{ subject: 'config', status: 'ok', detail: `${config.file} is valid` }];
  checks.push(...apiChecks(config, env));
  checks.push(...(await notificationChecks(config.notify, config.file)));

  // A first install has no store yet (maybe not even its folder): say so, check the folder can be
  // made, and go on with everything that needs no store. Opening it here would create it.
  const location = config.storeLocation;
  const where = describeStore(location);
  if (location.kind === 'sqlite' && !existsSync(location.path)) {
    checks.push(firstInstallStoreCheck(location.path));
    checks.push({ subject: 'daemon', status: 'warn', detail: 'no daemon has run on this store yet', fix: `dmarc-rollout daemon --config ${config.file}` });
    checks.push(...(await storeFreeChecks(config, [], env)));
    return checks;
  }

  // SQLite: the lock file says whether the one daemon runs. Postgres: the instances' heartbeats do (below, once the store opens).
  if (location.kind === 'sqlite') {
    try {
      acquireInstanceLock(location.path).release();
      checks.push({ subject: 'daemon', status: 'warn', detail: 'no daemon is running on this store', fix: `dmarc-rollout daemon --config ${config.file}` });
    } catch (error) {
      if (!(error instanceof LockHeldError)) throw error;
      checks.push({ subject: 'daemon', status: 'ok', detail: error.message.replace(/; one daemon per store$/, '') });
    }
  }

  let store;
  try {
    store = await openStore(location);
    checks.push({ subject: 'store', status: 'ok', detail: `${where} opens and is migrated` });
  } catch (error) {
    const fix =
      location.kind === 'sqlite'
        ? 'check the path and its permissions (store.sqlite in the config, or DMARC_ROLLOUT_DB)'
        : `check that the database is reachable, the user and password are right, and the user may create tables in it (${location.connection.origin})`;
    checks.push({ subject: 'store', status: 'fail', detail: location.kind === 'sqlite' ? `${where}: ${errorMessage(error)}` : errorMessage(error), fix });
    return checks;
  }
  if (location.kind === 'postgres') {
    const live = (await listInstances(store.db, new Date(), config.instances.lease_seconds * 1000).catch(() => [])).filter((i) => i.live);
    checks.push(
      live.length === 0
        ? { subject: 'daemon', status: 'warn', detail: `no daemon is running on ${where} (no instance's heartbeat within ${config.instances.lease_seconds} s)`, fix: `dmarc-rollout daemon --config ${config.file}` }
        : { subject: 'daemon', status: 'ok', detail: `${live.length} daemon${live.length === 1 ? '' : 's'} running on ${where}: ${live.map((i) => `${i.id} (pid ${i.pid} on ${i.host}, since ${i.started_at})`).join(', ')}` },
    );
  }
  try {
    checks.push(...(await storeFreeChecks(config, await listDomains(store.db), env)));
  } finally {
    await store.close();
  }
  return checks;
}

/** The store file does not exist: fine before the first start if its folder can be created and written. */
function firstInstallStoreCheck(storePath: string): DoctorCheck {
  let dir = dirname(storePath);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
    return { subject: 'store', status: 'ok', detail: `${storePath} does not exist yet; the first start (or command) creates it in ${dir}` };
  } catch {
    return { subject: 'store', status: 'fail', detail: `${storePath} does not exist yet and ${dir} is not writable, so it cannot be created`, fix: `give the daemon's user write access to ${dir}, or point store.sqlite (or DMARC_ROLLOUT_DB) elsewhere` };
  }
}

/** Providers, sources and each domain's rua; `domains` is empty before the first start. */
async function storeFreeChecks(config: DaemonConfig, domains: DomainRow[], env: NodeJS.ProcessEnv): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const providers = providerSetFrom(config.providers, config.file, { env });
  const liveRecords = new Map<string, string | null>();
  for (const name of providers.names) {
    const users = domains.filter((d) => d.provider === name);
    try {
      const provider = providers.get(name);
      if (users.length === 0) {
        checks.push({ subject: `provider ${name}`, status: 'warn', detail: 'configured, and its secret is readable, but no enrolled domain uses it' });
        continue;
      }
      for (const d of users) liveRecords.set(d.domain, dmarcRecordsOf(await provider.readTxt(dmarcName(d.domain)))[0] ?? null);
      checks.push({ subject: `provider ${name}`, status: 'ok', detail: `read _dmarc of ${users.length} domain(s)` });
    } catch (error) {
      checks.push({ subject: `provider ${name}`, status: 'fail', detail: errorMessage(error), fix: 'see providers/README.md for its settings, secret and permissions' });
    }
  }
  for (const [name, block] of Object.entries(config.providers)) {
    const settings = (block ?? {}) as { type?: unknown; timeout_seconds?: unknown };
    if (settings.type === 'manual' && typeof settings.timeout_seconds === 'number' && settings.timeout_seconds > 0) {
      checks.push({
        subject: `provider ${name}`,
        status: 'warn',
        detail: `a manual change makes the tick wait up to ${settings.timeout_seconds} s for a person, and every other domain waits with it`,
        fix: `remove providers.${name}.timeout_seconds (the daemon then prints the change and verifies it on later ticks)`,
      });
    }
  }
  for (const d of domains) {
    if (d.provider !== null && !providers.names.includes(d.provider)) {
      checks.push({ subject: `domain ${d.domain}`, status: 'fail', detail: `enrolled with provider "${d.provider}", which the config does not define`, fix: `add providers.${d.provider} to ${config.file}` });
    }
  }

  for (const source of config.sources) {
    if (source.type === 'folder') {
      try {
        accessSync(source.path, constants.R_OK | constants.W_OK);
        checks.push({ subject: `source folder ${source.path}`, status: 'ok', detail: 'readable and writable' });
      } catch (error) {
        checks.push({ subject: `source folder ${source.path}`, status: existsSync(source.path) ? 'fail' : 'warn', detail: errorMessage(error), fix: existsSync(source.path) ? 'give the daemon read and write access' : 'it is created on the first poll' });
      }
    } else if (source.type === 'imap') {
      checks.push({ subject: `source imap ${source.user}@${source.host}`, status: 'ok', detail: `polls ${source.mailbox} while the daemon runs; add its address to report_addresses` });
    } else {
      checks.push({ subject: `source smtp ${source.host}:${source.port}`, status: 'ok', detail: `accepts mail for ${source.recipients.join(', ')} while the daemon runs` });
    }
  }

  const reached = reportDestinations(config);
  for (const d of domains) {
    if (!liveRecords.has(d.domain)) continue;
    const record = liveRecords.get(d.domain) ?? null;
    const rua = record === null ? undefined : tagValue(parseRecord(record).tags, 'rua');
    const addresses = rua === undefined ? [] : mailtoAddresses(rua);
    if (addresses.length === 0) {
      checks.push({ subject: `rua ${d.domain}`, status: 'fail', detail: record === null ? 'no DMARC record yet' : 'the record has no usable rua: no reports will come back', fix: `add rua=mailto:<an address this daemon reads> to _dmarc.${d.domain}` });
      continue;
    }
    const ours = addresses.filter((a) => matches(a, reached));
    checks.push(
      ours.length > 0
        ? { subject: `rua ${d.domain}`, status: 'ok', detail: `${ours.join(', ')} reaches this daemon` }
        : { subject: `rua ${d.domain}`, status: reached.length === 0 ? 'warn' : 'fail', detail: `${addresses.join(', ')}: none of them is an address this daemon reads (${reached.join(', ') || 'none configured'})`, fix: 'add the address to report_addresses or an SMTP source, or point rua at one of them' },
    );
    for (const address of addresses) {
      const host = address.split('@')[1] ?? '';
      if (host === d.domain || host.endsWith(`.${d.domain}`) || d.domain.endsWith(`.${host}`)) continue;
      const name = `${d.domain}._report._dmarc.${host}`;
      try {
        const answer = await queryTxt(name, config.dns?.resolvers ?? []);
        const authorised = answer.txt.some((t) => /^v\s*=\s*DMARC1\s*(;|$)/i.test(t.trim()));
        checks.push(
          authorised
            ? { subject: `rua ${d.domain}`, status: 'ok', detail: `${host} authorises reports for ${d.domain} (${name})` }
            : { subject: `rua ${d.domain}`, status: 'fail', detail: `${host} is another domain and ${name} has no v=DMARC1 record, so receivers will not send reports there`, fix: `publish ${name} TXT "v=DMARC1" in the ${host} zone` },
        );
      } catch (error) {
        checks.push({ subject: `rua ${d.domain}`, status: 'warn', detail: `could not look up ${name}: ${errorMessage(error)}` });
      }
    }
  }
  return checks;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Who can use the API and page, whether sessions survive a restart, and whether tokens would cross a network in clear. */
function apiChecks(config: DaemonConfig, env: NodeJS.ProcessEnv): DoctorCheck[] {
  if (!config.api) return [];
  const api = config.api;
  const checks: DoctorCheck[] = [];
  const create = 'dmarc-rollout token create <name> --role operator, and add the entry it prints to api.tokens or api.tokens_file';
  const operators = config.apiTokens.filter((t) => t.role === 'operator').length;
  if (config.apiTokens.length === 0) {
    checks.push({ subject: 'api tokens', status: 'fail', detail: 'no tokens: the API and the page refuse every request', fix: create });
  } else if (operators === 0) {
    checks.push({ subject: 'api tokens', status: 'warn', detail: `${config.apiTokens.length} viewer token(s) and no operator: nobody can approve, pause or roll back from the page or API`, fix: create });
  } else {
    checks.push({ subject: 'api tokens', status: 'ok', detail: `${operators} operator and ${config.apiTokens.length - operators} viewer token(s)` });
  }
  try {
    const { persistent } = sessionSecret(api, env);
    checks.push(
      persistent
        ? { subject: 'api session secret', status: 'ok', detail: 'set; page sessions survive a restart' }
        : { subject: 'api session secret', status: 'warn', detail: 'not set: a new one is made at each start, so a restart signs everyone out', fix: 'set api.session.secret_file (32 or more random characters, e.g. openssl rand -base64 48)' },
    );
  } catch (error) {
    checks.push({ subject: 'api session secret', status: 'fail', detail: errorMessage(error), fix: 'set the variable or create the file, 32 or more random characters' });
  }
  const { host, port } = api.listen;
  if (!LOOPBACK.has(host) && !api.session.secure_cookie) {
    checks.push({
      subject: 'api listen',
      status: 'warn',
      detail: `listens on ${host}:${port} over plain HTTP: tokens and session cookies would cross the network unencrypted`,
      fix: 'listen on 127.0.0.1 behind a TLS reverse proxy and set api.session.secure_cookie: true (in a container, publish the port on loopback only)',
    });
  } else {
    checks.push({ subject: 'api listen', status: 'ok', detail: `${host}:${port}${LOOPBACK.has(host) ? ' (loopback)' : ', cookies marked Secure for a TLS proxy in front'}` });
  }
  return checks;
}

/** Addresses (or `@domain` for a whole domain) that reach one of this daemon's sources. */
function reportDestinations(config: DaemonConfig): string[] {
  const smtp = config.sources.flatMap((s) => (s.type === 'smtp' ? s.recipients : []));
  return [...config.report_addresses, ...smtp].map((a) => a.toLowerCase());
}

function matches(address: string, destinations: string[]): boolean {
  return destinations.some((d) => (d.startsWith('@') ? address.endsWith(d) : address === d));
}
