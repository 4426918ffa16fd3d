/**
 * Real DNS lookups of a TXT record set: what receivers will actually see,
 * as opposed to what a provider's API says. Used to verify a change against
 * the zone's authoritative servers (or any servers the caller names, such as
 * a loopback test server), so every query targets explicit servers.
 */
import { Resolver } from 'node:dns/promises';
import { AppError, errorMessage } from '../errors.js';
import { canonicalName } from '../names.js';

/** What DNS holds at a name. */
export interface TxtAnswer {
  /** Each TXT record with its character-strings joined; [] when there is none. */
  txt: string[];
  /** Target of a CNAME at the name, lowercase without the final dot, else null. */
  cname: string | null;
}

/** Timeouts for one lookup. */
export interface QueryOptions {
  /** Per-try timeout in milliseconds. Default 3000. */
  timeoutMs?: number;
  /** Tries per server. Default 2. */
  tries?: number;
}

/** A lookup that failed for a reason other than "no such record": the servers are `unavailable` to us. */
export class DnsLookupError extends AppError {
  override readonly name = 'DnsLookupError';
  constructor(
    message: string,
    /** The resolver's code (ETIMEOUT, ESERVFAIL, EREFUSED, ECONNREFUSED, ...). */
    readonly kind: string,
    options: { cause?: unknown } = {},
  ) {
    super('unavailable', message, options);
  }
}

/** Answers meaning the record set is empty, not that the lookup failed. */
const EMPTY_CODES = new Set(['ENODATA', 'ENOTFOUND']);

/** A resolver that asks exactly `servers` (`1.2.3.4`, `127.0.0.1:5300`, `[::1]:53`); the system's when empty. */
export function resolverFor(servers: readonly string[], options: QueryOptions = {}): Resolver {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 3000, tries: options.tries ?? 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

/** Runs a lookup, turning "no such data" into `empty` and any other failure into a DnsLookupError. */
export async function lookupOr<T>(what: string, lookup: () => Promise<T>, empty: T): Promise<T> {
  try {
    return await lookup();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EUNKNOWN';
    if (EMPTY_CODES.has(code)) return empty;
    throw new DnsLookupError(`DNS lookup of ${what} failed: ${code}`, code, { cause: error });
  }
}

/**
 * The TXT records (joined) and any CNAME at `fqdn`, as `servers` answer.
 * @throws DnsLookupError when the servers time out, refuse or fail.
 */
export async function queryTxt(fqdn: string, servers: readonly string[], options: QueryOptions = {}): Promise<TxtAnswer> {
  const resolver = resolverFor(servers, options);
  const name = canonicalName(fqdn);
  const cnames = await lookupOr(`CNAME ${name}`, () => resolver.resolveCname(name), [] as string[]);
  const txt = await lookupOr(`TXT ${name}`, () => resolver.resolveTxt(name), [] as string[][]);
  const cname = cnames[0];
  return {
    // Behind a CNAME a resolver may hand back the target's TXT: that is not a record at this name.
    // The resolver hands each character-string back as latin1 (one char per byte): back to bytes, then UTF-8,
    // after joining, so a character split across two 255-octet strings comes back whole.
    txt: cname === undefined ? txt.map((parts) => Buffer.from(parts.join(''), 'latin1').toString('utf8')) : [],
    cname: cname === undefined ? null : canonicalName(cname),
  };
}

/** One server's answer, or why it gave none. */
export interface ServerAnswer {
  server: string;
  answer: TxtAnswer | null;
  error: string | null;
}

/**
 * Asks each server on its own, so a change can be required to show on
 * every authoritative server rather than on whichever answered first.
 */
export async function queryTxtEach(fqdn: string, servers: readonly string[], options: QueryOptions = {}): Promise<ServerAnswer[]> {
  return Promise.all(
    servers.map(async (server) => {
      try {
        return { server, answer: await queryTxt(fqdn, [server], options), error: null };
      } catch (error) {
        return { server, answer: null, error: errorMessage(error) };
      }
    }),
  );
}
