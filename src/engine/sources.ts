/**
 * Sending sources and their classes. Raw DMARC failure on an attacked domain
 * is mostly spoofing, the very mail enforcement should stop; what must not
 * fail is the operator's own mail. So rows are grouped by who sent them (the
 * IP and the domains it authenticated as) and each source is classed as
 * authorised, legitimate-looking but unaligned, or unauthenticated.
 */
import { BlockList, isIP } from 'node:net';
import { daysCovered } from './window.js';
import type { ObservedRow, SourceClass, SourceRule, SourceSummary } from './types.js';

/** A source that passed DMARC on more than this share of its mail is the operator's own. */
export const AUTHORISED_PASS_SHARE = 0.5;
/** An unaligned sender seen on at least this many days is steady, not a one-off. */
export const UNALIGNED_MIN_DAYS = 3;

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
  if (family === 0) throw new Error(`"${value}" is not an IP address or CIDR`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (prefix === undefined) {
    list.addAddress(address!, type);
    return;
  }
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > (family === 6 ? 128 : 32)) throw new Error(`"${value}" has an invalid prefix length`);
  list.addSubnet(address!, bits, type);
}

const isPass = (result: string | null) => result === 'pass';
const dmarcPassed = (row: ObservedRow) => isPass(row.dkim) || isPass(row.spf);

function authenticatedDomains(entries: ObservedRow['authDkim']): string[] {
  const domains = new Set<string>();
  for (const e of entries) if (isPass(e.result) && e.domain) domains.add(e.domain.toLowerCase());
  return [...domains].sort();
}

/** Every domain the row names in auth results, pass or not: allowlists match on these. */
function namedDomains(entries: ObservedRow['authDkim']): string[] {
  return [...new Set(entries.map((e) => e.domain?.toLowerCase()).filter((d): d is string => !!d))].sort();
}

/** The source a row was sent by: its IP and the domains it authenticated as. */
export function sourceKey(row: ObservedRow): string {
  const dkim = authenticatedDomains(row.authDkim).map((d) => `dkim:${d}`);
  const spf = authenticatedDomains(row.authSpf).map((d) => `spf:${d}`);
  return [row.sourceIp, ...dkim, ...spf].join(' ');
}

export { dmarcPassed };

interface SourceAccumulator {
  key: string;
  ip: string;
  dkimDomains: string[];
  spfDomains: string[];
  namedDkim: Set<string>;
  namedSpf: Set<string>;
  messages: number;
  passed: number;
  lookbackMessages: number;
  lookbackPassed: number;
  days: Set<number>;
}

/**
 * Groups rows into sources and classes them. `inWindow` says which rows count
 * for the stage's own figures; every row counts for classing, because a
 * sender's history is what tells an authorised sender that broke from a
 * spoofer.
 */
export function classifySources(
  rows: ObservedRow[],
  inWindow: (row: ObservedRow) => boolean,
  rules: SourceRules,
  unalignedBlockingMessages: number,
): SourceSummary[] {
  const sources = new Map<string, SourceAccumulator>();
  const ipHistory = new Map<string, { messages: number; passed: number }>();
  for (const row of rows) {
    const dkimDomains = authenticatedDomains(row.authDkim);
    const spfDomains = authenticatedDomains(row.authSpf);
    const key = sourceKey(row);
    let acc = sources.get(key);
    if (!acc) {
      acc = {
        key,
        ip: row.sourceIp,
        dkimDomains,
        spfDomains,
        namedDkim: new Set(),
        namedSpf: new Set(),
        messages: 0,
        passed: 0,
        lookbackMessages: 0,
        lookbackPassed: 0,
        days: new Set(),
      };
      sources.set(key, acc);
    }
    for (const d of namedDomains(row.authDkim)) acc.namedDkim.add(d);
    for (const d of namedDomains(row.authSpf)) acc.namedSpf.add(d);
    const passed = dmarcPassed(row) ? row.count : 0;
    acc.lookbackMessages += row.count;
    acc.lookbackPassed += passed;
    if (row.count > 0) for (const day of daysCovered(row.begin, row.end)) acc.days.add(day);
    if (inWindow(row)) {
      acc.messages += row.count;
      acc.passed += passed;
    }
    const ip = ipHistory.get(row.sourceIp) ?? { messages: 0, passed: 0 };
    ip.messages += row.count;
    ip.passed += passed;
    ipHistory.set(row.sourceIp, ip);
  }

  return [...sources.values()].map((acc) => {
    const summary: SourceSummary = {
      key: acc.key,
      ip: acc.ip,
      dkimDomains: acc.dkimDomains,
      spfDomains: acc.spfDomains,
      class: 'unauthenticated',
      classReason: '',
      messages: acc.messages,
      passed: acc.passed,
      lookbackMessages: acc.lookbackMessages,
      lookbackPassed: acc.lookbackPassed,
      daysSeen: acc.days.size,
      blocking: false,
    };
    const [cls, reason] = classOf(acc, ipHistory.get(acc.ip)!, rules);
    summary.class = cls;
    summary.classReason = reason;
    summary.blocking = cls === 'unaligned' && acc.days.size >= UNALIGNED_MIN_DAYS && acc.lookbackMessages >= unalignedBlockingMessages;
    return summary;
  });
}

function classOf(acc: SourceAccumulator, ip: { messages: number; passed: number }, rules: SourceRules): [SourceClass, string] {
  // Allowlists match every domain the source signed or was checked as, pass
  // or fail: a listed sender whose signing broke is exactly what must count.
  const verdict = rules.verdictFor(acc.ip, [...acc.namedDkim], [...acc.namedSpf]);
  if (verdict?.verdict === 'abuse') return ['unauthenticated', `marked as abuse by an operator (${verdict.because})`];
  if (verdict) return ['authorised', verdict.because];
  // The IP's whole history decides, not this key's: when a sender's DKIM
  // breaks, its key changes, but its IP still shows it used to pass.
  if (ip.messages > 0 && ip.passed / ip.messages > AUTHORISED_PASS_SHARE) {
    return ['authorised', `passes DMARC on ${percent(ip.passed / ip.messages)} of its mail from ${acc.ip}`];
  }
  const otherDomains = [...acc.dkimDomains.map((d) => `dkim:${d}`), ...acc.spfDomains.map((d) => `spf:${d}`)];
  if (otherDomains.length > 0) {
    return ['unaligned', `fails DMARC but authenticates as ${otherDomains.join(', ')} (not aligned with the domain)`];
  }
  return ['unauthenticated', 'fails DKIM and SPF: spoofing or a broken sender'];
}

export function percent(rate: number): string {
  const value = rate * 100;
  return `${value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(value < 1 ? 2 : 1)}%`;
}
