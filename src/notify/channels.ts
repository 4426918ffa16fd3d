/**
 * Delivering one message to one channel: an HTTP POST for the webhook, Slack
 * and Teams (the webhook signed with HMAC-SHA256 over timestamp and body),
 * a mail through nodemailer for SMTP. Every attempt carries the message's
 * idempotency key, so a receiver can drop a repeat after a crash between
 * sending and recording the delivery. A failure is thrown as DeliveryError
 * with a reason fit for the page (never a secret: URLs are not quoted).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import nodemailer from 'nodemailer';
import { AppError } from '../errors.js';
import type { ResolvedChannel } from './config.js';
import type { MessageContent } from './content.js';
import { mailParts, slackPayload, teamsPayload, webhookPayload, type MessageMeta } from './render.js';

export const SIGNATURE_HEADER = 'x-dmarc-rollout-signature';
export const TIMESTAMP_HEADER = 'x-dmarc-rollout-timestamp';
export const ID_HEADER = 'x-dmarc-rollout-id';

/**
 * A channel that did not take a message: the receiver is `unavailable`. No
 * `cause`: the library's error can quote a webhook URL, which is a secret.
 */
export class DeliveryError extends AppError {
  override name = 'DeliveryError';
  constructor(
    message: string,
    /** The receiver asked to wait this long (HTTP 429/503 Retry-After). */
    readonly retryAfterMs: number | null = null,
  ) {
    super('unavailable', message);
  }
}

/** `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: what the webhook receiver recomputes. */
export function signature(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a receiver does (and the README shows): recompute the signature over
 * the raw body, compare in constant time, refuse a timestamp older than
 * `toleranceSeconds` (a replayed request).
 */
export function verifySignature(opts: { secret: string; timestamp: string | undefined; signature: string | undefined; body: string; now: Date; toleranceSeconds?: number }): boolean {
  if (!opts.timestamp || !opts.signature || !/^\d{1,12}$/.test(opts.timestamp)) return false;
  if (Math.abs(opts.now.getTime() / 1000 - Number(opts.timestamp)) > (opts.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signature(opts.secret, opts.timestamp, opts.body));
  const given = Buffer.from(opts.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface DeliverOptions {
  now: Date;
  timeoutMs: number;
}

export async function deliver(channel: ResolvedChannel, content: MessageContent, meta: MessageMeta, opts: DeliverOptions): Promise<void> {
  if (channel.type === 'smtp') return sendMail(channel, content, meta, opts);
  const body = JSON.stringify(
    channel.type === 'webhook' ? webhookPayload(content, meta) : channel.type === 'slack' ? slackPayload(content, meta) : teamsPayload(content, meta),
  );
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'user-agent': 'dmarc-rollout',
    [ID_HEADER]: meta.key,
    'idempotency-key': meta.key,
  };
  if (channel.type === 'webhook') {
    const timestamp = String(Math.floor(opts.now.getTime() / 1000));
    headers[TIMESTAMP_HEADER] = timestamp;
    headers[SIGNATURE_HEADER] = signature(channel.secret, timestamp, body);
  }
  await post(channel, body, headers, opts);
}

async function post(channel: Extract<ResolvedChannel, { url: string }>, body: string, headers: Record<string, string>, opts: DeliverOptions): Promise<void> {
  const { timeoutMs } = opts;
  const where = `${channel.type} channel ${channel.name} (${hostOf(channel.url)})`;
  let response: Response;
  try {
    // No redirects: a POST must not be replayed to another host the URL did not name.
    response = await fetch(channel.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new DeliveryError(`${where}: ${reason}`);
  }
  const text = (await response.text().catch(() => '')).slice(0, 300).replace(/\s+/g, ' ').trim();
  if (response.status >= 200 && response.status < 300) {
    // Slack answers 200 with a body of "ok"; anything else in a 200 is still accepted by Slack's own clients.
    return;
  }
  const retryAfter = retryAfterMs(response.headers.get('retry-after'), opts.now);
  throw new DeliveryError(`${where}: HTTP ${response.status}${text ? `: ${text}` : ''}`, retryAfter);
}

async function sendMail(channel: Extract<ResolvedChannel, { type: 'smtp' }>, content: MessageContent, meta: MessageMeta, opts: DeliverOptions): Promise<void> {
  const transport = smtpTransport(channel, opts.timeoutMs);
  const parts = mailParts(content, meta);
  try {
    await transport.sendMail({
      from: channel.from,
      to: channel.to,
      subject: parts.subject,
      text: parts.text,
      html: parts.html,
      // The same Message-ID on every attempt: mail clients show a repeat once.
      messageId: `<${meta.key}@dmarc-rollout>`,
      date: new Date(meta.createdAt),
      headers: { 'X-Dmarc-Rollout-Id': meta.key, 'Auto-Submitted': 'auto-generated' },
    });
  } catch (error) {
    throw new DeliveryError(`smtp channel ${channel.name} (${channel.host}:${channel.port}): ${smtpErrorText(error)}`);
  } finally {
    transport.close();
  }
}

/** The server's answer (`535 5.7.8 Authentication failed`) or the socket's error (`connect ECONNREFUSED 127.0.0.1:9`). */
/** The nodemailer transport for an SMTP channel: its TLS mode, sign-in and one timeout for every stage. Delivery and doctor share it. */
export function smtpTransport(channel: Extract<ResolvedChannel, { type: 'smtp' }>, timeoutMs: number) {
  return nodemailer.createTransport({
    host: channel.host,
    port: channel.port,
    secure: channel.security === 'tls',
    requireTLS: channel.security === 'starttls',
    ignoreTLS: channel.security === 'none',
    ...(channel.auth ? { auth: channel.auth } : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
}

export function smtpErrorText(error: unknown): string {
  const e = error as { code?: string; responseCode?: number; response?: string; message?: string };
  if (e.responseCode) return `${e.responseCode} ${e.response ?? ''}`.trim();
  return e.message ?? e.code ?? String(error);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'bad URL';
  }
}

function retryAfterMs(header: string | null, now: Date): number | null {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now.getTime());
}
