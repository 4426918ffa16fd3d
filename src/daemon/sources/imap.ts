/**
 * The IMAP report source: reads report mails from a mailbox (imapflow), hands
 * each one's raw bytes to the daemon's `deliver`, and only then acknowledges
 * it at the origin by moving it: stored and duplicate mails to the processed
 * folder, rejected-and-kept mails to the rejected folder. A mail whose ingest
 * ended in `error`, or that is larger than the cap, stays where it is and is
 * listed in the poll's `failed`. Nothing is deleted, and nothing is moved
 * before `deliver` resolved, so a poll cut short and run again re-delivers
 * the rest (ingest deduplicates by content, so re-delivery is safe).
 */
import { readFile } from 'node:fs/promises';
import { ImapFlow } from 'imapflow';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import type { Deliver, PolledSource, PollSummary } from './types.js';

export const imapSourceConfigSchema = z
  .object({
    type: z.literal('imap'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(993),
    secure: z.boolean().default(true),
    user: z.string().min(1),
    /** Name of the environment variable that holds the password. */
    password_env: z.string().min(1).optional(),
    /** Path of a file whose content (trailing newline stripped) is the password. */
    password_file: z.string().min(1).optional(),
    mailbox: z.string().min(1).default('INBOX'),
    processed_mailbox: z.string().min(1).default('dmarc-processed'),
    rejected_mailbox: z.string().min(1).default('dmarc-rejected'),
    tls_reject_unauthorized: z.boolean().default(true),
    max_message_bytes: z.number().int().positive().default(50 * 1024 * 1024),
    batch: z.number().int().positive().max(10_000).default(100),
    /**
     * Believe every report from here as it is. Leave false (the default) for a
     * mailbox anyone can write to: each report mail must then authenticate
     * (DKIM, or SPF at the SMTP listener) as the reporter its report names.
     */
    trusted: z.boolean().default(false),
  })
  .strict()
  // Secrets come from the environment or a file only, never from the config
  // itself (which ends up in repos, tickets and logs): exactly one of the two.
  .refine((c) => (c.password_env === undefined) !== (c.password_file === undefined), {
    message: 'set exactly one of password_env or password_file',
    path: ['password_env'],
  })
  .refine((c) => c.mailbox !== c.processed_mailbox && c.mailbox !== c.rejected_mailbox, {
    message: 'processed_mailbox and rejected_mailbox must differ from mailbox, or moved mail would be read again',
    path: ['processed_mailbox'],
  });

export type ImapSourceConfigInput = z.input<typeof imapSourceConfigSchema>;
export type ImapSourceConfig = z.output<typeof imapSourceConfigSchema>;

/** The logging this source needs; a pino logger fits. Never given the password. */
export interface SourceLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ImapSourceDeps {
  env?: NodeJS.ProcessEnv;
  logger?: SourceLogger;
}

const silent: SourceLogger = { info: () => {}, warn: () => {} };

/** Creates the source; throws (zod) on an invalid config. Nothing connects until the first poll. */
export function createImapSource(config: ImapSourceConfigInput, deps: ImapSourceDeps = {}): PolledSource {
  const cfg = imapSourceConfigSchema.parse(config);
  const env = deps.env ?? process.env;
  const log = deps.logger ?? silent;
  const where = `${cfg.user}@${cfg.host}:${cfg.port}`;
  const name = `imap:${cfg.user}@${cfg.host}/${cfg.mailbox}`;
  let client: ImapFlow | null = null;
  // Polls run one after the other: two polls on one connection would fight
  // over the mailbox lock and could deliver the same mail twice at once.
  let queue: Promise<unknown> = Promise.resolve();

  async function password(): Promise<string> {
    if (cfg.password_env !== undefined) {
      const value = env[cfg.password_env];
      if (value === undefined || value === '') {
        throw new AppError('config', `imap source ${where}: environment variable ${cfg.password_env} (password_env) is not set`);
      }
      return value;
    }
    const file = cfg.password_file as string;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new AppError('config', `imap source ${where}: cannot read password_file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    const value = text.replace(/\r?\n$/, '');
    if (value === '') throw new AppError('config', `imap source ${where}: password_file ${file} is empty`);
    return value;
  }

  /** The reason an imapflow error gives, with the password scrubbed in case a server echoed it. */
  function reasonOf(e: unknown, secret: string | null): string {
    const err = e as { message?: string; code?: string; responseText?: string; authenticationFailed?: boolean; serverResponseCode?: string };
    const parts: string[] = [];
    if (err.authenticationFailed) parts.push('authentication failed');
    if (err.responseText) parts.push(err.responseText);
    else if (err.message) parts.push(err.message);
    if (err.code && !parts.some((p) => p.includes(err.code as string))) parts.push(`(${err.code})`);
    let reason = parts.join(': ') || String(e);
    if (secret) reason = reason.split(secret).join('***');
    return reason;
  }

  async function connect(): Promise<ImapFlow> {
    if (client?.usable) return client;
    client = null;
    const secret = await password();
    const c = new ImapFlow({
      host: cfg.host,
      port: cfg.port,
      secure: cfg.secure,
      auth: { user: cfg.user, pass: secret },
      tls: { rejectUnauthorized: cfg.tls_reject_unauthorized },
      // imapflow's own logger would print protocol traffic; ours gets summaries only.
      logger: false,
      // The source polls on the daemon's schedule; an idling connection between polls buys nothing.
      disableAutoIdle: true,
    });
    // A dropped connection emits 'error'; without a listener it would crash
    // the daemon. The next poll sees `usable === false` and reconnects.
    c.on('error', (e: unknown) => log.warn({ source: name, reason: reasonOf(e, secret) }, 'imap connection error'));
    try {
      await c.connect();
    } catch (e) {
      c.close();
      // No cause: the library's error may quote what the server echoed, the password included.
      throw new AppError('unavailable', `imap source: cannot log in to ${cfg.host}:${cfg.port} as user ${cfg.user}: ${reasonOf(e, secret)}`);
    }
    client = c;
    return c;
  }

  const created = new Set<string>();
  async function ensureMailbox(c: ImapFlow, path: string): Promise<void> {
    if (created.has(path)) return;
    // mailboxCreate answers ALREADYEXISTS for an existing folder; imapflow
    // reports that as a result (created: false), not an error.
    await c.mailboxCreate(path);
    created.add(path);
  }

  async function runPoll(deliver: Deliver): Promise<PollSummary> {
    const summary: PollSummary = { delivered: 0, acknowledged: 0, failed: [] };
    const c = await connect();
    let lock;
    try {
      lock = await c.getMailboxLock(cfg.mailbox);
    } catch (e) {
      throw new AppError('unavailable', `imap source ${where}: cannot open mailbox ${cfg.mailbox}: ${reasonOf(e, null)}`);
    }
    try {
      // The mailbox may still be selected from the last poll; the server only
      // lets SEARCH see mail it has announced, so sync (NOOP) to see what
      // arrived since. CLOSE/re-SELECT would do too, but CLOSE expunges
      // \Deleted mail that other clients flagged, which is not ours to remove.
      await c.noop();
      const box = c.mailbox;
      if (!box) throw new AppError('unavailable', `imap source ${where}: mailbox ${cfg.mailbox} is not open`);
      const uidValidity = box.uidValidity.toString();
      // Every message still in the mailbox: handled ones have been moved out,
      // so what is here is exactly what is left to do, seen or not (a person
      // or another client reading it must not hide it from us).
      const uids = (await c.search({ all: true }, { uid: true })) || [];
      uids.sort((a, b) => a - b);
      for (let i = 0; i < uids.length; i += cfg.batch) {
        const chunk = uids.slice(i, i + cfg.batch);
        // Sizes first, so an oversized mail is never downloaded whole.
        const sizes = new Map<number, number>();
        for (const m of await c.fetchAll(chunk.join(','), { uid: true, size: true }, { uid: true })) {
          sizes.set(m.uid, m.size ?? 0);
        }
        for (const uid of chunk) {
          const source = `imap:${cfg.mailbox}/${uidValidity}/${uid}`;
          const size = sizes.get(uid);
          if (size === undefined) continue; // expunged by someone else since the search
          if (size > cfg.max_message_bytes) {
            const reason = `message is ${size} bytes, over max_message_bytes (${cfg.max_message_bytes}); left in ${cfg.mailbox}`;
            summary.failed.push({ source, reason });
            log.warn({ source, size }, 'imap message over the size cap, skipped');
            continue;
          }
          const msg = await c.fetchOne(String(uid), { uid: true, source: true }, { uid: true });
          if (!msg || !msg.source) continue; // expunged meanwhile
          summary.delivered++;
          // A throw from deliver ends the poll here: this mail and the rest
          // stay in the mailbox for the next poll.
          const result = await deliver({ bytes: msg.source, provenance: { trusted: cfg.trusted } }, source);
          if (result.status === 'error') {
            summary.failed.push({ source, reason: result.reason });
            log.warn({ source, reason: result.reason }, 'imap message not ingested, left in place');
            continue;
          }
          const target = result.status === 'rejected' ? cfg.rejected_mailbox : cfg.processed_mailbox;
          try {
            await ensureMailbox(c, target);
            const moved = await c.messageMove(String(uid), target, { uid: true });
            if (!moved) throw new AppError('unavailable', 'server refused the move');
          } catch (e) {
            // Kept by ingest but still here: the next poll delivers it again,
            // which ingest answers with duplicate (or seen_before), and moves it then.
            const reason = `${result.status}, but moving it to ${target} failed: ${reasonOf(e, null)}`;
            summary.failed.push({ source, reason });
            log.warn({ source, reason }, 'imap move failed');
            continue;
          }
          summary.acknowledged++;
          log.info({ source, status: result.status, to: target }, 'imap message ingested and moved');
        }
      }
    } finally {
      lock.release();
    }
    return summary;
  }

  return {
    kind: 'poll',
    name,
    poll(deliver: Deliver): Promise<PollSummary> {
      const run = queue.then(() => runPoll(deliver));
      queue = run.catch(() => undefined);
      return run;
    },
    async close(): Promise<void> {
      await queue;
      const c = client;
      client = null;
      if (!c) return;
      if (c.usable) {
        try {
          await c.logout();
          return;
        } catch {
          // The server went away first: closing the socket is all that is left to do.
        }
      }
      c.close();
    },
  };
}
