/** The fleet: enrolled domains, enrolment and status. */
export { normalizeDomainName, type DomainNameResult } from '../names.js';
export { describeInput, enrollDomains, enrollInputsFromText } from './enroll.js';
export type { EnrollInput, EnrollRefusal, EnrollRequest, EnrollResult } from './enroll.js';
export { domainDetail, fleetStatus } from './status.js';
export type { DomainDetail, DomainStatus } from './status.js';
export type { EnrollStart, ProviderLookup } from './enroll.js';
