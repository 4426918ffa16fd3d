/**
 * How much record DNS can carry. A TXT record is a series of character
 * strings of at most 255 octets, each preceded by a length octet; the RDATA is
 * their sum. Two limits matter:
 *
 * - Hard: the answer must fit in one DNS message, and a DNS message over TCP
 *   is at most 65535 octets. Besides the RDATA it holds the 12-octet header,
 *   the question (the name, up to 255 octets, plus 4 for type and class) and
 *   the answer's 12 octets of framing (a compressed owner name, type, class,
 *   TTL, RDLENGTH). That leaves 65535 - 12 - 259 - 12 = 65252 octets of RDATA
 *   for a name of any length. A longer record cannot be served: an error.
 *
 * - Soft: 1232 octets is the EDNS buffer size that DNS Flag Day 2020 made the
 *   default because it avoids IP fragmentation. Take away the same header,
 *   question and framing and the 11-octet OPT record: 1232 - 294 = 938
 *   octets of RDATA. Above that, a receiver gets a truncated UDP answer and
 *   must retry over TCP; some never do and treat the domain as having no
 *   policy. That is a warning: the record works for most receivers, but a
 *   shorter one (fewer report URIs) works for all.
 *
 * The limits are computed for the longest possible name so that the verdict
 * does not depend on which domain the record is published at.
 */
import { error, warning, type RecordProblem } from './problem.js';

/** Octets in one TXT character-string, the length octet excluded. */
export const TXT_STRING_MAX_OCTETS = 255;

/** Largest RDATA that fits in a 65535-octet DNS message for any owner name. */
export const RECORD_MAX_RDATA_OCTETS = 65535 - 12 - (255 + 4) - 12;

/** Largest RDATA that fits in a 1232-octet EDNS UDP answer for any owner name. */
export const RECORD_UDP_SAFE_RDATA_OCTETS = 1232 - 12 - (255 + 4) - 12 - 11;

/** Octets of TXT RDATA that `record` occupies once split into 255-octet strings. */
export function txtRdataOctets(record: string): number {
  const octets = Buffer.byteLength(record, 'utf8');
  const strings = Math.max(1, Math.ceil(octets / TXT_STRING_MAX_OCTETS));
  return octets + strings;
}

/** The size problem of `record`, if any. */
export function lengthProblems(record: string): RecordProblem[] {
  const rdata = txtRdataOctets(record);
  if (rdata > RECORD_MAX_RDATA_OCTETS) {
    return [
      error(
        'too-long',
        null,
        `the record needs ${rdata} octets of TXT data; a DNS answer cannot carry more than ${RECORD_MAX_RDATA_OCTETS}`,
      ),
    ];
  }
  if (rdata > RECORD_UDP_SAFE_RDATA_OCTETS) {
    return [
      warning(
        'long-for-udp',
        null,
        `the record needs ${rdata} octets of TXT data, more than the ${RECORD_UDP_SAFE_RDATA_OCTETS} that fit in a 1232-octet UDP answer; receivers must retry over TCP and some will not`,
      ),
    ];
  }
  return [];
}
