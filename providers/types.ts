/**
 * The contract every DNS provider adapter meets (DnsProvider, RecordSetView).
 * It lives in src/dns/provider.ts, below the engine, so the core depends on
 * the interface and not on the adapters; it is re-exported here for them.
 */
export type { DnsProvider, RecordSetView } from '../src/dns/provider.js';
