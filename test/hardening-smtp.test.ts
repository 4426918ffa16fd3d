/**
 * The SMTP listener under a hostile client, on a real socket: idle
 * connections used to hold every slot and lock real senders out. Now one
 * address holds a few connections at most, an idle one is closed, and one
 * address delivers a bounded number of messages per hour.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { createSmtpSource, type SmtpSource } from '../src/daemon/sources/smtp.js';
import type { Deliver } from '../src/daemon/sources/types.js';

const deliver: Deliver = async (_input, source) => ({ source, status: 'duplicate', id: 1, org: 'x', report_id: 'x', domain: 'x' });

/** A raw SMTP client: the greeting, then one line per command. */
async function client(port: number): Promise<{ socket: Socket; greeting: string; say(line: string): Promise<string>; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  let buffer = '';
  const waiters: Array<(line: string) => void> = [];
  socket.on('data', (d) => {
    buffer += d.toString();
    let i: number;
    while ((i = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      // Multi-line replies (250-...) end with the line whose code is followed by a space.
      if (/^\d{3} /.test(line)) waiters.shift()?.(line);
    }
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const next = () => new Promise<string>((resolve) => waiters.push(resolve));
  const greeting = await next();
  return {
    socket,
    greeting,
    closed,
    say: (line) => {
      const reply = next();
      socket.write(`${line}\r\n`);
      return reply;
    },
  };
}

describe('the SMTP listener and a hostile client', () => {
  let source: SmtpSource;
  after(async () => source?.stop());

  it('limits connections per address, closes idle ones, and bounds messages per address per hour', async () => {
    source = createSmtpSource({ type: 'smtp', port: 0, recipients: ['dmarc@example.com'], max_clients_per_address: 2, idle_timeout_seconds: 1, messages_per_hour_per_address: 2 });
    await source.start(deliver);
    const port = source.port!;
    const a = await client(port);
    const b = await client(port);
    assert.match(a.greeting, /^220 /);
    assert.match(b.greeting, /^220 /);
    const c = await client(port);
    assert.match(c.greeting, /^421 .*too many connections from your address \(limit 2\)/);
    // The idle ones are closed by the listener, and their slots come back.
    await Promise.all([a.closed, b.closed]);
    const d = await client(port);
    assert.match(d.greeting, /^220 /);
    assert.match(await d.say('EHLO client.example'), /^250 /);
    for (let i = 0; i < 2; i++) {
      assert.match(await d.say('MAIL FROM:<r@reporter.example>'), /^250 /);
      assert.match(await d.say('RSET'), /^250 /);
    }
    assert.match(await d.say('MAIL FROM:<r@reporter.example>'), /^451 4\.7\.1 more than 2 messages from your address this hour/);
    d.socket.destroy();
  });
});
