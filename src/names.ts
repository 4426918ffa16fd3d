/**
 * Domain names, normalised one way everywhere:
 *  - normalizeDomainName(): what an operator typed (CLI, API, config, enrolment
 *    files) into the domain we enroll: IDNs to A-labels, lowercase, no trailing
 *    dot, and a plain refusal with the reason for anything that is not a
 *    registrable-looking host name (wildcards, `_dmarc` labels, IP addresses,
 *    URLs, stray punctuation).
 *  - canonicalName(): a name read from DNS, a report or a provider, for
 *    comparing: trimmed, lowercase, without the root's trailing dot. It checks
 *    nothing, since such names may hold `_` labels (`_dmarc.example.com`).
 * Foundation layer: imports nothing of ours, so every layer may use it.
 */
import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';

export type DomainNameResult = { ok: true; domain: string } | { ok: false; reason: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** `_dmarc.` plus the domain must fit DNS's 253-character name limit. */
const MAX_DOMAIN_LENGTH = 253 - '_dmarc.'.length;

/** Validates and normalises one domain name as an operator would type it. */
export function normalizeDomainName(input: string): DomainNameResult {
  const trimmed = input.trim();
  if (trimmed === '') return { ok: false, reason: 'empty' };
  if (/\s/.test(trimmed)) return { ok: false, reason: 'contains whitespace (one domain per line, nothing after it)' };
  if (trimmed.includes('*')) return { ok: false, reason: 'wildcards cannot be enrolled: DMARC is looked up per domain' };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) || trimmed.includes('/')) {
    return { ok: false, reason: 'looks like a URL; give the bare domain' };
  }
  if (trimmed.includes('@')) return { ok: false, reason: 'looks like an email address; give the domain after @' };
  // One trailing dot is the absolute form of the same name; more is junk.
  const withoutRoot = trimmed.endsWith('.') && !trimmed.endsWith('..') ? trimmed.slice(0, -1) : trimmed;
  if (isIP(withoutRoot) || isIP(withoutRoot.replace(/^\[|\]$/g, ''))) {
    return { ok: false, reason: 'is an IP address, not a domain' };
  }
  // WHATWG URL parsing reads an all-digit last label as IPv4, so say why first.
  if (/(^|\.)\d+$/.test(withoutRoot)) return { ok: false, reason: 'the top-level label is all digits' };
  const ascii = domainToASCII(withoutRoot);
  if (ascii === '') return { ok: false, reason: 'not a valid domain name (IDNA conversion failed)' };
  const labels = ascii.split('.');
  if (labels.length < 2) return { ok: false, reason: 'needs at least two labels (a top-level domain alone has no DMARC policy of its own here)' };
  for (const label of labels) {
    if (label === '') return { ok: false, reason: 'has an empty label (two dots in a row, or a leading dot)' };
    if (label.startsWith('_')) return { ok: false, reason: `label "${label}" starts with "_": enroll the domain, not its _dmarc name` };
    if (label.length > 63) return { ok: false, reason: `label "${label.slice(0, 20)}…" is longer than 63 characters` };
    if (!LABEL.test(label)) return { ok: false, reason: `label "${label}" has characters other than letters, digits and inner hyphens` };
  }
  if (ascii.length > MAX_DOMAIN_LENGTH) {
    return { ok: false, reason: `longer than ${MAX_DOMAIN_LENGTH} characters, so _dmarc.<domain> would exceed DNS's 253` };
  }
  return { ok: true, domain: ascii };
}

/** A DNS name as compared everywhere: trimmed, lowercase, without the trailing dot of the absolute form. */
export function canonicalName(name: string): string {
  return name.trim().replace(/\.$/, '').toLowerCase();
}
