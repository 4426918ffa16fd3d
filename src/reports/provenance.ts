/**
 * Report provenance: does a report come from the reporter it names? Anyone
 * can send a mail to a rua address, so a report mail counts only when it
 * authenticates (a passing DKIM signature, or SPF for the connecting client
 * when the daemon is the receiving MTA) as a domain of the reporter named in
 * its metadata: the domain of `report_metadata/email`, `org_name` when it is
 * a domain, or the domains the operator lists for that reporter. A report
 * that does not is refused with the reason (and kept); it counts for nothing.
 *
 * A source the operator marks `trusted` (a folder only they write to, an
 * upload with an operator token, a file given to `ingest`) is believed as it
 * is: there is no mail to check, or the person vouches for it.
 *
 * DNS lookups go through the resolver given here (mailauth takes one), so
 * tests answer from a local server and the operator can pick the resolvers.
 */
import { Resolver } from 'node:dns/promises';
import { canonicalName } from '../names.js';
import { ReportError } from './errors.js';
import type { ReportMetadata } from '../report-model/model.js';

/** A DNS lookup as mailauth calls it: `resolve(name, 'TXT')` and friends. */
export type DnsResolve = (name: string, rrtype: string) => Promise<unknown>;

/** How the SMTP client presented itself, when the daemon received the mail itself. */
export interface SmtpEnvelope {
  /** The connecting client's address. */
  ip: string;
  /** Its EHLO/HELO name. */
  helo?: string;
  /** MAIL FROM (empty for bounces). */
  mailFrom?: string;
}

/** What ingest must check about where an input came from. */
export interface ProvenancePolicy {
  /** The source is the operator's own (a private folder, an authenticated upload): nothing to verify. */
  trusted: boolean;
  /** SMTP only: the envelope, for SPF. */
  envelope?: SmtpEnvelope;
  /** DNS lookups for DKIM keys, SPF and DMARC records. */
  resolve?: DnsResolve;
  /**
   * Domains a reporter may authenticate as besides the ones its report names,
   * keyed by the reporter's org_name or its email domain (lowercase):
   * `{ 'enterprise outlook': ['microsoft.com', 'outlook.com'] }`.
   */
  reporters?: Readonly<Record<string, readonly string[]>>;
  /** This host's name, for the SPF check's Received-SPF text. */
  mta?: string;
}

/** What a report mail authenticated as. */
export interface MailAuthentication {
  /** Domains of the DKIM signatures that verified. */
  dkimPass: string[];
  /** Every DKIM result, `d=domain: result`, for the reason. */
  dkim: string[];
  /** The MAIL FROM domain when SPF passed for the connecting client. */
  spfPass: string | null;
  /** SPF's result (`none` when there was no SMTP envelope to check). */
  spf: string;
  /** The From: header domain and its DMARC result. */
  headerFrom: string | null;
  dmarc: string;
  /** A DNS lookup failed temporarily: the verdict may change on a retry. */
  temporary: boolean;
}

/** A resolver on the given servers (`host` or `host:port`), or the system's; with a timeout, so a dead server cannot hold ingest. */
export function dnsResolve(servers?: readonly string[], timeoutMs = 5000): DnsResolve {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers && servers.length > 0) resolver.setServers([...servers]);
  return (name, rrtype) => resolver.resolve(name, rrtype);
}

/** Verifies a mail's DKIM signatures (and SPF/DMARC when the envelope is known). Never throws for a bad mail: its result says so. */
export async function authenticateMail(raw: Buffer, policy: ProvenancePolicy): Promise<MailAuthentication> {
  // mailauth loads with the first mail, so reading an XML or gzip report (`report parse`) never pays for it.
  const { dkimVerify, dmarc: dmarcVerify, spf: spfVerify } = await import('mailauth');
  const resolver = policy.resolve as ((name: string, rrtype: string) => Promise<string[][] | string[]>) | undefined;
  const dkim = await dkimVerify(raw, { ...(resolver ? { resolver } : {}), minBitLength: 1024 });
  const results = dkim.results ?? [];
  const dkimPass = results.filter((r) => r.status.result === 'pass' && r.signingDomain).map((r) => r.signingDomain.toLowerCase());
  let temporary = results.some((r) => r.status.result === 'temperror');

  let spf = 'none';
  let spfPass: string | null = null;
  if (policy.envelope) {
    const sender = policy.envelope.mailFrom || `postmaster@${policy.envelope.helo ?? policy.envelope.ip}`;
    try {
      const checked = await spfVerify({
        ip: policy.envelope.ip,
        sender,
        ...(policy.envelope.helo ? { helo: policy.envelope.helo } : {}),
        ...(policy.mta ? { mta: policy.mta } : {}),
        ...(resolver ? { resolver } : {}),
      } as Parameters<typeof spfVerify>[0]);
      spf = checked.status.result;
      if (spf === 'pass' && checked.domain) spfPass = checked.domain.toLowerCase();
    } catch {
      // mailauth throws on DNS failures it cannot classify: that is a temporary error, not a verdict.
      spf = 'temperror';
    }
    if (spf === 'temperror') temporary = true;
  }

  const headerFrom = dkim.headerFrom?.[0]?.split('@').pop()?.toLowerCase() ?? null;
  let dmarc = 'none';
  if (headerFrom) {
    const verdict = await dmarcVerify({
      headerFrom: dkim.headerFrom,
      spfDomains: spfPass ? [spfPass] : [],
      dkimDomains: results.filter((r) => r.status.result === 'pass').map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized })),
      ...(resolver ? { resolver } : {}),
    } as Parameters<typeof dmarcVerify>[0]).catch(() => false as const);
    if (verdict) dmarc = verdict.status.result;
  }
  return {
    dkimPass,
    // An unsigned mail yields one result "none" with no domain: that is "no signature", not a signature.
    dkim: results.filter((r) => r.signingDomain).map((r) => `d=${r.signingDomain}: ${r.status.result}`),
    spfPass,
    spf,
    headerFrom,
    dmarc,
    temporary,
  };
}

/** A lowercase domain name with at least two labels, or null. */
function domainOrNull(text: string | null | undefined): string | null {
  const d = canonicalName(text ?? '');
  return /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/.test(d) ? d : null;
}

/** The domains a report's metadata claims to come from, plus the operator's list for that reporter. */
export function claimedReporterDomains(metadata: Pick<ReportMetadata, 'org' | 'email'>, reporters: ProvenancePolicy['reporters'] = {}): string[] {
  const emailDomain = domainOrNull(metadata.email?.split('@').pop());
  const orgDomain = domainOrNull(metadata.org);
  const listed = [reporters[metadata.org.trim().toLowerCase()] ?? [], emailDomain ? (reporters[emailDomain] ?? []) : []].flat();
  return [...new Set([emailDomain, orgDomain, ...listed.map(domainOrNull)].filter((d): d is string => d !== null))];
}

/**
 * Same organisation, without a public suffix list: equal, or one a subdomain
 * of the other (`google.com` signing for `dmarc.google.com`). A claimed name of
 * one label is never matched (see domainOrNull).
 */
function related(a: string, b: string): boolean {
  return a === b || a.endsWith(`.${b}`) || b.endsWith(`.${a}`);
}

/**
 * Refuses a report whose mail does not authenticate as its reporter. `mail`
 * is null when the input held no mail (a bare XML or gzip file). @throws
 * ReportError `provenance` with the reason, or `temporary` when DNS could not
 * answer (the input is kept where it is and tried again).
 */
export function checkProvenance(metadata: Pick<ReportMetadata, 'org' | 'email'>, mail: MailAuthentication | null, policy: ProvenancePolicy): void {
  if (policy.trusted) return;
  const claimed = claimedReporterDomains(metadata, policy.reporters);
  if (mail === null) {
    throw new ReportError(
      'provenance',
      'the report did not come in a mail, so nothing says who sent it; this source is not trusted (mark a folder only you write to `trusted: true`, or upload with an operator token)',
      'mail',
    );
  }
  const authenticated = [...mail.dkimPass, ...(mail.spfPass ? [mail.spfPass] : [])];
  const match = claimed.some((c) => authenticated.some((a) => related(a, c)));
  if (match) return;
  const summary = `DKIM ${mail.dkim.length ? mail.dkim.join(', ') : 'none'}; SPF ${mail.spf}${mail.spfPass ? ` (${mail.spfPass})` : ''}; DMARC ${mail.dmarc}${mail.headerFrom ? ` for ${mail.headerFrom}` : ''}`;
  const who = claimed.length ? claimed.join(', ') : `"${metadata.org}" (no domain in org_name or email)`;
  if (mail.temporary) {
    throw new ReportError('temporary', `the mail's authentication could not be checked now (${summary}); kept in place and tried again`, 'mail');
  }
  throw new ReportError(
    'provenance',
    `the mail does not authenticate as the reporter it names (${who}): ${summary}; not counted (list the reporter's domains under provenance.reporters if it signs with another domain)`,
    'report_metadata/email',
  );
}
