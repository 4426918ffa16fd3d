/**
 * Which servers to ask when verifying a record: the nameservers of the zone
 * that holds the name, found by walking up from it to the first name with NS
 * records, then resolved to addresses. Asking them directly, rather than a
 * caching resolver, shows a change as soon as it is published.
 */
import { isIP } from 'node:net';
import { canonicalName } from '../names.js';
import { DnsLookupError, lookupOr, resolverFor, type QueryOptions } from './query.js';

/** Where to look and how to write the answer. */
export interface AuthoritativeOptions extends QueryOptions {
  /** Port to attach to each address (`1.2.3.4:PORT`, `[::1]:PORT`); none means 53. */
  port?: number;
}

/** Every name from `domain` up to its top-level domain. */
function ancestors(domain: string): string[] {
  const labels = canonicalName(domain).split('.');
  return labels.map((_, i) => labels.slice(i).join('.'));
}

function withPort(address: string, port: number | undefined): string {
  if (port === undefined) return address;
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Addresses of the authoritative servers for the zone holding `domain`,
 * looked up through `resolverServers` (the system's resolvers when absent).
 * @throws DnsLookupError when no zone or no nameserver address is found.
 */
export async function authoritativeServers(
  domain: string,
  resolverServers: readonly string[] = [],
  options: AuthoritativeOptions = {},
): Promise<string[]> {
  const resolver = resolverFor(resolverServers, options);
  for (const name of ancestors(domain)) {
    const nameservers = await lookupOr(`NS ${name}`, () => resolver.resolveNs(name), [] as string[]);
    if (nameservers.length === 0) continue;
    const addresses = new Set<string>();
    for (const ns of nameservers) {
      for (const address of await lookupOr(`A ${ns}`, () => resolver.resolve4(ns), [] as string[])) addresses.add(address);
      for (const address of await lookupOr(`AAAA ${ns}`, () => resolver.resolve6(ns), [] as string[])) addresses.add(address);
    }
    if (addresses.size === 0) {
      throw new DnsLookupError(`the nameservers of ${name} (${nameservers.join(', ')}) have no addresses`, 'ENOADDRESS');
    }
    return [...addresses].map((address) => withPort(address, options.port));
  }
  throw new DnsLookupError(`no zone with NS records holds ${domain}`, 'ENOZONE');
}

/**
 * The NS records at exactly `name`, through `resolverServers` (the system's
 * when empty): non-empty when `name` is a zone of its own, as a delegated
 * `_dmarc` is. [] when there are none.
 * @throws DnsLookupError when the lookup fails for another reason.
 */
export async function nsRecordsAt(name: string, resolverServers: readonly string[] = [], options: QueryOptions = {}): Promise<string[]> {
  const resolver = resolverFor(resolverServers, options);
  const bare = canonicalName(name);
  return (await lookupOr(`NS ${bare}`, () => resolver.resolveNs(bare), [] as string[])).map(canonicalName);
}
