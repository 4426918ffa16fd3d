/**
 * An in-memory DNS provider: the zone as a map. `simulate` replays history
 * against it, and tests use its fault switches (a failing write, a write the
 * name servers never show) to prove that only a verified change moves a stage.
 */
import type { DnsProvider, RecordSetView } from '../dns/provider.js';
import { canonicalName } from '../names.js';

interface Entry {
  txt: string[];
  ttl: number | null;
  cname: string | null;
}

export class MemoryDns implements DnsProvider {
  readonly name = 'memory';
  private readonly zone = new Map<string, Entry>();
  /** When set, writeTxt throws this error (the provider is down or refuses). */
  failWrites: Error | null = null;
  /** When true, writes are accepted but never become visible (verification will not see them). */
  hideWrites = false;
  /** Every write, in order, for tests and dry runs. */
  readonly writes: Array<{ fqdn: string; records: string[]; ttl: number }> = [];

  /** Sets what is at a name, as an owner (or an attacker of our assumptions) would by hand. */
  set(fqdn: string, entry: Partial<Entry>): void {
    this.zone.set(canonicalName(fqdn), { txt: entry.txt ?? [], ttl: entry.ttl ?? 3600, cname: entry.cname ?? null });
  }

  async readTxt(fqdn: string): Promise<string[]> {
    return [...(this.zone.get(canonicalName(fqdn))?.txt ?? [])];
  }

  async inspect(fqdn: string): Promise<RecordSetView> {
    const entry = this.zone.get(canonicalName(fqdn));
    return { txt: [...(entry?.txt ?? [])], ttl: entry && entry.txt.length > 0 ? entry.ttl : null, cname: entry?.cname ?? null };
  }

  async writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void> {
    if (this.failWrites) throw this.failWrites;
    this.writes.push({ fqdn: canonicalName(fqdn), records: [...records], ttl: opts.ttl });
    if (this.hideWrites) return;
    this.zone.set(canonicalName(fqdn), { txt: [...records], ttl: opts.ttl, cname: null });
  }
}

