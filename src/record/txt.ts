/**
 * A record as DNS and DNS providers hold it: a TXT record is a series of
 * character-strings of at most 255 octets that receivers join back into one
 * record, and providers' APIs and zone files show those strings in RFC 1035
 * presentation format (`"part one" "part two"`). Comparing what a provider
 * returns with what we wrote only works after joining and unquoting, or
 * every run sees a spurious change.
 */
import { AppError } from '../errors.js';
import { TXT_STRING_MAX_OCTETS } from './length.js';

/**
 * Splits `record` into character-strings of at most 255 UTF-8 octets each,
 * never inside a character. An empty record is one empty string, since a
 * TXT record holds at least one.
 */
export function splitTxtStrings(record: string): string[] {
  const parts: string[] = [];
  let current = '';
  let octets = 0;
  // for..of walks code points, so a surrogate pair is never cut in two.
  for (const char of record) {
    const size = Buffer.byteLength(char, 'utf8');
    if (octets + size > TXT_STRING_MAX_OCTETS) {
      parts.push(current);
      current = '';
      octets = 0;
    }
    current += char;
    octets += size;
  }
  parts.push(current);
  return parts;
}

/** Joins character-strings back into the record, with nothing between them, as receivers do. */
export function joinTxtStrings(parts: readonly string[]): string {
  return parts.join('');
}

/** Presentation format: each string in double quotes, `"` and `\` escaped, separated by one space. */
export function quoteTxt(parts: readonly string[]): string {
  return parts.map((part) => `"${part.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(' ');
}

/**
 * Reads presentation format back into its strings. Input that begins with a
 * double quote is a series of character-strings, quoted or bare, separated
 * by whitespace, with `\"`, `\\`, `\X` and `\DDD` (a decimal octet) escapes.
 * Input that does not is taken as one string, verbatim: providers that show
 * the record unquoted show it whole, spaces and all.
 * @throws AppError invalid on an unterminated quote or an escape that is cut off or out of range.
 */
export function unquoteTxt(presentation: string): string[] {
  const text = presentation.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
  if (!text.startsWith('"')) return [presentation];
  const parts: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /[ \t\r\n]/.test(text[i]!)) i += 1;
    if (i >= text.length) break;
    const quoted = text[i] === '"';
    if (quoted) i += 1;
    const bytes: number[] = [];
    let closed = !quoted;
    while (i < text.length) {
      const c = text[i]!;
      if (quoted && c === '"') {
        closed = true;
        i += 1;
        break;
      }
      if (!quoted && /[ \t\r\n"]/.test(c)) break;
      if (c === '\\') {
        const digits = /^[0-9]{3}/.exec(text.slice(i + 1, i + 4));
        if (digits) {
          const octet = Number(digits[0]);
          if (octet > 255) throw new AppError('invalid', `invalid escape \\${digits[0]} at offset ${i}: octets go up to 255`);
          bytes.push(octet);
          i += 4;
          continue;
        }
        const next = text.codePointAt(i + 1);
        if (next === undefined) throw new AppError('invalid', `escape at offset ${i} is cut off by the end of the input`);
        bytes.push(...Buffer.from(String.fromCodePoint(next), 'utf8'));
        i += next > 0xffff ? 3 : 2;
        continue;
      }
      const point = text.codePointAt(i)!;
      bytes.push(...Buffer.from(String.fromCodePoint(point), 'utf8'));
      i += point > 0xffff ? 2 : 1;
    }
    if (!closed) throw new AppError('invalid', 'unterminated quoted string: a closing double quote is missing');
    parts.push(Buffer.from(bytes).toString('utf8'));
  }
  return parts;
}
