/**
 * The daemon's one config file (YAML), validated with zod: a bad file names
 * the file, the path of each wrong field and the reason, and the daemon does
 * not start. Secrets are never in it: provider blocks name an environment
 * variable or a file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { validate as validCron } from 'node-cron';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { parseProviderConfig } from '../../providers/index.js';
import { AppError, errorMessage } from '../errors.js';
import { apiConfigSchema, type ApiTokenEntry } from '../api/config.js';
import { readTokenFile } from '../api/tokens.js';
import { postgresConfigSchema, postgresConnectionFromConfig, storeLocationFromEnv, type StoreLocation } from '../store/location.js';
import { parseSourceSpec } from '../fleet/actions.js';
import { normalizeDomainName } from '../names.js';
import type { SourceRule } from '../engine/types.js';
import { folderSourceConfigSchema } from './sources/folder.js';
import { imapSourceConfigSchema } from './sources/imap.js';
import { smtpSourceConfigSchema } from './sources/smtp.js';
import { notificationsConfigSchema, resolveNotifications, type NotifySettings } from '../notify/config.js';

const cron = (fallback: string) =>
  z
    .string()
    .refine((expr) => validCron(expr), { message: 'not a valid cron expression (minute hour day month weekday)' })
    .default(fallback);

export const daemonConfigSchema = z
  .object({
    /** The SQLite file; relative paths are from the config file's folder. Default: DMARC_ROLLOUT_DB or data/dmarc-rollout.sqlite. */
    store: z
      .object({
        sqlite: z.string().min(1).optional(),
        /** A Postgres database instead of the file: host, port, database, user, password_env or password_file, ssl. */
        postgres: postgresConfigSchema.optional(),
      })
      .strict()
      .refine((s) => (s.sqlite === undefined) !== (s.postgres === undefined), { message: 'give either sqlite (a file) or postgres (a database), not both or neither' })
      .optional(),
    schedule: z
      .object({
        /** How often sources are polled. */
        ingest: cron('*/10 * * * *'),
        /** How often domains are judged and moved; hourly is plenty for daily reports. */
        tick: cron('17 * * * *'),
      })
      .strict()
      .default({ ingest: '*/10 * * * *', tick: '17 * * * *' }),
    /** Named DNS providers, as in providers/README.md; a domain's `provider` names one. */
    providers: z.record(z.string(), z.unknown()).default({}),
    sources: z.array(z.discriminatedUnion('type', [folderSourceConfigSchema, imapSourceConfigSchema, smtpSourceConfigSchema])).default([]),
    /**
     * Report addresses that reach this daemon's sources besides the SMTP
     * recipients (the IMAP mailbox's address, the address whose mail lands in
     * the folder); `doctor` checks each domain's rua against them.
     */
    report_addresses: z.array(z.string().email('not an email address')).default([]),
    /**
     * Who may send reports: a report mail from a source not marked `trusted`
     * counts only when it authenticates (DKIM, or SPF at the SMTP listener) as
     * the reporter it names (its metadata email's domain, or org_name when that
     * is a domain). `reporters` adds the domains a reporter signs with when
     * they are not the ones its reports name, keyed by org_name or email domain.
     */
    provenance: z
      .object({
        reporters: z
          .record(
            z.string().min(1).transform((k) => k.trim().toLowerCase()),
            z.array(z.string().refine((d) => normalizeDomainName(d).ok, { message: 'not a domain name' })).min(1),
          )
          .default({}),
      })
      .strict()
      .default({ reporters: {} }),
    /**
     * A run of ingest or tick going on longer than this, or none finishing for
     * two intervals plus this, is a stall: /healthz answers 503 and systemd's
     * watchdog (WatchdogSec=, NotifyAccess=all) gets no keep-alive.
     */
    watchdog: z
      .object({ stall_seconds: z.number().int().positive().default(1800) })
      .strict()
      .default({ stall_seconds: 1800 }),
    /**
     * Daemons sharing one Postgres store (on SQLite, one daemon per store).
     * Each beats every heartbeat_seconds, renewing the leases it holds (a
     * domain being judged and applied, a source being polled) until
     * lease_seconds from then: a daemon that dies has its work taken over by
     * another one lease time later.
     */
    instances: z
      .object({
        heartbeat_seconds: z.number().int().positive().default(10),
        lease_seconds: z.number().int().positive().default(60),
      })
      .strict()
      .refine((i) => i.lease_seconds >= 3 * i.heartbeat_seconds, {
        message: 'lease_seconds must be at least three heartbeats, or a lease may run out while its holder lives',
        path: ['lease_seconds'],
      })
      .default({ heartbeat_seconds: 10, lease_seconds: 60 }),
    /** Work per reporter and hour from the report sources: past it a report is kept with the reason and not counted. */
    budget: z
      .object({ records_per_reporter_per_hour: z.number().int().positive().default(200_000) })
      .strict()
      .default({ records_per_reporter_per_hour: 200_000 }),
    /**
     * How long raw report rows are kept: rows of reports that ended more than
     * raw_rows_days ago are deleted, at most prune_rows_per_tick rows a tick
     * (0 keeps them for ever). The daily rollups the engine judges from, the
     * reports' metadata and their hashes (so a copy sent again is still a
     * duplicate) are kept for ever.
     */
    retention: z
      .object({
        raw_rows_days: z.number().int().min(0).default(90),
        prune_rows_per_tick: z.number().int().positive().default(200_000),
      })
      .strict()
      .default({ raw_rows_days: 90, prune_rows_per_tick: 200_000 }),
    /** Resolvers for doctor's DNS checks and for report provenance (DKIM keys, SPF, DMARC); the system's when absent. */
    dns: z.object({ resolvers: z.array(z.string().min(1)).min(1) }).strict().optional(),
    /**
     * Sending sources the operator vouches for (or marks as abuse), for one
     * domain or all: `{ source: 'dkim:esp.example' }`, `{ domain: example.com,
     * source: 192.0.2.0/24 }`, `{ source: 203.0.113.9, verdict: abuse }`.
     */
    allowlist: z
      .array(
        z
          .object({
            domain: z.string().min(1).optional(),
            source: z.string().refine(isSourceSpec, { message: 'not an IP, CIDR, dkim:<domain> or spf:<domain>' }),
            verdict: z.enum(['authorised', 'abuse']).default('authorised'),
          })
          .strict(),
      )
      .default([]),
    /** The HTTP API and web page; no listener when absent. */
    api: apiConfigSchema.optional(),
    /** Notification channels, reminders and the weekly summary (src/notify); nothing is sent when absent. */
    notifications: notificationsConfigSchema.optional(),
    /** Where rejected inputs are kept; default `rejected/` beside the store. */
    rejected_dir: z.string().min(1).optional(),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

function isSourceSpec(text: string): boolean {
  try {
    parseSourceSpec(text);
    return true;
  } catch {
    return false;
  }
}

/** The config's allowlist as engine rules; domains normalised like enrolment does. */
export function configSourceRules(config: DaemonConfig): SourceRule[] {
  return config.allowlist.map((entry) => {
    const spec = parseSourceSpec(entry.source);
    const domain = entry.domain === undefined ? null : normalizeDomainName(entry.domain);
    if (domain !== null && !domain.ok) throw new ConfigError(`${config.file}: allowlist: "${entry.domain}": ${domain.reason}`);
    return { domain: domain === null ? null : domain.domain, kind: spec.kind, value: spec.value, verdict: entry.verdict };
  });
}

export type DaemonConfig = z.infer<typeof daemonConfigSchema> & {
  /** The config file, for messages. */
  file: string;
  /** The SQLite store's path, resolved; null when the store is Postgres. */
  storePath: string | null;
  /** The store: the SQLite file, or the Postgres database (password read). Default: DMARC_ROLLOUT_DATABASE_URL, else DMARC_ROLLOUT_DB, else the package's file. */
  storeLocation: StoreLocation;
  /** Every API token (the config's and the token file's), hashes only. */
  apiTokens: ApiTokenEntry[];
  /** The notifications block with its channels' secrets read. */
  notify: NotifySettings;
};

/** A config file that cannot be read or does not validate: every problem, each naming file, field path and reason. */
export class ConfigError extends AppError {
  override name = 'ConfigError';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super('config', message, options);
  }
}

/** Reads and validates the config file. @throws ConfigError naming file, field path and reason for every problem. */
export function loadDaemonConfig(file: string, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot be read: ${errorMessage(error)}`, { cause: error });
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map((e) => `${file}: not valid YAML: ${e.message.split('\n')[0]}`).join('\n'));
  let data: unknown;
  try {
    // yaml refuses a document whose aliases expand beyond a bound (a "billion laughs"): say so as a config error.
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${errorMessage(error)}`, { cause: error });
  }
  const result = daemonConfigSchema.safeParse(data);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues
        .map((i) => `${file}: ${i.path.length > 0 ? i.path.join('.') : '(config)'}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message}`)
        .join('\n'),
    );
  }
  const problems: string[] = [];
  for (const [name, block] of Object.entries(result.data.providers)) {
    const { verify: _verify, ...settings } = (block ?? {}) as { verify?: unknown };
    try {
      parseProviderConfig(settings);
    } catch (error) {
      problems.push(`${file}: providers.${name}: ${errorMessage(error)}`);
    }
  }
  const notify = resolveNotifications(result.data.notifications ?? notificationsConfigSchema.parse({}), env);
  problems.push(...notify.problems.map((p) => `${file}: ${p}`));
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  const base = dirname(resolve(file));
  let storeLocation: StoreLocation;
  try {
    const configured = result.data.store;
    storeLocation = configured?.postgres
      ? { kind: 'postgres', connection: postgresConnectionFromConfig(configured.postgres, base, env, 'store.postgres') }
      : configured?.sqlite
        ? { kind: 'sqlite', path: resolve(base, configured.sqlite) }
        : storeLocationFromEnv(env);
  } catch (error) {
    throw new ConfigError(`${file}: ${errorMessage(error)}`, { cause: error });
  }
  const storePath = storeLocation.kind === 'sqlite' ? storeLocation.path : null;
  if (storePath === null && result.data.rejected_dir === undefined) {
    throw new ConfigError(`${file}: rejected_dir: required with a Postgres store (rejected inputs are kept as files; name a folder the daemon can write)`);
  }
  // The lock file and the store go in this folder: a typo here would otherwise fail deep in SQLite without a name.
  if (result.data.store?.sqlite && storePath !== null && !existsSync(dirname(storePath))) {
    throw new ConfigError(`${file}: store.sqlite: the folder ${dirname(storePath)} does not exist; create it (owned by the daemon's user) or fix the path`);
  }
  const sources = result.data.sources.map((s) => (s.type === 'folder' ? { ...s, path: resolve(base, s.path) } : s));
  const api = result.data.api
    ? {
        ...result.data.api,
        ...(result.data.api.tokens_file ? { tokens_file: resolve(base, result.data.api.tokens_file) } : {}),
        session: {
          ...result.data.api.session,
          ...(result.data.api.session.secret_file ? { secret_file: resolve(base, result.data.api.session.secret_file) } : {}),
        },
      }
    : undefined;
  const apiTokens = api ? [...api.tokens, ...(api.tokens_file ? readTokensOrThrow(file, api.tokens_file) : [])] : [];
  const names = new Set<string>();
  for (const t of apiTokens) {
    if (names.has(t.name)) throw new ConfigError(`${file}: api.tokens: the name "${t.name}" is used twice; each holder needs a name of their own`);
    names.add(t.name);
  }
  // Like every other path in the file, a relative rejected_dir is the config file's neighbour, not the working directory's.
  const rejected = result.data.rejected_dir === undefined ? {} : { rejected_dir: resolve(base, result.data.rejected_dir) };
  const config = { ...result.data, ...rejected, providers: daemonProviderDefaults(result.data.providers), ...(api ? { api } : {}), sources, file, storePath, storeLocation, apiTokens, notify: notify.settings };
  configSourceRules(config); // a bad allowlist domain refuses the start, like any other field
  return config;
}

/**
 * A manual provider waits for a person by default (right for an interactive
 * `tick`); in the daemon that would hold the whole tick, every other domain
 * with it, for up to a day. Unless the file says otherwise, it prints the
 * change and returns, and later ticks verify it.
 */
function daemonProviderDefaults(providers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(providers).map(([name, block]) => {
      const settings = (block ?? {}) as Record<string, unknown>;
      return [name, settings.type === 'manual' && settings.timeout_seconds === undefined ? { ...settings, timeout_seconds: 0 } : block];
    }),
  );
}

function readTokensOrThrow(file: string, tokensFile: string): ApiTokenEntry[] {
  try {
    return readTokenFile(tokensFile);
  } catch (error) {
    throw new ConfigError(`${file}: api.tokens_file: ${errorMessage(error)}`, { cause: error });
  }
}
