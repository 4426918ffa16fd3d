/**
 * Sending sources and their classes. Raw DMARC failure on an attacked domain
 * is mostly spoofing, the very mail enforcement should stop; what must not
 * fail is the operator's own mail. So each row is classed by who sent it, as
 * shown by the identities it authenticated as, not by how its IP fared:
 *
 * - authorised: an operator vouched for it; or it authenticates as the
 *   domain (aligned DKIM d= or SPF domain, per the record's adkim/aspf, as the
 *   receiver evaluated it); or it fails while carrying an aligned identity
 *   that passed in the look-back: a DKIM d= that passed from the same network
 *   (an ESP's pool; the signature broke), an SPF domain that passed from the
 *   same IP (its record no longer covers it). An authorised sender that broke,
 *   which is what the halt rate must see.
 * - forwarded: the receiver named an override reason (forwarded,
 *   mailing_list, trusted_forwarder, local_policy), or the mail passed DKIM as
 *   the domain while SPF failed for an IP the domain's SPF never covered
 *   (relayed), or it comes from such a relay with the domain's signature
 *   broken in transit. Shown, never the domain's own failure, never blocking.
 * - unaligned: fails DMARC while authenticating as another domain (a
 *   forgotten ESP, or another tenant of a shared provider). At the plan's
 *   volume it holds the domain from the first report that shows it.
 * - unauthenticated: fails everything (spoofing), or marked as abuse.
 *
 * An IP's passing history alone never makes mail authorised: a mail
 * provider's shared IPs carry the domain's own mail and other tenants' mail
 * (including spoofing signed as the attacker's own tenant domain), and a
 * sender broken as long as it worked must stay the domain's own.
 */
import { BlockList, isIP } from 'node:net';
import { AppError } from '../errors.js';
import { canonicalName } from '../names.js';
import { pacer, runSteps, type Steps } from './steps.js';
import { daysCovered } from './window.js';
import type { ObservedRow, SourceClass, SourceRule, SourceSummary } from './types.js';

/** policy_evaluated reason types that mean the receiver saw forwarded or list mail (RFC 7489 appendix C). */
export const FORWARDING_REASONS: ReadonlySet<string> = new Set(['forwarded', 'mailing_list', 'trusted_forwarder', 'local_policy']);

/** Rules compiled for fast matching; IP rules go into node's BlockList (IPv4 and IPv6 CIDRs). */
export class SourceRules {
  private readonly ipRules = new Map<string, BlockList>();
  private readonly domainRules: SourceRule[] = [];

  constructor(rules: SourceRule[]) {
    for (const rule of rules) {
      if (rule.kind !== 'ip') {
        this.domainRules.push({ ...rule, value: rule.value.toLowerCase() });
        continue;
      }
      let list = this.ipRules.get(rule.verdict);
      if (!list) this.ipRules.set(rule.verdict, (list = new BlockList()));
      addAddressOrSubnet(list, rule.value);
    }
  }

  /** The verdict an operator gave for a source with this IP and these authenticated domains, if any. Abuse wins over authorised. */
  verdictFor(ip: string, dkimDomains: string[], spfDomains: string[]): { verdict: 'authorised' | 'abuse'; because: string } | null {
    for (const verdict of ['abuse', 'authorised'] as const) {
      const family = isIP(ip);
      if (family !== 0 && this.ipRules.get(verdict)?.check(ip, family === 6 ? 'ipv6' : 'ipv4')) {
        return { verdict, because: `IP ${ip} is on the ${verdict === 'abuse' ? 'abuse list' : 'allowlist'}` };
      }
      for (const rule of this.domainRules) {
        if (rule.verdict !== verdict) continue;
        const candidates = rule.kind === 'dkim' ? dkimDomains : spfDomains;
        const hit = candidates.find((d) => d === rule.value || d.endsWith(`.${rule.value}`));
        if (hit) return { verdict, because: `${rule.kind}:${hit} is on the ${verdict === 'abuse' ? 'abuse list' : 'allowlist'}` };
      }
    }
    return null;
  }
}

/** Throws a clear error for a value that is neither an IP nor a CIDR. */
export function addAddressOrSubnet(list: BlockList, value: string): void {
  const [address, prefix] = value.split('/');
  const family = isIP(address ?? '');
  if (family === 0) throw new AppError('invalid', `"${value}" is not an IP address or CIDR`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (prefix === undefined) {
    list.addAddress(address!, type);
    return;
  }
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) throw new AppError('invalid', `"${value}" has an invalid prefix length`);
  list.addSubnet(address!, bits, type);
}

const isPass = (result: string | null) => result?.toLowerCase() === 'pass';
/** DMARC passes when DKIM or SPF passed aligned, as the receiver evaluated it. */
const dmarcPassed = (row: ObservedRow) => isPass(row.dkim) || isPass(row.spf);

function authenticatedDomains(entries: ObservedRow['authDkim']): string[] {
  const domains = new Set<string>();
  for (const e of entries) if (isPass(e.result) && e.domain) domains.add(canonicalName(e.domain));
  return [...domains].sort();
}

/** Every domain the row names in auth results, pass or not: allowlists match on these. */
function namedDomains(entries: ObservedRow['authDkim']): string[] {
  return [...new Set(entries.map((e) => (e.domain ? canonicalName(e.domain) : null)).filter((d): d is string => !!d))].sort();
}

/** The source a row was sent by: its IP and the domains it authenticated as. */
export function sourceKey(row: ObservedRow): string {
  const dkim = authenticatedDomains(row.authDkim).map((d) => `dkim:${d}`);
  const spf = authenticatedDomains(row.authSpf).map((d) => `spf:${d}`);
  return [row.sourceIp, ...dkim, ...spf].join(' ');
}

export { dmarcPassed };

/**
 * DMARC identifier alignment (RFC 7489 3.1). Strict: the same name. Relaxed:
 * the same organisational domain, judged without a public suffix list as the
 * same name, a parent or child of it (never a bare TLD), or both under the
 * domain whose record the receiver applied (which is, or is under, the
 * organisational domain).
 */
export function aligned(authDomain: string, fromDomain: string, mode: 'r' | 's', policyDomain: string): boolean {
  const d = canonicalName(authDomain);
  const from = canonicalName(fromDomain);
  if (d === from) return true;
  if (mode === 's') return false;
  const under = (child: string, parent: string) => parent.includes('.') && child.endsWith(`.${parent}`);
  if (under(from, d) || under(d, from)) return true;
  const policy = canonicalName(policyDomain);
  return (d === policy || under(d, policy)) && (from === policy || under(from, policy));
}

/**
 * Senders move around a provider's range (an ESP's pool, a server's
 * neighbours): an identity's history is kept per /24 (IPv4) or /48 (IPv6).
 */
export function networkOf(ip: string): string {
  const family = isIP(ip);
  if (family === 4) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (family === 6) return `${expandIpv6(ip).slice(0, 3).join(':')}::/48`;
  return ip;
}

function expandIpv6(ip: string): string[] {
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:192.0.2.1) counts as two groups.
  const groups = (parts: string[]) => parts.flatMap((p) => (p.includes('.') ? ['v4', 'v4'] : [p]));
  const l = groups(left);
  const r = groups(right);
  const fill = tail === undefined ? [] : Array.from({ length: Math.max(0, 8 - l.length - r.length) }, () => '0');
  return [...l, ...fill, ...r].map((g) => g.replace(/^0+(?=.)/, ''));
}

/** What classing reads off one row. */
interface RowFacts {
  from: string;
  network: string;
  passed: boolean;
  forwardingReason: { type: string; comment: string | null } | null;
  /** DKIM signatures whose d= aligns with header_from. */
  alignedSignatures: Array<{ domain: string; selector: string | null; pass: boolean }>;
  /** SPF domains that align with header_from. */
  alignedSpf: Array<{ domain: string; pass: boolean }>;
  /** No SPF result passed and one failed: the IP is not in the envelope domain's SPF. */
  spfFailed: boolean;
}

/**
 * Which auth domains the receivers judged aligned with each header_from:
 * when a row passed DKIM (or SPF) aligned and our own alignment check, which
 * has no public suffix list, sees no aligned passing domain, the receiver's
 * verdict wins: the one domain that passed is taken as aligned, for that row
 * and for failing rows signed by it.
 */
interface ReceiverAlignment {
  dkim: Map<string, Set<string>>;
  spf: Map<string, Set<string>>;
}

const fromOf = (row: ObservedRow) => canonicalName(row.headerFrom || row.policyDomain);

function* learnReceiverAlignment(rows: ObservedRow[]): Steps<ReceiverAlignment> {
  const learned: ReceiverAlignment = { dkim: new Map(), spf: new Map() };
  const learn = (into: Map<string, Set<string>>, from: string, entries: ObservedRow['authDkim'], mode: 'r' | 's', policyDomain: string) => {
    const passing = [...new Set(entries.filter((e) => e.domain && isPass(e.result)).map((e) => canonicalName(e.domain!)))];
    // Only when one domain passed: with two (an ESP signing as itself and as the domain) it is not known which one aligned.
    if (passing.length !== 1 || aligned(passing[0]!, from, mode, policyDomain)) return;
    let set = into.get(from);
    if (!set) into.set(from, (set = new Set()));
    set.add(passing[0]!);
  };
  const pause = pacer();
  for (const row of rows) {
    const from = fromOf(row);
    if (isPass(row.dkim)) learn(learned.dkim, from, row.authDkim, row.adkim ?? 'r', row.policyDomain);
    if (isPass(row.spf)) learn(learned.spf, from, row.authSpf, row.aspf ?? 'r', row.policyDomain);
    if (pause()) yield;
  }
  return learned;
}

function factsOf(row: ObservedRow, receiver: ReceiverAlignment): RowFacts {
  const from = fromOf(row);
  const reason = (row.reasons ?? []).find((r) => r.type !== null && FORWARDING_REASONS.has(r.type.toLowerCase()));
  const isAligned = (d: string, mode: 'r' | 's', learned: Map<string, Set<string>>) =>
    aligned(d, from, mode, row.policyDomain) || learned.get(from)?.has(canonicalName(d)) === true;
  const alignedSignatures = row.authDkim
    .filter((e) => e.domain && isAligned(e.domain, row.adkim ?? 'r', receiver.dkim))
    .map((e) => ({ domain: canonicalName(e.domain!), selector: e.selector ?? null, pass: isPass(e.result) }));
  const alignedSpf = row.authSpf
    .filter((e) => e.domain && isAligned(e.domain, row.aspf ?? 'r', receiver.spf))
    .map((e) => ({ domain: canonicalName(e.domain!), pass: isPass(e.result) }));
  const spfResults = row.authSpf.map((e) => e.result?.toLowerCase() ?? '');
  return {
    from,
    network: networkOf(row.sourceIp),
    passed: dmarcPassed(row),
    forwardingReason: reason ? { type: reason.type!.toLowerCase(), comment: reason.comment } : null,
    alignedSignatures,
    alignedSpf,
    spfFailed: !spfResults.includes('pass') && spfResults.some((r) => r === 'fail' || r === 'softfail'),
  };
}

/** What the look-back shows about who sends the domain's own mail, and who relays it. */
interface History {
  /** Networks the domain's SPF covered: they passed SPF aligned. Its own senders, not relays. */
  spfOrigins: Set<string>;
  /** Aligned SPF domain -> IPs it passed from (SPF authorises addresses: a neighbour in the same range is not covered). */
  spfPassed: Map<string, Set<string>>;
  /** Aligned DKIM d= -> network -> selectors it passed with (relayed mail excluded). */
  dkimPassed: Map<string, Map<string, Set<string>>>;
  /** IPs that relayed the domain's mail: a forwarding reason, or DKIM passing while SPF failed there. */
  relays: Set<string>;
}

function isRelayed(f: RowFacts, h: Pick<History, 'spfOrigins'>): boolean {
  if (f.forwardingReason) return true;
  const dkimAlignedPass = f.alignedSignatures.some((s) => s.pass);
  return f.passed && dkimAlignedPass && f.spfFailed && !h.spfOrigins.has(f.network);
}

function* learnHistory(rows: ObservedRow[], facts: Map<ObservedRow, RowFacts>): Steps<History> {
  const h: History = { spfOrigins: new Set(), spfPassed: new Map(), dkimPassed: new Map(), relays: new Set() };
  const pause = pacer();
  for (const row of rows) {
    if (pause()) yield;
    const f = facts.get(row)!;
    if (!f.passed || row.count <= 0) continue;
    if (!isPass(row.spf)) continue;
    // A report without SPF auth results still says SPF passed aligned: as header_from.
    const spfPass = f.alignedSpf.some((s) => s.pass) ? f.alignedSpf.filter((s) => s.pass) : [{ domain: f.from, pass: true }];
    for (const s of spfPass) {
      h.spfOrigins.add(f.network);
      let ips = h.spfPassed.get(s.domain);
      if (!ips) h.spfPassed.set(s.domain, (ips = new Set()));
      ips.add(row.sourceIp);
    }
  }
  for (const row of rows) {
    if (pause()) yield;
    const f = facts.get(row)!;
    if (row.count <= 0) continue;
    if (isRelayed(f, h)) {
      h.relays.add(row.sourceIp);
      continue;
    }
    if (!f.passed || !isPass(row.dkim)) continue;
    for (const s of f.alignedSignatures) {
      if (!s.pass) continue;
      let byNetwork = h.dkimPassed.get(s.domain);
      if (!byNetwork) h.dkimPassed.set(s.domain, (byNetwork = new Map()));
      let selectors = byNetwork.get(f.network);
      if (!selectors) byNetwork.set(f.network, (selectors = new Set()));
      if (s.selector) selectors.add(s.selector);
    }
  }
  return h;
}

const signatureName = (s: { domain: string; selector: string | null }) => `d=${s.domain}${s.selector ? ` s=${s.selector}` : ''}`;

/** The class of one row and why, in words that name the identity behind it. */
function classOf(row: ObservedRow, f: RowFacts, h: History, rules: SourceRules): [SourceClass, string] {
  // Allowlists match every domain the row signed or was checked as, pass or
  // fail: a listed sender whose signing broke is exactly what must count.
  const verdict = rules.verdictFor(row.sourceIp, namedDomains(row.authDkim), namedDomains(row.authSpf));
  if (verdict?.verdict === 'abuse') return ['unauthenticated', `marked as abuse by an operator (${verdict.because})`];
  if (verdict) return ['authorised', verdict.because];

  if (f.forwardingReason) {
    const { type, comment } = f.forwardingReason;
    return ['forwarded', `the receiver reports it as ${type.replace(/_/g, ' ')}${comment ? ` (${comment})` : ''}: relayed mail, shown but not counted as ${f.from}'s own`];
  }

  if (f.passed) {
    const dkimPass = f.alignedSignatures.filter((s) => s.pass);
    if (isRelayed(f, h)) {
      return [
        'forwarded',
        `passes DKIM as ${f.from} (${dkimPass.map(signatureName).join(', ')}) while SPF fails for ${row.sourceIp}, an IP ${f.from}'s SPF never covered: relayed by a forwarder or mailing list (or a sender of yours missing from SPF)`,
      ];
    }
    const as = [
      ...(isPass(row.dkim) ? dkimPass.map((s) => `DKIM ${signatureName(s)}`) : []),
      ...(isPass(row.spf) ? f.alignedSpf.filter((s) => s.pass).map((s) => `SPF ${s.domain}`) : []),
    ];
    return ['authorised', `authenticates as ${f.from}${as.length > 0 ? ` (${as.join(', ')})` : ''}: passes DMARC`];
  }

  const ourSignatures = f.alignedSignatures.filter((s) => !s.pass);
  if (ourSignatures.length > 0 && h.relays.has(row.sourceIp) && !h.spfOrigins.has(f.network)) {
    return [
      'forwarded',
      `${row.sourceIp} relays ${f.from}'s mail (seen forwarding it in the look-back); its DKIM signature (${ourSignatures.map(signatureName).join(', ')}) broke in transit`,
    ];
  }
  for (const s of ourSignatures) {
    const selectors = h.dkimPassed.get(s.domain)?.get(f.network);
    if (!selectors) continue;
    const before = [...selectors].sort();
    return [
      'authorised',
      `signed as ${f.from} (${signatureName(s)}), an identity that passed DMARC from ${f.network} in the look-back${
        before.length > 0 && !(s.selector && selectors.has(s.selector)) ? ` with selector ${before.join(', ')}` : ''
      }; the signature now fails: an authorised sender whose DKIM broke`,
    ];
  }
  for (const s of f.alignedSpf.filter((x) => !x.pass)) {
    if (!h.spfPassed.get(s.domain)?.has(row.sourceIp)) continue;
    return [
      'authorised',
      `sends as ${s.domain}, which passed SPF aligned from ${row.sourceIp} in the look-back; SPF now fails there: an authorised sender the SPF record no longer covers`,
    ];
  }

  const others = [...authenticatedDomains(row.authDkim).map((d) => `dkim:${d}`), ...authenticatedDomains(row.authSpf).map((d) => `spf:${d}`)];
  if (others.length > 0) {
    const shared = h.spfOrigins.has(f.network) || [...h.dkimPassed.values()].some((byNetwork) => byNetwork.has(f.network));
    return [
      'unaligned',
      `fails DMARC but authenticates as ${others.join(', ')} (not aligned with ${f.from})${
        shared ? `; ${f.network} also sends ${f.from}'s authorised mail, so this is a shared provider: another tenant there (or spoofing signed as one), or an account of yours without aligned DKIM` : ''
      }`,
    ];
  }
  if (ourSignatures.length > 0) {
    return [
      'unauthenticated',
      `signed as ${f.from} (${ourSignatures.map(signatureName).join(', ')}) but the signature fails, and nothing from ${f.network} passed as ${f.from} in the look-back: forged, or a sender that never worked`,
    ];
  }
  return ['unauthenticated', 'fails DKIM and SPF: spoofing or a broken sender'];
}

interface SourceAccumulator {
  summary: SourceSummary;
  days: Set<number>;
  /** Messages per reason: the source shows the reason behind most of its mail. */
  reasons: Map<string, number>;
}

/** Every source, and which one each row belongs to. */
export interface Classification {
  sources: SourceSummary[];
  /** The source (and so the class) of a row given to classifyRows; undefined for any other row. */
  sourceOf(row: ObservedRow): SourceSummary | undefined;
}

/**
 * Classes every row and groups rows into sources: the same IP and
 * authenticated domains (the source key) in the same class. `inWindow` says
 * which rows count for the stage's own figures; every row counts for
 * classing, because a sender's history is what tells an authorised sender
 * that broke from a spoofer. `unalignedBlockingMessages`: an unaligned source
 * with at least this much mail in the look-back holds the domain, from the
 * first report that shows it.
 */
export function classifyRows(
  rows: ObservedRow[],
  inWindow: (row: ObservedRow) => boolean,
  rules: SourceRules,
  unalignedBlockingMessages: number,
): Classification {
  return runSteps(classifyRowsInSteps(rows, inWindow, rules, unalignedBlockingMessages));
}

/** classifyRows() with a pause every STEP_ROWS rows of each pass (src/engine/steps.ts). */
export function* classifyRowsInSteps(
  rows: ObservedRow[],
  inWindow: (row: ObservedRow) => boolean,
  rules: SourceRules,
  unalignedBlockingMessages: number,
): Steps<Classification> {
  const pause = pacer();
  const facts = new Map<ObservedRow, RowFacts>();
  const receiver = yield* learnReceiverAlignment(rows);
  for (const row of rows) {
    facts.set(row, factsOf(row, receiver));
    if (pause()) yield;
  }
  const history = yield* learnHistory(rows, facts);

  const sources = new Map<string, SourceAccumulator>();
  const ofRow = new Map<ObservedRow, SourceSummary>();
  for (const row of rows) {
    if (pause()) yield;
    const [cls, reason] = classOf(row, facts.get(row)!, history, rules);
    const key = sourceKey(row);
    const id = `${cls}\u0000${key}`;
    let acc = sources.get(id);
    if (!acc) {
      acc = {
        summary: {
          key,
          ip: row.sourceIp,
          dkimDomains: authenticatedDomains(row.authDkim),
          spfDomains: authenticatedDomains(row.authSpf),
          class: cls,
          classReason: reason,
          messages: 0,
          passed: 0,
          lookbackMessages: 0,
          lookbackPassed: 0,
          daysSeen: 0,
          blocking: false,
        },
        days: new Set(),
        reasons: new Map(),
      };
      sources.set(id, acc);
    }
    const s = acc.summary;
    const passed = dmarcPassed(row) ? row.count : 0;
    s.lookbackMessages += row.count;
    s.lookbackPassed += passed;
    if (inWindow(row)) {
      s.messages += row.count;
      s.passed += passed;
    }
    if (row.count > 0) for (const day of daysCovered(row.begin, row.end)) acc.days.add(day);
    acc.reasons.set(reason, (acc.reasons.get(reason) ?? 0) + row.count);
    ofRow.set(row, s);
  }

  const summaries: SourceSummary[] = [];
  for (const { summary, days, reasons } of sources.values()) {
    summary.daysSeen = days.size;
    summary.classReason = [...reasons.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    summary.blocking = summary.class === 'unaligned' && summary.lookbackMessages >= unalignedBlockingMessages;
    summaries.push(summary);
    if (pause()) yield;
  }
  return { sources: summaries, sourceOf: (row) => ofRow.get(row) };
}

/** The sources alone (see classifyRows). */
export function classifySources(
  rows: ObservedRow[],
  inWindow: (row: ObservedRow) => boolean,
  rules: SourceRules,
  unalignedBlockingMessages: number,
): SourceSummary[] {
  return classifyRows(rows, inWindow, rules, unalignedBlockingMessages).sources;
}

export function percent(rate: number): string {
  const value = rate * 100;
  return `${value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(value < 1 ? 2 : 1)}%`;
}
