/**
 * Hosted-DMARC services by the DNS names their customers point `_dmarc` at
 * (a CNAME target or the NS of a delegation). When a zone hands `_dmarc` to
 * one of them, that service owns the record: writing our own would be
 * overwritten, or never served. Naming the service tells the operator whom
 * to ask. The list is data: add a line `[suffix, name]` to extend it; a
 * name matches a suffix when it is the suffix or ends in `.suffix`.
 */

import { canonicalName } from '../names.js';

/** `[DNS suffix, service name]`, most specific suffixes first where two overlap. */
export const HOSTED_DMARC_SERVICES: ReadonlyArray<readonly [string, string]> = [
  ['ondmarc.com', 'Red Sift OnDMARC'],
  ['dmarcian.com', 'dmarcian'],
  ['dmarcian.eu', 'dmarcian'],
  ['vali.email', 'Valimail'],
  ['valimail.com', 'Valimail'],
  ['dmarcprotect.me', 'EasyDMARC'],
  ['easydmarc.com', 'EasyDMARC'],
  ['easydmarc.us', 'EasyDMARC'],
  ['easydmarc.eu', 'EasyDMARC'],
  ['sdmarc.net', 'Sendmarc'],
  ['sendmarc.com', 'Sendmarc'],
  ['powerdmarc.com', 'PowerDMARC'],
  ['pphosted.com', 'Proofpoint Email Fraud Defense'],
  ['proofpoint.com', 'Proofpoint'],
  ['agari.com', 'Agari'],
  ['dmarcanalyzer.com', 'Mimecast DMARC Analyzer'],
  ['mimecast.com', 'Mimecast'],
  ['uriports.com', 'URIports'],
  ['dmarcly.com', 'DMARCLY'],
  ['fraudmarc.com', 'Fraudmarc'],
  ['dmarcadvisor.com', 'DMARC Advisor'],
  ['mxtoolbox.com', 'MxToolbox'],
];

/** The service that owns names under `target`, or null when none on the list does. */
export function hostedDmarcService(target: string): string | null {
  const name = canonicalName(target);
  const hit = HOSTED_DMARC_SERVICES.find(([suffix]) => name === suffix || name.endsWith(`.${suffix}`));
  return hit ? hit[1] : null;
}

/** ` (Sendmarc manages this record)`, or a general hint when the target is not on the list. */
export function hostedHint(target: string): string {
  const service = hostedDmarcService(target);
  return service ? ` (${service} manages this record)` : ' (often a hosted DMARC service)';
}
