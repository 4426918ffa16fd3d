/**
 * The SMTP report source against real parts: the listener on a loopback port,
 * the real SQLite store and ingest as `deliver`, and nodemailer as the
 * sending MTA. Checks what the sender is told (250, 451, 550, 552, 421) and
 * what the store holds afterwards: corpus report mails stored once, a
 * repeat a duplicate, failure (ruf) reports kept as rejected, refused mail
 * never stored, a failed delivery answered 451 and kept on retry, and
 * stop() waiting for a delivery in flight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { createSmtpSource, messageIdOf, smtpSourceConfigSchema, type SmtpSource, type SmtpSourceConfigInput } from '../src/daemon/sources/smtp.js';
import type { Deliver } from '../src/daemon/sources/types.js';
import { FAILURE_REPORT_REASON, ingestInput, type IngestResult } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { REPO_ROOT, tempStore } from './helpers/cli.js';
import { CORPUS_DIR } from './helpers/corpus.js';

const CORPUS = CORPUS_DIR;
const AGGREGATE = join(CORPUS, 'aggregate/parsedmarc');
const FORENSIC = join(CORPUS, 'forensic/parsedmarc');
const REPORT_MAILS = readdirSync(AGGREGATE)
  .filter((f) => f.endsWith('.eml'))
  .sort()
  .map((f) => join(AGGREGATE, f));
const RUF_MAILS = readdirSync(FORENSIC)
  .sort()
  .map((f) => join(FORENSIC, f));
const RUA = 'dmarc-rua@reports.example.org';

interface Harness {
  source: SmtpSource;
  store: Store;
  dir: string;
  port: number;
  /** Every call the source made to deliver, with what it returned. */
  calls: Array<{ source: string; result: IngestResult | 'threw' }>;
  close(): Promise<void>;
}

/** Starts the source on a free loopback port with a fresh store; `wrap` may stand between the source and the real ingest. */
async function harness(
  config: Partial<SmtpSourceConfigInput> = {},
  wrap?: (call: number, input: Parameters<Deliver>[0], name: string, real: Deliver) => ReturnType<Deliver>,
): Promise<Harness> {
  const { dir, db } = tempStore('dmarc-rollout-smtp-');
  const store = await openSqliteStore(db);
  const calls: Harness['calls'] = [];
  const real: Deliver = (input, name) => ingestInput(store.db, input, name, { rejectedDir: join(dir, 'rejected') });
  const deliver: Deliver = async (input, name) => {
    const n = calls.length;
    const entry: Harness['calls'][number] = { source: name, result: 'threw' };
    calls.push(entry);
    entry.result = await (wrap ? wrap(n, input, name, real) : real(input, name));
    return entry.result;
  };
  // Trusted: the mechanics of the listener, on corpus mails no local DNS can verify (provenance has its own tests).
  const source = createSmtpSource({ type: 'smtp', port: 0, recipients: [RUA], trusted: true, ...config });
  await source.start(deliver);
  assert.ok(source.port !== null && source.port > 0, 'the bound port is exposed');
  return {
    source,
    store,
    dir,
    port: source.port,
    calls,
    async close() {
      await source.stop();
      await store.close();
    },
  };
}

interface Sent {
  ok: boolean;
  code: number | undefined;
  response: string;
  rejected: string[];
}

/** Sends raw message bytes over loopback the way an MTA would, and reports the server's answer instead of throwing. */
async function send(port: number, raw: Buffer | string, to: string | string[] = RUA, extra: { requireTLS?: boolean } = {}): Promise<Sent> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ...(extra.requireTLS ? { requireTLS: true, tls: { rejectUnauthorized: false } } : { ignoreTLS: true }),
  });
  try {
    const info = await transport.sendMail({ envelope: { from: 'noreply-dmarc@reporter.example', to: ([] as string[]).concat(to).join(',') }, raw });
    return { ok: true, code: 250, response: String(info.response), rejected: (info.rejected ?? []).map(String) };
  } catch (e) {
    const err = e as { responseCode?: number; response?: string; message: string };
    return { ok: false, code: err.responseCode, response: err.response ?? err.message, rejected: [] };
  } finally {
    transport.close();
  }
}

/** A plain SMTP dialogue over a socket, for what nodemailer will not send: the greeting, then one reply per command. */
async function smtpDialogue(port: number, commands: string[]): Promise<string[]> {
  const socket = connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  const replies: string[] = [];
  let buffer = '';
  let waiting: (() => void) | null = null;
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    // A reply is complete at a line whose code is followed by a space (not a dash).
    const m = /(?:^|\r\n)\d{3} [^\r\n]*\r\n/.exec(buffer);
    if (m) {
      replies.push(buffer.slice(0, m.index + m[0].length));
      buffer = buffer.slice(m.index + m[0].length);
      waiting?.();
    }
  });
  const next = (n: number) =>
    new Promise<void>((ok, fail) => {
      if (replies.length >= n) return ok();
      const timer = setTimeout(() => fail(new Error(`no reply ${n}; got ${JSON.stringify(replies)}`)), 5000);
      waiting = () => {
        if (replies.length >= n) {
          clearTimeout(timer);
          ok();
        }
      };
    });
  try {
    await next(1);
    for (const [i, command] of commands.entries()) {
      socket.write(`${command}\r\n`);
      await next(i + 2);
    }
    return replies;
  } finally {
    socket.destroy();
  }
}

async function count(store: Store, table: 'reports' | 'rejected_inputs'): Promise<number> {
  const row = await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

test('config: defaults, recipients as addresses or @domain, unknown fields and bad values refused', () => {
  const cfg = smtpSourceConfigSchema.parse({ type: 'smtp', recipients: ['rua@example.com', '@Reports.Example.org'] });
  assert.equal(cfg.host, '127.0.0.1');
  assert.equal(cfg.port, 2525);
  assert.equal(cfg.max_message_bytes, 25 * 1024 * 1024);
  assert.equal(cfg.max_clients, 20);
  assert.equal(cfg.tls, undefined);
  assert.throws(() => smtpSourceConfigSchema.parse({ type: 'smtp', recipients: [] }), /at least one recipient/);
  assert.throws(() => smtpSourceConfigSchema.parse({ type: 'smtp', recipients: ['not-an-address'] }), /whole domain/);
  assert.throws(() => smtpSourceConfigSchema.parse({ type: 'smtp', recipients: ['a@b'], auth: true }), /auth/);
  assert.throws(() => smtpSourceConfigSchema.parse({ type: 'smtp', recipients: ['a@b'], tls: { key_file: 'k' } }), /cert_file/);
  assert.throws(() => smtpSourceConfigSchema.parse({ type: 'smtp', recipients: ['a@b'], port: 70000 }));
});

test('messageIdOf reads the header only, folded or not, without brackets', () => {
  assert.equal(messageIdOf(Buffer.from('Subject: x\r\nMessage-ID: <abc@host>\r\n\r\nbody')), 'abc@host');
  assert.equal(messageIdOf(Buffer.from('message-id:\r\n <folded@host>\r\nTo: a\r\n\r\nbody')), 'folded@host');
  assert.equal(messageIdOf(Buffer.from('Subject: x\n\nMessage-ID: <in-body@host>\n')), null);
});

test('each corpus report mail is stored exactly once; sending it again is a duplicate, still 250', async () => {
  assert.ok(REPORT_MAILS.length >= 3, `report mails in ${AGGREGATE}`);
  const h = await harness();
  try {
    for (const file of REPORT_MAILS) {
      const sent = await send(h.port, readFileSync(file));
      assert.equal(sent.code, 250, `${file}: ${sent.response}`);
      assert.match(sent.response, /report \d+ stored/);
    }
    assert.equal(await count(h.store, 'reports'), REPORT_MAILS.length);
    const stored = await h.store.db.selectFrom('reports').select(['report_id', 'source', 'container']).orderBy('id').execute();
    assert.deepEqual(
      stored.map((r) => r.report_id).sort(),
      ['1627703331531660819', '157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e', '949348866075514174'].sort(),
    );
    for (const r of stored) {
      assert.match(r.source, /^smtp:\S+/);
      assert.match(r.container ?? '', /^eml\+/);
    }
    // The source names the mail by its Message-ID, so the store says which mail a report came from.
    const first = readFileSync(REPORT_MAILS[0]!);
    assert.equal(h.calls[0]?.source, `smtp:${messageIdOf(first)}`);

    const again = await send(h.port, first);
    assert.equal(again.code, 250, again.response);
    assert.match(again.response, /duplicate of report \d+/);
    assert.equal(await count(h.store, 'reports'), REPORT_MAILS.length);
    const dup = await h.store.db.selectFrom('reports').select(['duplicates']).where('source', '=', `smtp:${messageIdOf(first)}`).executeTakeFirstOrThrow();
    assert.equal(dup.duplicates, 1);
    assert.equal(h.calls.at(-1)?.result !== 'threw' && (h.calls.at(-1)?.result as IngestResult).status, 'duplicate');
  } finally {
    await h.close();
  }
});

test('a failure (ruf) report mail is accepted (250) and kept as rejected with the ruf reason', async () => {
  assert.ok(RUF_MAILS.length >= 1);
  const h = await harness();
  try {
    for (const file of RUF_MAILS) {
      const sent = await send(h.port, readFileSync(file));
      assert.equal(sent.code, 250, `${file}: ${sent.response}`);
      assert.ok(sent.response.includes(FAILURE_REPORT_REASON), sent.response);
    }
    assert.equal(await count(h.store, 'reports'), 0);
    const results = h.calls.map((c) => c.result);
    assert.equal(results.length, RUF_MAILS.length);
    const hashes = new Set<string>();
    for (const r of results) {
      assert.ok(r !== 'threw' && r.status === 'rejected', JSON.stringify(r));
      assert.equal(r.reason, FAILURE_REPORT_REASON);
      hashes.add(r.content_hash);
    }
    // The LF and CRLF copies of one mail travel as the same CRLF bytes over SMTP, so they are one kept input.
    const rejected = await h.store.db.selectFrom('rejected_inputs').selectAll().execute();
    assert.equal(rejected.length, hashes.size);
    assert.ok(rejected.length >= RUF_MAILS.length - 1);
    for (const r of rejected) {
      assert.equal(r.reason, FAILURE_REPORT_REASON);
      assert.match(r.source, /^smtp:/);
      assert.ok(r.kept_at && existsSync(r.kept_at), `kept at ${r.kept_at}`);
    }
  } finally {
    await h.close();
  }
});

test('recipients: an unlisted one gets 550 and nothing is stored; @domain and case-insensitive matches are accepted', async () => {
  const h = await harness({ recipients: [RUA, '@Whole.Example.NET'] });
  try {
    const mail = readFileSync(REPORT_MAILS[0]!);
    const refused = await send(h.port, mail, 'postmaster@reports.example.org');
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 550, refused.response);
    assert.match(refused.response, /no such mailbox here/);
    const sub = await send(h.port, mail, 'rua@sub.whole.example.net');
    assert.equal(sub.code, 550, 'a whole domain means that domain, not its subdomains');
    assert.equal(h.calls.length, 0, 'deliver never called for refused mail');
    assert.equal(await count(h.store, 'reports'), 0);
    assert.equal(await count(h.store, 'rejected_inputs'), 0);

    const upper = await send(h.port, mail, RUA.toUpperCase());
    assert.equal(upper.code, 250, upper.response);
    const domain = await send(h.port, readFileSync(REPORT_MAILS[1]!), 'Anything@whole.example.net');
    assert.equal(domain.code, 250, domain.response);
    // One listed and one unlisted recipient: the message is taken once, for the listed one.
    const mixed = await send(h.port, readFileSync(REPORT_MAILS[2]!), [RUA, 'stranger@elsewhere.example']);
    assert.equal(mixed.code, 250, mixed.response);
    assert.deepEqual(mixed.rejected, ['stranger@elsewhere.example']);
    assert.equal(h.calls.length, 3);
    assert.equal(await count(h.store, 'reports'), 3);
  } finally {
    await h.close();
  }
});

test('size: a message over max_message_bytes gets 552 (data counted, or SIZE declared) and nothing is stored', async () => {
  const big = REPORT_MAILS.map((f) => readFileSync(f)).sort((a, b) => b.length - a.length)[0]!;
  const small = REPORT_MAILS.map((f) => readFileSync(f)).sort((a, b) => a.length - b.length)[0]!;
  const limit = Math.floor((big.length + small.length) / 2);
  assert.ok(small.length * 1.1 < limit && big.length > limit, 'the corpus gives one mail under and one over the limit');
  const h = await harness({ max_message_bytes: limit });
  try {
    // nodemailer declares no SIZE for a raw message: the server counts the data stream.
    const counted = await send(h.port, big);
    assert.equal(counted.code, 552, counted.response);
    assert.match(counted.response, new RegExp(`maximum message size ${limit}`));

    // nodemailer itself checks the advertised SIZE and gives up before MAIL FROM:
    // the server told it the limit, so a careful sender never even tries.
    const conn = new SMTPConnection({ host: '127.0.0.1', port: h.port, secure: false, ignoreTLS: true });
    await new Promise<void>((ok, fail) => {
      conn.once('error', fail);
      conn.connect(() => ok());
    });
    const declared = await new Promise<string>((done) => {
      conn.send({ from: 'noreply-dmarc@reporter.example', to: RUA, size: big.length }, big, (err) => done(err ? err.message : 'sent'));
    });
    conn.quit();
    assert.match(declared, new RegExp(`larger than allowed ${limit}`));

    // A sender that declares SIZE on MAIL FROM anyway is refused by the server before any data.
    const dialogue = await smtpDialogue(h.port, ['EHLO reporter.example', `MAIL FROM:<noreply-dmarc@reporter.example> SIZE=${big.length}`, 'QUIT']);
    assert.match(dialogue[1] ?? '', new RegExp(`^250-.*\\r\\n.*250[- ]SIZE ${limit}`, 's'), 'EHLO advertises the limit');
    assert.match(dialogue[2] ?? '', /^552 /);

    assert.equal(h.calls.length, 0, 'deliver never called for an oversized message');
    assert.equal(await count(h.store, 'reports'), 0);
    assert.equal(await count(h.store, 'rejected_inputs'), 0);
    const fits = await send(h.port, small);
    assert.equal(fits.code, 250, `a message under the limit still passes: ${fits.response}`);
    assert.equal(await count(h.store, 'reports'), 1);
  } finally {
    await h.close();
  }
});

test('a delivery that fails (error result, or deliver throws) gets 451 and nothing is lost: the retry is stored', async () => {
  const h = await harness({}, async (call, input, name, real) => {
    if (call === 0) return { source: name, status: 'error', reason: 'database is locked' };
    if (call === 1) throw new Error('disk full');
    return real(input, name);
  });
  try {
    const mail = readFileSync(REPORT_MAILS[0]!);
    const first = await send(h.port, mail);
    assert.equal(first.ok, false);
    assert.equal(first.code, 451, first.response);
    assert.doesNotMatch(first.response, /database is locked/, 'the local reason stays in our log');
    const second = await send(h.port, mail);
    assert.equal(second.code, 451, second.response);
    assert.equal(await count(h.store, 'reports'), 0);
    // The sending MTA keeps a 4xx message and retries it: the retry lands.
    const third = await send(h.port, mail);
    assert.equal(third.code, 250, third.response);
    assert.equal(await count(h.store, 'reports'), 1);
    assert.equal(h.calls.length, 3);
  } finally {
    await h.close();
  }
});

test('stop() while a delivery is in flight waits for it; the message is answered 250 and stored; then nothing listens', async () => {
  let entered!: () => void;
  const inDeliver = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const h = await harness({}, async (_call, input, name, real) => {
    entered();
    await gate;
    return real(input, name);
  });
  try {
    const sending = send(h.port, readFileSync(REPORT_MAILS[0]!));
    await inDeliver;
    let stopDone = false;
    const stopping = h.source.stop().then(() => {
      stopDone = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(stopDone, false, 'stop() must not resolve while a delivery is in flight');
    // New connections are refused once stop() began.
    await assert.rejects(
      new Promise<Socket>((ok, fail) => {
        const s = connect(h.port, '127.0.0.1', () => ok(s));
        s.once('error', fail);
      }),
      /ECONNREFUSED/,
    );
    release();
    await stopping;
    const sent = await sending;
    assert.equal(sent.code, 250, sent.response);
    assert.equal(await count(h.store, 'reports'), 1);
    assert.equal(h.source.port, null);
  } finally {
    release();
    await h.close();
  }
});

test('max_clients: a connection over the limit is told 421 (try later); once a slot frees, mail goes through', async () => {
  const h = await harness({ max_clients: 1 });
  const idle = await new Promise<Socket>((ok, fail) => {
    const s = connect(h.port, '127.0.0.1');
    s.once('data', () => ok(s));
    s.once('error', fail);
  });
  try {
    const refused = await send(h.port, readFileSync(REPORT_MAILS[0]!));
    assert.equal(refused.ok, false);
    assert.match(refused.response, /421|Too many connected clients/);
    idle.end('QUIT\r\n');
    await new Promise((r) => idle.once('close', r));
    const sent = await send(h.port, readFileSync(REPORT_MAILS[0]!));
    assert.equal(sent.code, 250, sent.response);
    assert.equal(await count(h.store, 'reports'), 1);
  } finally {
    idle.destroy();
    await h.close();
  }
});

test('tls: STARTTLS is offered with a key and certificate, and not at all without them', async () => {
  const plain = await harness();
  try {
    const noTls = await send(plain.port, readFileSync(REPORT_MAILS[0]!), RUA, { requireTLS: true });
    assert.equal(noTls.ok, false, 'no STARTTLS (nor the built-in test certificate) without a configured one');
    assert.equal(plain.calls.length, 0);
  } finally {
    await plain.close();
  }
  const { dir } = tempStore('dmarc-rollout-smtp-tls-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const secure = await harness({ tls: { key_file: key, cert_file: cert } });
  try {
    const sent = await send(secure.port, readFileSync(REPORT_MAILS[0]!), RUA, { requireTLS: true });
    assert.equal(sent.code, 250, sent.response);
    assert.equal(await count(secure.store, 'reports'), 1);
  } finally {
    await secure.close();
  }
  await assert.rejects(
    createSmtpSource({ type: 'smtp', port: 0, recipients: [RUA], tls: { key_file: join(dir, 'missing.pem'), cert_file: cert } }).start(async (_i, s) => ({ source: s, status: 'error', reason: 'unused' })),
    /tls\.key_file .*missing\.pem/,
  );
});
