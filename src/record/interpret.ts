/**
 * What a record means to the mail receivers that read it. RFC 7489 and
 * RFC 9989 receivers read the same text differently (`pct` versus `t`, `np`),
 * and a rollout is only safe if both do something acceptable, so this module
 * answers for each kind separately: the policy for the domain, for its
 * existing subdomains and for its non-existent subdomains.
 */
import { parseRecord, tagValue, type RecordTag } from './parse.js';
import { oneLevelBelow, policyFromTagValue, type Policy } from './policy.js';
import { hasErrors, type RecordProblem } from './problem.js';
import { hasUsableUri } from './uri.js';
import { validateParsed } from './validate.js';

/** The two kinds of receiver in the field while RFC 9989 replaces RFC 7489. */
export type ReceiverKind = 'rfc7489' | 'rfc9989';

/** What failing mail of one kind (domain, subdomain, non-existent subdomain) gets. */
export interface PolicyApplication {
  /** The policy the record asks for this mail, after the sp/np defaults. */
  requested: Policy;
  /** The tag `requested` came from; `fallback` when a broken record is read as p=none. */
  source: 'p' | 'sp' | 'np' | 'fallback';
  /** The policy the sampled share of failing mail gets. */
  applied: Policy;
  /** Percent of failing mail that gets `applied` (RFC 7489 `pct`; always 100 for RFC 9989). */
  percent: number;
  /** What the failing mail outside the sample gets; null when `percent` is 100 or the policy is none. */
  rest: Policy | null;
}

/** How one kind of receiver applies a record. */
export interface ReceiverInterpretation {
  receiver: ReceiverKind;
  /** False when this receiver would act as if the domain published no DMARC record. */
  usesRecord: boolean;
  /** Why the record is set aside or read as p=none; null when it is read as written. */
  note: string | null;
  /** Mail from the domain itself; null when the record is not used. */
  domain: PolicyApplication | null;
  /** Mail from existing subdomains without a record of their own. */
  subdomains: PolicyApplication | null;
  /** Mail from subdomains that do not exist in DNS. */
  nonExistentSubdomains: PolicyApplication | null;
  /** RFC 9989 `t=y`: every policy applied one level below what it says. Always false for RFC 7489. */
  testing: boolean;
  /** RFC 9989 `psd` (y, n or u); null for RFC 7489 receivers and when absent or invalid. */
  psd: 'y' | 'n' | 'u' | null;
  /** One line in plain words. */
  summary: string;
}

/** A record checked and read by both kinds of receiver. */
export interface RecordInterpretation {
  /** True when no problem is an error. */
  valid: boolean;
  problems: RecordProblem[];
  /** The tags in the order written. */
  tags: RecordTag[];
  rfc7489: ReceiverInterpretation;
  rfc9989: ReceiverInterpretation;
}

/**
 * Validates `text` and says how each kind of receiver would apply it. An
 * invalid record is still interpreted, the way the RFCs tell receivers to
 * treat broken records, because that is what mail meets until it is fixed.
 * Where a tag is duplicated the first occurrence is assumed to count.
 */
export function interpretRecord(text: string): RecordInterpretation {
  const parsed = parseRecord(text);
  const problems = validateParsed(text, parsed);
  return {
    valid: !hasErrors(problems),
    problems,
    tags: parsed.tags,
    rfc7489: readAs('rfc7489', text, parsed.tags),
    rfc9989: readAs('rfc9989', text, parsed.tags),
  };
}

const LABEL: Record<ReceiverKind, string> = { rfc7489: 'RFC 7489', rfc9989: 'RFC 9989' };

function readAs(receiver: ReceiverKind, text: string, tags: RecordTag[]): ReceiverInterpretation {
  const base = { receiver, testing: false, psd: null, domain: null, subdomains: null, nonExistentSubdomains: null };
  const first = tags[0];
  if (!first || first.name !== 'v' || first.value !== 'DMARC1' || !/^v[ \t]*=/i.test(text)) {
    const note = 'the record does not begin with v=DMARC1, so it is not a DMARC record';
    return { ...base, usesRecord: false, note, summary: `${LABEL[receiver]} receiver: no DMARC policy (${note}).` };
  }

  const policyTags = receiver === 'rfc7489' ? ['p', 'sp'] : ['p', 'sp', 'np'];
  const broken = policyTags.filter((name) => {
    const value = tagValue(tags, name);
    return name === 'p' ? policyFromTagValue(value ?? '') === null : value !== undefined && policyFromTagValue(value) === null;
  });
  const psdValue = (tagValue(tags, 'psd') ?? '').toLowerCase();
  const psd = receiver === 'rfc9989' && (psdValue === 'y' || psdValue === 'n' || psdValue === 'u') ? psdValue : null;

  if (broken.length > 0) {
    // RFC 7489 §6.6.3 and RFC 9989 policy discovery: a record without a valid
    // p, or with an invalid sp (or np), counts as p=none if it names a usable
    // report address, and as no record at all otherwise.
    const what = broken.map((name) => (tagValue(tags, name) === undefined ? `no ${name}` : `an invalid ${name}`)).join(' and ');
    const rua = tagValue(tags, 'rua');
    if (rua === undefined || !hasUsableUri(rua)) {
      const note = `the record has ${what} and no usable rua, so it is ignored`;
      return { ...base, psd, usesRecord: false, note, summary: `${LABEL[receiver]} receiver: no DMARC policy (${note}).` };
    }
    const none: PolicyApplication = { requested: 'none', source: 'fallback', applied: 'none', percent: 100, rest: null };
    const note = `the record has ${what}, so it is read as p=none (reports only)`;
    return {
      ...base,
      psd,
      usesRecord: true,
      note,
      domain: none,
      subdomains: none,
      nonExistentSubdomains: none,
      summary: `${LABEL[receiver]} receiver: ${note}; failing mail is only monitored.`,
    };
  }

  const p = policyFromTagValue(tagValue(tags, 'p')!)!;
  const sp = policyFromTagValue(tagValue(tags, 'sp') ?? '');
  const np = receiver === 'rfc9989' ? policyFromTagValue(tagValue(tags, 'np') ?? '') : null;
  const sub = sp ? { policy: sp, source: 'sp' as const } : { policy: p, source: 'p' as const };
  // RFC 7489 has no np: a non-existent subdomain is a subdomain like any other.
  const nx = np ? { policy: np, source: 'np' as const } : sub;

  let apply: (requested: Policy, source: PolicyApplication['source']) => PolicyApplication;
  let testing = false;
  if (receiver === 'rfc7489') {
    const pctText = tagValue(tags, 'pct');
    // An invalid pct is a syntax error that RFC 7489 receivers replace with the default, 100.
    const pct = pctText !== undefined && /^[0-9]{1,3}$/.test(pctText) && Number(pctText) <= 100 ? Number(pctText) : 100;
    apply = (requested, source) =>
      requested === 'none' || pct === 100
        ? { requested, source, applied: requested, percent: 100, rest: null }
        : { requested, source, applied: requested, percent: pct, rest: oneLevelBelow(requested) };
  } else {
    testing = (tagValue(tags, 't') ?? '').toLowerCase() === 'y';
    apply = (requested, source) => ({
      requested,
      source,
      applied: testing ? oneLevelBelow(requested) : requested,
      percent: 100,
      rest: null,
    });
  }
  const domain = apply(p, 'p');
  const subdomains = apply(sub.policy, sub.source);
  const nonExistentSubdomains = apply(nx.policy, nx.source);
  return {
    ...base,
    psd,
    testing,
    usesRecord: true,
    note: null,
    domain,
    subdomains,
    nonExistentSubdomains,
    summary: summarise(receiver, testing, domain, subdomains, nonExistentSubdomains),
  };
}

function summarise(
  receiver: ReceiverKind,
  testing: boolean,
  domain: PolicyApplication,
  subdomains: PolicyApplication,
  nonExistent: PolicyApplication,
): string {
  const d = describe(domain);
  const s = describe(subdomains);
  const n = describe(nonExistent);
  let body: string;
  if (d === s && s === n) body = `failing mail from the domain and its subdomains: ${d}`;
  else if (s === n) body = `failing mail from the domain: ${d}; from its subdomains: ${s}`;
  else if (d === s) body = `failing mail from the domain and existing subdomains: ${d}; from non-existent subdomains: ${n}`;
  else body = `failing mail from the domain: ${d}; from existing subdomains: ${s}; from non-existent subdomains: ${n}`;
  const test = testing ? ' (testing, t=y: each policy applied one level below what it says)' : '';
  return `${LABEL[receiver]} receiver${test}: ${body}.`;
}

const DONE: Record<Policy, string> = { none: 'delivered as usual', quarantine: 'quarantined', reject: 'rejected' };

function describe(application: PolicyApplication): string {
  if (application.applied === 'none') return 'monitored only';
  if (application.rest === null) return DONE[application.applied];
  return `${application.percent}% ${DONE[application.applied]}, the rest ${DONE[application.rest]}`;
}
