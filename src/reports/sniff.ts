/**
 * Container detection by content, never by file name: the first bytes of a
 * stream say whether it is XML, gzip, zip, raw zlib or an RFC 5322 mail.
 */
export type ContentKind = 'xml' | 'gzip' | 'zip' | 'zlib' | 'eml' | 'empty' | 'unknown';

/** Bytes of a stream's head that sniff() wants to see (fewer is fine at end of input). */
export const SNIFF_BYTES = 512;

const MAIL_HEADER_NAMES = new Set([
  'received',
  'return-path',
  'delivered-to',
  'from',
  'to',
  'subject',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-disposition',
  'dkim-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
  'authentication-results',
  'reply-to',
  'sender',
  'x-original-to',
  'envelope-to',
  'x-received',
  'x-mailer',
  'thread-topic',
]);

export function sniff(head: Buffer): ContentKind {
  if (head.length === 0) return 'empty';
  const b0 = head[0]!;
  const b1 = head[1];
  if (b0 === 0x1f && b1 === 0x8b) return 'gzip';
  if (b0 === 0x50 && b1 === 0x4b && (head[2] === 0x03 || head[2] === 0x05) && (head[3] === 0x04 || head[3] === 0x06)) {
    return 'zip';
  }
  // zlib (RFC 1950): CM=8 (deflate), window <= 32K, header checksum.
  if (b1 !== undefined && (b0 & 0x0f) === 8 && b0 >> 4 <= 7 && ((b0 << 8) | b1) % 31 === 0) return 'zlib';
  // UTF-16 / UTF-8 BOMs: only XML is expected in a text stream here.
  if ((b0 === 0xfe && b1 === 0xff) || (b0 === 0xff && b1 === 0xfe)) return 'xml';
  let i = 0;
  if (b0 === 0xef && b1 === 0xbb && head[2] === 0xbf) i = 3;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  if (i >= head.length) return 'empty';
  if (head[i] === 0x3c /* < */) return 'xml';
  if (looksLikeMail(head.subarray(i))) return 'eml';
  return 'unknown';
}

/** A mail starts with header fields (`Name: value`), at least one of them a well-known one. */
function looksLikeMail(head: Buffer): boolean {
  const text = head.toString('latin1');
  const lines = text.split(/\r?\n/);
  let known = false;
  let fields = 0;
  for (const line of lines.slice(0, -1)) {
    if (line === '') break;
    if (/^[ \t]/.test(line)) {
      if (fields === 0) return false;
      continue;
    }
    const m = /^([!-9;-~]+):/.exec(line);
    if (!m) {
      // "From " mbox separator line is allowed as the very first line.
      if (fields === 0 && line.startsWith('From ')) continue;
      return false;
    }
    fields++;
    if (MAIL_HEADER_NAMES.has(m[1]!.toLowerCase())) known = true;
  }
  return fields > 0 && known;
}
