/**
 * The SMTP report source: the daemon itself is the `rua` mailbox. An
 * MX-like listener (smtp-server) that takes mail for the configured
 * recipients only, within a size cap, reads each message into memory and
 * hands its raw bytes to the daemon's `deliver`. The message is accepted
 * (250) only after `deliver` resolved with stored, duplicate or
 * rejected-and-kept; when ingest could not keep it (`error`, or deliver
 * threw) the answer is a temporary failure (451), so the sending MTA keeps
 * the mail and retries: nothing is lost. `stop()` closes the listener and
 * waits for the deliveries in flight before it resolves.
 */
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { z } from 'zod';
import type { Kysely } from 'kysely';
import { AppError, errorMessage, InternalError } from '../../errors.js';
import { takeFromLimit } from '../../store/counters.js';
import type { Database } from '../../store/schema.js';
import type { IngestResult } from '../../reports/index.js';
import type { Deliver, ListeningSource } from './types.js';

/** `local@domain` for one mailbox, `@domain` for every mailbox of the domain. */
const recipientPattern = /^(?:[^@\s]+)?@[^@\s]+$/;

export const smtpSourceConfigSchema = z
  .object({
    type: z.literal('smtp'),
    /** Loopback by default: exposing the listener to the internet is a deliberate choice. */
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (tests); 25 needs the privilege to bind it. */
    port: z.number().int().min(0).max(65535).default(2525),
    recipients: z
      .array(z.string().trim().regex(recipientPattern, 'an address (rua@example.com) or a whole domain (@example.com)'))
      .min(1, 'list at least one recipient: a listener that accepts mail for anyone is an open relay target'),
    max_message_bytes: z
      .number()
      .int()
      .positive()
      .default(25 * 1024 * 1024),
    max_clients: z.number().int().positive().default(20),
    /** Connections one client address may hold at once: one sender cannot take every slot. Counted per listener, like max_clients: each replica's slots are its own. */
    max_clients_per_address: z.number().int().positive().default(10),
    /** A connection idle this long is closed (smtp-server's socket timeout), so idle clients cannot lock real senders out. */
    idle_timeout_seconds: z.number().int().positive().default(60),
    /** Messages one client address may deliver per hour; past that it is told to come back later (451). Counted in the store, shared by every instance's SMTP sources. Behind a relay every message comes from the relay: raise it to the burst your fleet receives. */
    messages_per_hour_per_address: z.number().int().positive().default(1000),
    /**
     * Believe every report that arrives here. Leave false (the default): each
     * report mail must authenticate (DKIM, or SPF for the connecting client) as
     * the reporter its report names, or it is kept as rejected and not counted.
     */
    trusted: z.boolean().default(false),
    /** STARTTLS with this key and certificate; without it the listener offers no TLS at all. */
    tls: z.object({ key_file: z.string().min(1), cert_file: z.string().min(1) }).strict().optional(),
    /** Text appended to the 220 greeting. */
    banner: z.string().optional(),
  })
  .strict();

export type SmtpSourceConfigInput = z.input<typeof smtpSourceConfigSchema>;
export type SmtpSourceConfig = z.output<typeof smtpSourceConfigSchema>;

/** The logging this source needs; a pino logger fits. Never given message bodies. */
export interface SourceLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SmtpSourceDeps {
  logger?: SourceLogger;
  /**
   * The store the daemon's instances share: messages per client address and
   * hour are counted there, so N replicas behind one MX name still take
   * messages_per_hour_per_address from a client, not N times as many. Without
   * one (a listener on its own) they are counted in this process.
   */
  store?: Kysely<Database>;
}

export interface SmtpSource extends ListeningSource {
  /** The bound port once `start()` resolved (the real one when configured as 0); null otherwise. */
  readonly port: number | null;
}

const silent: SourceLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** An error smtp-server answers with the given code instead of its default 450. */
function smtpError(responseCode: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode });
}

/** One line of printable ASCII: replies and logs must not carry CR/LF or control bytes from a report. */
function oneLine(text: string, max = 300): string {
  const clean = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

/** The Message-ID from the header section only (the body is never searched), without brackets; null if none. */
export function messageIdOf(message: Buffer): string | null {
  // Headers end at the first empty line; a report mail's headers are a few KiB,
  // so a bounded look keeps a huge headerless message from being scanned whole.
  const head = message.subarray(0, 64 * 1024).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const headers = end === -1 ? head : head.slice(0, end);
  const match = /^message-id:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)/im.exec(headers);
  if (!match?.[1]) return null;
  const id = oneLine(match[1].replace(/\r?\n/g, ' '), 200)
    .replace(/^<|>$/g, '')
    .trim();
  return id === '' ? null : id;
}

/** The 250 text for a kept message; the outcome helps whoever reads the sender's log. */
function acceptedText(result: Exclude<IngestResult, { status: 'error' }>): string {
  switch (result.status) {
    case 'stored':
      return `OK: report ${result.id} stored (${oneLine(result.org, 80)}, ${oneLine(result.domain, 80)})`;
    case 'duplicate':
      return `OK: duplicate of report ${result.id}, already stored`;
    case 'rejected':
      return oneLine(`OK: kept as rejected input: ${result.field ? `${result.field}: ` : ''}${result.reason}`);
  }
}

/** Creates the source; throws (zod) on an invalid config. Nothing listens until `start()`. */
export function createSmtpSource(config: SmtpSourceConfigInput, deps: SmtpSourceDeps = {}): SmtpSource {
  const cfg = smtpSourceConfigSchema.parse(config);
  const log = deps.logger ?? silent;
  const mailboxes = new Set<string>();
  const domains = new Set<string>();
  for (const r of cfg.recipients) {
    const lower = r.toLowerCase();
    if (lower.startsWith('@')) domains.add(lower.slice(1));
    else mailboxes.add(lower);
  }
  const name = `smtp:${cfg.host}:${cfg.port}`;

  let server: SMTPServer | null = null;
  let boundPort: number | null = null;
  let stopping = false;
  let stopped: Promise<void> | null = null;
  // Every message from the DATA command until its reply was handed to the
  // connection; stop() waits for this set to empty, so a delivery that
  // started is always answered and never cut off by the shutdown.
  const inFlight = new Set<Promise<void>>();
  // Open connections and this hour's deliveries per client address.
  const connections = new Map<string, number>();
  const delivered = new Map<string, number[]>();

  /** True when `address` may deliver one more message this hour (and counts it): in the shared store when there is one. */
  async function withinHourlyBudget(address: string, now = Date.now()): Promise<boolean> {
    if (deps.store) {
      const limit = { name: 'smtp-messages', limit: cfg.messages_per_hour_per_address, windowMs: 3_600_000 };
      return (await takeFromLimit(deps.store, limit, address, 1, new Date(now))).allowed;
    }
    const recent = (delivered.get(address) ?? []).filter((t) => t > now - 3_600_000);
    if (recent.length >= cfg.messages_per_hour_per_address) {
      delivered.set(address, recent);
      return false;
    }
    recent.push(now);
    delivered.set(address, recent);
    // Bounded: addresses with nothing in the last hour are forgotten.
    if (delivered.size > 10_000) for (const [a, times] of delivered) if (times.every((t) => t <= now - 3_600_000)) delivered.delete(a);
    return true;
  }

  function accepts(address: string): boolean {
    const lower = address.toLowerCase();
    if (mailboxes.has(lower)) return true;
    const at = lower.lastIndexOf('@');
    return at !== -1 && domains.has(lower.slice(at + 1));
  }

  /** Reads the message into one buffer of at most max_message_bytes; the rest is drained and counted, not kept. */
  function readCapped(stream: SMTPServerDataStream): Promise<{ bytes: Buffer | null; length: number }> {
    return new Promise((resolveRead, rejectRead) => {
      const chunks: Buffer[] = [];
      let length = 0;
      let over = false;
      stream.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (over) return;
        if (length > cfg.max_message_bytes) {
          // Past the cap nothing more is kept: memory stays bounded whatever the client sends.
          over = true;
          chunks.length = 0;
          return;
        }
        chunks.push(chunk);
      });
      stream.once('end', () => {
        const tooBig = over || stream.sizeExceeded;
        resolveRead({ bytes: tooBig ? null : Buffer.concat(chunks, length), length });
      });
      stream.once('error', rejectRead);
    });
  }

  async function handleData(
    deliver: Deliver,
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
  ): Promise<{ error: Error | null; text?: string }> {
    const queueId = `${session.id}.${session.transaction}`;
    const fields = {
      source: name,
      queue_id: queueId,
      remote: session.remoteAddress,
      from: oneLine(session.envelope.mailFrom ? session.envelope.mailFrom.address : '', 200),
      to: session.envelope.rcptTo.map((r) => oneLine(r.address, 200)),
    };
    let read: { bytes: Buffer | null; length: number };
    try {
      read = await readCapped(stream);
    } catch (e) {
      log.warn({ ...fields, err: errorMessage(e) }, 'smtp message could not be read');
      return { error: smtpError(451, '4.3.0 message could not be read, try again later') };
    }
    if (read.bytes === null) {
      log.warn({ ...fields, bytes: read.length, limit: cfg.max_message_bytes }, 'smtp message over the size limit refused');
      return { error: smtpError(552, `5.3.4 message exceeds fixed maximum message size ${cfg.max_message_bytes}`) };
    }
    const messageId = messageIdOf(read.bytes);
    const source = `smtp:${messageId ?? queueId}`;
    let result: IngestResult;
    try {
      const envelope = {
        ip: session.remoteAddress,
        ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}),
        ...(session.envelope.mailFrom ? { mailFrom: session.envelope.mailFrom.address } : {}),
      };
      result = await deliver({ bytes: read.bytes, provenance: { trusted: cfg.trusted, envelope } }, source);
    } catch (e) {
      result = { source, status: 'error', reason: errorMessage(e) };
    }
    const logged = { ...fields, message_id: messageId, bytes: read.length, status: result.status };
    if (result.status === 'error') {
      // The reason may name local paths or the store: it goes to our log, not to the sender.
      log.error({ ...logged, reason: result.reason }, 'smtp message not kept; sender told to retry');
      return { error: smtpError(451, '4.3.0 report could not be stored now, try again later') };
    }
    if (result.status === 'rejected') {
      log.warn({ ...logged, reason: result.reason, field: result.field, kept_at: result.kept_at }, 'smtp message kept as rejected input');
    } else {
      log.info({ ...logged, report: result.id, org: result.org, domain: result.domain }, `smtp report ${result.status}`);
    }
    return { error: null, text: acceptedText(result) };
  }

  return {
    kind: 'listen',
    name,
    get port() {
      return boundPort;
    },

    async start(deliver: Deliver): Promise<void> {
      if (server) throw new InternalError(`${name}: already started`);
      if (stopping) throw new InternalError(`${name}: stopped; create a new source to listen again`);
      // Read the key files up front, so a wrong path stops the daemon's start with its name instead of failing the first STARTTLS.
      let tls: { key: Buffer; cert: Buffer } | null = null;
      if (cfg.tls) {
        const [key, cert] = await Promise.all([
          readFile(cfg.tls.key_file).catch((e: Error) => {
            throw new AppError('config', `${name}: tls.key_file ${cfg.tls?.key_file}: ${e.message}`, { cause: e });
          }),
          readFile(cfg.tls.cert_file).catch((e: Error) => {
            throw new AppError('config', `${name}: tls.cert_file ${cfg.tls?.cert_file}: ${e.message}`, { cause: e });
          }),
        ]);
        tls = { key, cert };
      }
      const srv = new SMTPServer({
        secure: false,
        // smtp-server's own protocol log would duplicate ours and is not routed to the daemon's logger.
        logger: false,
        ...(cfg.banner !== undefined ? { banner: cfg.banner } : {}),
        size: cfg.max_message_bytes,
        maxClients: cfg.max_clients,
        // A receiver for report mail, like an MX: senders do not log in. AUTH
        // is switched off rather than left optional so no credential is ever
        // sent here; without a certificate STARTTLS is off too, instead of
        // smtp-server's built-in test certificate whose key is public.
        authOptional: true,
        disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
        ...(tls ? { key: tls.key, cert: tls.cert } : {}),
        socketTimeout: cfg.idle_timeout_seconds * 1000,
        closeTimeout: 5_000,
        onConnect(session, callback) {
          const open = (connections.get(session.remoteAddress) ?? 0) + 1;
          if (open > cfg.max_clients_per_address) {
            log.warn({ source: name, remote: session.remoteAddress, open: open - 1 }, 'smtp client over its connection limit refused');
            return callback(smtpError(421, `4.7.0 too many connections from your address (limit ${cfg.max_clients_per_address}), try again later`));
          }
          connections.set(session.remoteAddress, open);
          (session as SMTPServerSession & { counted?: boolean }).counted = true;
          callback();
        },
        onClose(session) {
          if (!(session as SMTPServerSession & { counted?: boolean }).counted) return;
          const open = (connections.get(session.remoteAddress) ?? 1) - 1;
          if (open <= 0) connections.delete(session.remoteAddress);
          else connections.set(session.remoteAddress, open);
        },
        onMailFrom(_address, session, callback) {
          // A new transaction after stop() began would be cut off; 421 makes the sender come back later.
          if (stopping) return callback(smtpError(421, '4.3.2 service shutting down, try again later'));
          withinHourlyBudget(session.remoteAddress).then(
            (within) => {
              if (within) return callback();
              log.warn({ source: name, remote: session.remoteAddress, limit: cfg.messages_per_hour_per_address }, 'smtp client over its hourly message budget');
              callback(smtpError(451, `4.7.1 more than ${cfg.messages_per_hour_per_address} messages from your address this hour, try again later`));
            },
            (e: unknown) => {
              // The store could not count it: the sender comes back later rather than pass an uncounted limit.
              log.error({ source: name, remote: session.remoteAddress, err: errorMessage(e) }, 'smtp hourly message budget could not be read');
              callback(smtpError(451, '4.3.0 local error, try again later'));
            },
          );
        },
        onRcptTo(address, session, callback) {
          if (!accepts(address.address)) {
            log.warn({ source: name, remote: session.remoteAddress, to: oneLine(address.address, 200) }, 'smtp recipient refused');
            return callback(smtpError(550, `5.1.1 <${oneLine(address.address, 200)}>: no such mailbox here; this server takes DMARC report mail for its own report addresses only`));
          }
          callback();
        },
        onData(stream, session, callback) {
          const done = handleData(deliver, stream, session).then(
            ({ error, text }) => (error ? callback(error) : callback(null, text)),
            (e: unknown) => {
              log.error({ source: name, err: errorMessage(e) }, 'smtp message handling failed');
              callback(smtpError(451, '4.3.0 local error, try again later'));
            },
          );
          const tracked = done.finally(() => inFlight.delete(tracked));
          inFlight.add(tracked);
        },
      });
      // Without an error listener a socket error would be thrown as an uncaught exception and take the daemon down.
      srv.on('error', (e) => log.warn({ source: name, err: e.message }, 'smtp connection error'));
      await new Promise<void>((resolveListen, rejectListen) => {
        const onError = (e: Error) => rejectListen(new Error(`${name}: cannot listen: ${e.message}`));
        srv.server.once('error', onError);
        srv.listen(cfg.port, cfg.host, () => {
          srv.server.off('error', onError);
          resolveListen();
        });
      });
      server = srv;
      boundPort = (srv.server.address() as AddressInfo).port;
      log.info({ source: name, host: cfg.host, port: boundPort, tls: Boolean(tls), recipients: cfg.recipients }, 'smtp report source listening');
    },

    stop(): Promise<void> {
      if (stopped) return stopped;
      stopping = true;
      const srv = server;
      if (!srv) {
        stopped = Promise.resolve();
        return stopped;
      }
      stopped = (async () => {
        // Stops accepting connections now; the callback comes once every connection is gone.
        const closed = new Promise<void>((resolveClose) => srv.close(() => resolveClose()));
        // Deliveries can still start on connections that were mid-transaction, so wait until none is left.
        while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
        // What is left is idle or between MAIL and DATA: 421 tells those senders to come back, nothing was taken from them.
        for (const connection of [...srv.connections]) {
          connection.send(421, '4.3.2 service shutting down, try again later');
          connection.close();
        }
        await closed;
        boundPort = null;
        log.info({ source: name }, 'smtp report source stopped');
      })();
      return stopped;
    },
  };
}
