/**
 * The adapters' side of TXT quoting: a whole record goes out as 255-octet
 * character-strings in presentation format, and comes back joined. The
 * splitting and escaping themselves live in src/record, one copy for the
 * whole program.
 */
import { joinTxtStrings, quoteTxt, splitTxtStrings, unquoteTxt } from '../../src/record/index.js';

/** A whole record as quoted 255-octet strings: `"v=DMARC1; ..." "..."`. */
export function toPresentation(record: string): string {
  return quoteTxt(splitTxtStrings(record));
}

/** A record as an API shows it (quoted strings, or bare text) back to the whole record. */
export function fromPresentation(value: string): string {
  return joinTxtStrings(unquoteTxt(value));
}
