/**
 * TXT values in Route 53's own presentation form, which differs from RFC
 * 1035's: Route 53 writes an escaped byte as a three-digit OCTAL code
 * (`\011` is a tab), where zone files mean decimal. Route 53's documentation
 * asks for `\"` and `\\` inside a quoted string and an octal escape for every
 * byte outside printable ASCII, and it answers in that form too: a tab comes
 * back as `\011`, `é` as `\303\251`. So this adapter writes each
 * 255-octet string that way and reads both escapes back to the same bytes.
 */
import { splitTxtStrings } from '../../src/record/index.js';
import { ProviderError } from '../shared/errors.js';

/** One character-string (its UTF-8 bytes) quoted as Route 53 documents it. */
function quoteString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** A whole record as Route 53's TXT value: quoted 255-octet strings, octal escapes. */
export function toRoute53Txt(record: string): string {
  return splitTxtStrings(record).map(quoteString).join(' ');
}

/**
 * A TXT value as Route 53 returns it, back to the whole record: quoted
 * strings joined, `\ooo` read as an octal byte, `\X` as X. A value that is
 * not quoted (another tool wrote it bare) is the record itself.
 * @throws ProviderError conflict (the name holds what the adapter cannot read) on an unterminated string or a cut-off escape.
 */
export function fromRoute53Txt(value: string): string {
  const text = value.trim();
  if (!text.startsWith('"')) return value;
  const bytes: number[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i += 1;
    if (i >= text.length) break;
    if (text[i] !== '"') throw new ProviderError('route53', 'conflict', `TXT value: text outside quotes at offset ${i}`);
    i += 1;
    let closed = false;
    while (i < text.length) {
      const c = text[i]!;
      if (c === '"') {
        closed = true;
        i += 1;
        break;
      }
      if (c === '\\') {
        const octal = /^[0-7]{3}/.exec(text.slice(i + 1, i + 4));
        if (octal) {
          bytes.push(parseInt(octal[0], 8) & 0xff);
          i += 4;
          continue;
        }
        const next = text.codePointAt(i + 1);
        if (next === undefined) throw new ProviderError('route53', 'conflict', `TXT value: escape cut off at offset ${i}`);
        bytes.push(...Buffer.from(String.fromCodePoint(next), 'utf8'));
        i += next > 0xffff ? 3 : 2;
        continue;
      }
      const point = text.codePointAt(i)!;
      bytes.push(...Buffer.from(String.fromCodePoint(point), 'utf8'));
      i += point > 0xffff ? 2 : 1;
    }
    if (!closed) throw new ProviderError('route53', 'conflict', 'TXT value: a closing double quote is missing');
  }
  return Buffer.from(bytes).toString('utf8');
}
