/**
 * Domain names as the adapters compare them: canonicalName() (src/names.ts:
 * lowercase, without the final dot, on which APIs disagree), the absolute
 * form some APIs want, and the list of zones that could hold a name, longest
 * first, for zone discovery.
 */
import { canonicalName } from '../../src/names.js';

export { canonicalName };

/** `name` normalised, with the trailing dot that PowerDNS and Route 53 want. */
export function absoluteName(name: string): string {
  return `${canonicalName(name)}.`;
}

/** Whether `name` is `zone` or below it. */
export function isInZone(name: string, zone: string): boolean {
  const n = canonicalName(name);
  const z = canonicalName(zone);
  return n === z || n.endsWith(`.${z}`);
}

/**
 * Every name that could be the zone holding `fqdn`, from `fqdn` itself up to
 * its top-level domain: the longest one the account holds wins, because a
 * child zone is authoritative for its names over its parent.
 */
export function zoneCandidates(fqdn: string): string[] {
  const labels = canonicalName(fqdn).split('.');
  const out: string[] = [];
  for (let i = 0; i < labels.length; i += 1) out.push(labels.slice(i).join('.'));
  return out;
}

/** Whether two sets of records hold the same records, in any order, duplicates counted. */
export function sameRecords(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const left = [...a].sort();
  const right = [...b].sort();
  return left.every((value, i) => value === right[i]);
}
