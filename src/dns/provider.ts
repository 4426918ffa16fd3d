/**
 * The contract every DNS provider adapter meets, beside the DNS code so the
 * engine and the fleet see an interface, and only the daemon and the CLI
 * import the adapters in providers/. A provider reads and applies a change
 * the core has already planned and validated (octoDNS's split): it knows its
 * API, its quoting and 255-octet splitting, its paging and its rate limits;
 * it knows nothing about DMARC stages.
 */

/** What sits at a name, as the provider's API reports it. */
export interface RecordSetView {
  /** Every TXT record at the name, its character-strings joined, quotes removed. */
  txt: string[];
  /** TTL of the TXT RRset, null when there is none. */
  ttl: number | null;
  /** Target of a CNAME at the name (a hosted-DMARC service often owns `_dmarc` this way), else null. */
  cname: string | null;
  /**
   * NS targets when the name itself is delegated out of the zone this
   * provider writes to (another way a hosted-DMARC service takes `_dmarc`
   * over): a TXT written here would never be served. The core refuses as it
   * does for a CNAME. Absent when the adapter cannot tell.
   */
  delegation?: string[] | null;
}

export interface DnsProvider {
  readonly name: string;
  /** Every TXT string set at `fqdn`, joined per record; [] if none. */
  readTxt(fqdn: string): Promise<string[]>;
  /** The TXT set, its TTL and any CNAME at `fqdn`, so the core can refuse to write over a CNAME. */
  inspect(fqdn: string): Promise<RecordSetView>;
  /** Replace the TXT set at `fqdn` with exactly `records` (each a whole record, unsplit). */
  writeTxt(fqdn: string, records: string[], opts: { ttl: number }): Promise<void>;
  /** Releases the adapter's connections (SDK sockets); the adapter is unusable after. */
  close?(): void;
}
