/**
 * Turning what an operator typed into the domain name we enroll. The one
 * normaliser lives in src/names.ts (below every layer, so DNS, reports and
 * providers use the same one); the fleet's modules import it from here.
 */
export { normalizeDomainName, type DomainNameResult } from '../names.js';
