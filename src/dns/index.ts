/**
 * Real DNS lookups for verification: the TXT set at a name as given
 * servers answer it, and the authoritative servers of the zone holding a
 * name. Used by the `manual` provider and by the engine's verification.
 */
export { DnsLookupError, queryTxt, queryTxtEach, resolverFor, type QueryOptions, type ServerAnswer, type TxtAnswer } from './query.js';
export { authoritativeServers, nsRecordsAt, type AuthoritativeOptions } from './authoritative.js';
export { delegationAt } from './referral.js';
