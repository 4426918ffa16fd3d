/**
 * The `notifications` block of the daemon config: channels (a signed JSON
 * webhook, Slack, Microsoft Teams, mail over SMTP), what each receives, the
 * reminders and thresholds of the daemon's own conditions, retry limits and
 * the weekly summary. Secrets (webhook URLs carry them too, HMAC keys, SMTP
 * passwords) come from the environment or a file only, and are read once at
 * start so a missing one refuses the start with the field that names it.
 */
import { readFileSync } from 'node:fs';
import { validate as validCron } from 'node-cron';
import { z } from 'zod';
import { EVENT_TYPE_NAMES, SEVERITIES, type EventType, type Severity } from '../store/notify-events.js';

const secretName = z.string().min(1).optional();

const filterShape = {
  /** Event types this channel receives; every type when absent. */
  events: z.array(z.enum(EVENT_TYPE_NAMES as [EventType, ...EventType[]])).min(1).optional(),
  /** The least severe event it receives (default info: everything). */
  min_severity: z.enum(SEVERITIES as [Severity, ...Severity[]]).default('info'),
  /** Only events of domains with one of these tags (fleet-wide events always pass); every domain when absent. */
  tags: z.array(z.string().min(1)).min(1).optional(),
};

const oneOf = (a: string, b: string) => (c: object) => ((c as Record<string, unknown>)[a] === undefined) !== ((c as Record<string, unknown>)[b] === undefined);

const webhookSchema = z
  .object({
    type: z.literal('webhook'),
    url_env: secretName,
    url_file: secretName,
    /** The HMAC-SHA256 key the receiver checks the signature with. */
    secret_env: secretName,
    secret_file: secretName,
    ...filterShape,
  })
  .strict()
  .refine(oneOf('url_env', 'url_file'), { message: 'set exactly one of url_env or url_file (a webhook URL is a secret)' })
  .refine(oneOf('secret_env', 'secret_file'), { message: 'set exactly one of secret_env or secret_file (the HMAC key)' });

const incomingWebhookSchema = <T extends 'slack' | 'teams'>(type: T) =>
  z
    .object({ type: z.literal(type), url_env: secretName, url_file: secretName, ...filterShape })
    .strict()
    .refine(oneOf('url_env', 'url_file'), { message: 'set exactly one of url_env or url_file (the incoming-webhook URL is a secret)' });

const smtpSchema = z
  .object({
    type: z.literal('smtp'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    /** tls: TLS from the first byte (port 465); starttls: STARTTLS required (default); none: plain text (loopback relays only). */
    security: z.enum(['tls', 'starttls', 'none']).default('starttls'),
    user: z.string().min(1).optional(),
    password_env: secretName,
    password_file: secretName,
    from: z.string().email('not an email address'),
    to: z.array(z.string().email('not an email address')).min(1),
    ...filterShape,
  })
  .strict()
  .refine((c) => c.user === undefined || (c.password_env === undefined) !== (c.password_file === undefined), {
    message: 'with user, set exactly one of password_env or password_file',
  })
  .refine((c) => c.user === undefined || c.security !== 'none' || isLoopback(c.host), {
    message: 'refusing to send a password without TLS to a host that is not loopback; set security: starttls or tls',
  });

export const channelConfigSchema = z.union([webhookSchema, incomingWebhookSchema('slack'), incomingWebhookSchema('teams'), smtpSchema]);
export type ChannelConfig = z.infer<typeof channelConfigSchema>;

const cron = z.string().refine((expr) => validCron(expr), { message: 'not a valid cron expression (minute hour day month weekday)' });

export const notificationsConfigSchema = z
  .object({
    /** Named channels; the name is what `notify test` and the page show. */
    channels: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, 'a channel name is letters, digits, - and _'), z.unknown()).default({}),
    /** A waiting approval is announced once, then reminded of this often while it waits. */
    approval_reminder_hours: z.number().positive().default(24),
    /** Announce a change (queued, written or retrying) still in flight after this many hours. */
    change_stuck_hours: z.number().positive().default(6),
    /** Announce when no tick has finished for this many tick intervals. */
    tick_stale_intervals: z.number().int().min(2).default(3),
    /** Announce when ingest rejects, over the last 24 hours, at least `min` inputs and `factor` times the daily average of the 7 days before. */
    ingest_rejected: z.object({ min: z.number().int().min(1).default(5), factor: z.number().min(1).default(3) }).strict().default({ min: 5, factor: 3 }),
    /** Delivery retries: exponential backoff from 30 s up to max_backoff_minutes; given up on (kept, shown) after give_up_after_hours. */
    retry: z
      .object({ max_backoff_minutes: z.number().positive().default(30), give_up_after_hours: z.number().positive().default(48) })
      .strict()
      .default({ max_backoff_minutes: 30, give_up_after_hours: 48 }),
    /** Dispatched events and delivered messages are forgotten after this many days (undeliverable ones are kept). */
    keep_days: z.number().int().min(1).max(3650).default(90),
    /** How often the sender looks for due messages. */
    poll_seconds: z.number().positive().max(3600).default(5),
    /** Give up on one attempt after this long. */
    timeout_seconds: z.number().positive().max(300).default(15),
    /** The page's address, for links in messages (e.g. https://dmarc.example.com). */
    base_url: z.string().url().optional(),
    /** The weekly summary (where every domain stands, what moved, what waits) to these channels. */
    summary: z
      .object({ schedule: cron.default('0 8 * * 1'), channels: z.array(z.string().min(1)).min(1), since_days: z.number().int().min(1).max(90).default(7) })
      .strict()
      .optional(),
  })
  .strict();

export type NotificationsConfig = z.infer<typeof notificationsConfigSchema>;

/** A channel ready to use: its settings with the secrets read. */
export type ResolvedChannel =
  | { name: string; type: 'webhook'; url: string; secret: string; filter: ChannelFilter }
  | { name: string; type: 'slack' | 'teams'; url: string; filter: ChannelFilter }
  | {
      name: string;
      type: 'smtp';
      host: string;
      port: number;
      security: 'tls' | 'starttls' | 'none';
      auth: { user: string; pass: string } | null;
      from: string;
      to: string[];
      filter: ChannelFilter;
    };

export interface ChannelFilter {
  events: EventType[] | null;
  minSeverity: Severity;
  tags: string[] | null;
}

/** The settings the notifier runs with. */
export interface NotifySettings {
  channels: ResolvedChannel[];
  approvalReminderMs: number;
  tickStaleIntervals: number;
  changeStuckMs: number;
  ingestRejected: { min: number; factor: number };
  maxBackoffMs: number;
  giveUpAfterMs: number;
  pollMs: number;
  timeoutMs: number;
  keepMs: number;
  baseUrl: string | null;
  summary: { schedule: string; channels: string[]; sinceDays: number } | null;
}

/**
 * Validates each channel and reads its secrets. Returns problems as
 * `notifications.channels.<name>.<field>: <reason>` lines (the caller adds
 * the file name), never the secret values.
 */
export function resolveNotifications(config: NotificationsConfig, env: NodeJS.ProcessEnv): { settings: NotifySettings; problems: string[] } {
  const problems: string[] = [];
  const channels: ResolvedChannel[] = [];
  for (const [name, block] of Object.entries(config.channels)) {
    const where = `notifications.channels.${name}`;
    const parsed = channelConfigSchema.safeParse(block);
    if (!parsed.success) {
      problems.push(...channelIssues(where, block, parsed.error));
      continue;
    }
    const c = parsed.data;
    const filter: ChannelFilter = { events: c.events ?? null, minSeverity: c.min_severity, tags: c.tags ?? null };
    const secret = (envKey: string, fileKey: string, label: string): string => {
      const source = { env: (c as Record<string, unknown>)[envKey] as string | undefined, file: (c as Record<string, unknown>)[fileKey] as string | undefined };
      const value = readSecret(source, env);
      if (typeof value === 'string') return value;
      problems.push(`${where}.${source.env !== undefined ? envKey : fileKey}: ${label} ${value.problem}`);
      return '';
    };
    if (c.type === 'webhook') {
      const url = secret('url_env', 'url_file', 'the URL');
      const key = secret('secret_env', 'secret_file', 'the HMAC key');
      if (url && !isHttpUrl(url)) problems.push(`${where}: the URL read from ${c.url_env ?? c.url_file} is not an http(s) URL`);
      channels.push({ name, type: 'webhook', url, secret: key, filter });
    } else if (c.type === 'slack' || c.type === 'teams') {
      const url = secret('url_env', 'url_file', 'the URL');
      if (url && !isHttpUrl(url)) problems.push(`${where}: the URL read from ${c.url_env ?? c.url_file} is not an http(s) URL`);
      channels.push({ name, type: c.type, url, filter });
    } else {
      const pass = c.user !== undefined ? secret('password_env', 'password_file', 'the SMTP password') : '';
      channels.push({
        name,
        type: 'smtp',
        host: c.host,
        port: c.port,
        security: c.security,
        auth: c.user !== undefined ? { user: c.user, pass } : null,
        from: c.from,
        to: c.to,
        filter,
      });
    }
  }
  const names = new Set(channels.map((c) => c.name));
  for (const name of config.summary?.channels ?? []) {
    if (!names.has(name) && !(name in config.channels)) problems.push(`notifications.summary.channels: no channel named "${name}"`);
  }
  return {
    settings: {
      channels,
      approvalReminderMs: config.approval_reminder_hours * 3_600_000,
      tickStaleIntervals: config.tick_stale_intervals,
      changeStuckMs: config.change_stuck_hours * 3_600_000,
      ingestRejected: config.ingest_rejected,
      maxBackoffMs: config.retry.max_backoff_minutes * 60_000,
      giveUpAfterMs: config.retry.give_up_after_hours * 3_600_000,
      pollMs: config.poll_seconds * 1000,
      keepMs: config.keep_days * 86_400_000,
      timeoutMs: config.timeout_seconds * 1000,
      baseUrl: config.base_url?.replace(/\/+$/, '') ?? null,
      summary: config.summary ? { schedule: config.summary.schedule, channels: config.summary.channels, sinceDays: config.summary.since_days } : null,
    },
    problems,
  };
}

/** The defaults, for a config without a notifications block (no channels). */
export function defaultNotifySettings(): NotifySettings {
  return resolveNotifications(notificationsConfigSchema.parse({}), {}).settings;
}

function channelIssues(where: string, block: unknown, error: z.ZodError): string[] {
  const type = (block as { type?: unknown } | null)?.type;
  if (!['webhook', 'slack', 'teams', 'smtp'].includes(String(type))) return [`${where}.type: must be one of webhook, slack, teams, smtp`];
  // The union's issues are per member; report those of the member the type names.
  const issues = error.issues.flatMap((i) => (i.code === 'invalid_union' ? (i.errors.find((e) => !e.some((x) => x.path[0] === 'type')) ?? []) : [i]));
  return issues.map((i) => `${where}${i.path.length > 0 ? `.${i.path.join('.')}` : ''}: ${i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message}`);
}

function readSecret(source: { env?: string | undefined; file?: string | undefined }, env: NodeJS.ProcessEnv): string | { problem: string } {
  if (source.env !== undefined) {
    const value = env[source.env]?.trim();
    return value ? value : { problem: `missing: environment variable ${source.env} is not set or empty` };
  }
  if (source.file !== undefined) {
    try {
      const value = readFileSync(source.file, 'utf8').trim();
      return value ? value : { problem: `missing: file ${source.file} is empty` };
    } catch (error) {
      return { problem: `missing: cannot read file ${source.file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}` };
    }
  }
  return { problem: 'not configured' };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
