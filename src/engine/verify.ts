/**
 * Verifying a written change over real DNS: ask every authoritative server of
 * the zone directly (found from NS, or the ones configured) and accept the
 * change only when each of them serves exactly the new DMARC record. A
 * provider's API saying "done" is not enough: only what resolvers will be
 * told counts.
 */
import { authoritativeServers, queryTxtEach, type QueryOptions } from '../dns/index.js';
import { AppError } from '../errors.js';
import { dmarcRecordsOf } from '../record/index.js';
import type { Verifier } from './apply.js';

export interface DnsVerifierOptions extends QueryOptions {
  /** Authoritative servers to ask (`192.0.2.53`, `127.0.0.1:5300`); found from the zone's NS records when absent. */
  nameservers?: string[];
  /** Resolvers used to find the NS records and their addresses; the system's when absent. */
  resolvers?: string[];
  /** Port of the authoritative servers found from NS (53 when absent). */
  port?: number;
}

export function dnsVerifier(options: DnsVerifierOptions = {}): Verifier {
  return async (fqdn, expected) => {
    const servers =
      options.nameservers && options.nameservers.length > 0
        ? options.nameservers
        : await authoritativeServers(fqdn, options.resolvers ?? [], options.port === undefined ? options : { ...options, port: options.port });
    const answers = await queryTxtEach(fqdn, servers, options);
    const failed = answers.filter((a) => a.error !== null);
    if (failed.length > 0) {
      // An unreachable server is not a "no": the caller retries later.
      throw new AppError('unavailable', `no answer from ${failed.map((a) => `${a.server} (${a.error})`).join(', ')}`);
    }
    return answers.every((a) => {
      const dmarc = dmarcRecordsOf(a.answer?.txt ?? []);
      return dmarc.length === 1 && dmarc[0] === expected;
    });
  };
}
