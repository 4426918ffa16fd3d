/**
 * One enrolled domain with a very large look-back, written by SQL through
 * the store's own rollup functions (RollupBatch, applyRollups), as a 400 MB
 * report leaves it: 28 days of three reporters' ordinary reports (the
 * domain's two servers and a spoofer), and on one day a big reporter's report
 * with `entries` distinct sources, every class the engine knows among them
 * (its own mail from many IPs, a sender whose DKIM broke, forwarders, an
 * unaligned ESP, spoofing), some of it from a subdomain, and some mail with
 * the domain as header_from under another domain's record (the engine's
 * second read). Ingesting a report that big takes minutes; this takes
 * seconds, and each entry is what ingest would have rolled up.
 */
import { applyRollups, markRollupChange, RollupBatch, type RollupRecord } from '../../src/store/rollups.js';
import type { Store } from '../../src/store/open.js';
import { domainRow } from './domain-rows.js';

const DAY = 86_400;
export const LARGE_DOMAIN_RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example';

export interface LargeDomain {
  domain: string;
  /** Rollup entries written for the domain (both reads together). */
  entries: number;
}

/** `now` at noon of a UTC day; the domain's stage window began `windowDays` ago (default 10). */
export async function writeLargeDomain(store: Store, opts: { domain: string; now: Date; entries: number; windowDays?: number; otherRecord?: string }): Promise<LargeDomain> {
  const { domain, now } = opts;
  const today = Math.floor(now.getTime() / 1000 / DAY);
  const windowStart = new Date((today - (opts.windowDays ?? 10)) * DAY * 1000);
  await store.db
    .insertInto('domains')
    .values(domainRow(domain, new Date(windowStart.getTime() - 40 * DAY * 1000), { stage_since: windowStart.toISOString(), window_start: windowStart.toISOString(), last_record: LARGE_DOMAIN_RECORD }))
    .execute();
  const other = opts.otherRecord ?? `parent-of-${domain}`;
  let written = 0;
  let reportNo = 0;
  const report = async (org: string, policyDomain: string, day: number, records: RollupRecord[]) => {
    const begin = day * DAY;
    const end = begin + DAY - 1;
    reportNo += 1;
    await store.db
      .insertInto('reports')
      .values({
        org,
        report_id: `${org}-${policyDomain}-${day}-${reportNo}`,
        domain: policyDomain,
        begin,
        end,
        content_hash: `large-domain-${domain}-${reportNo}`,
        counted: 1,
        flag: null,
        rows_digest: null,
        adkim: 'r',
        aspf: 'r',
        duplicates: 0,
        source: 'test:large-domain',
        container: null,
        repaired: null,
        metadata: '{}',
        // Arrived the morning after its day.
        received_at: new Date((end + 6 * 3600) * 1000).toISOString(),
        rows_pruned_at: null,
        staged_at: null,
      })
      .execute();
    const batch = new RollupBatch({ org, domain: policyDomain, begin, end, adkim: 'r', aspf: 'r' });
    for (let i = 0; i < records.length; i++) {
      batch.add(records[i]!);
      if (batch.size >= 5_000 || i === records.length - 1) {
        const taken = batch.take();
        written += taken.length;
        await applyRollups(store.db, taken, 1);
      }
    }
  };
  const pass = (ip: string, count: number, from = domain): RollupRecord => ({
    source_ip: ip,
    count,
    header_from: from,
    dkim: 'pass',
    spf: 'pass',
    reasons: [],
    auth_dkim: [{ domain: from, selector: 's1', result: 'pass' }],
    auth_spf: [{ domain: from, result: 'pass' }],
  });
  const spoof = (ip: string, count: number, from = domain): RollupRecord => ({
    source_ip: ip,
    count,
    header_from: from,
    dkim: 'fail',
    spf: 'fail',
    reasons: [],
    auth_dkim: [],
    auth_spf: [{ domain: from, result: 'fail' }],
  });
  for (let d = 28; d >= 1; d--) {
    for (const org of ['google.com', 'outlook.com', 'yahoo.com']) {
      await report(org, domain, today - d, [pass('192.0.2.10', 120), pass('192.0.2.11', 40), spoof(`203.0.113.${d}`, 3)]);
    }
  }
  // The big report, on the day before yesterday.
  const big: RollupRecord[] = [];
  for (let i = 0; big.length < opts.entries; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const from = i % 11 === 0 ? `mail.${domain}` : domain;
    switch (i % 7) {
      case 0:
      case 1:
        big.push(pass(ip, 1 + (i % 13), from));
        break;
      case 2:
        // Its own server's signature broke: the same /24 passed with d=domain in the look-back.
        big.push({ ...pass(ip, 2, from), dkim: 'fail', spf: 'fail', auth_dkim: [{ domain: from, selector: 's1', result: 'fail' }], auth_spf: [{ domain: from, result: 'fail' }] });
        break;
      case 3:
        big.push({ ...pass(ip, 1, from), spf: 'fail', auth_spf: [{ domain: 'list.example', result: 'fail' }], reasons: i % 2 ? [{ type: 'mailing_list', comment: null }] : [] });
        break;
      case 4:
        big.push({ ...spoof(ip, 4, from), auth_dkim: [{ domain: 'esp.example', selector: 'k1', result: 'pass' }], auth_spf: [{ domain: 'bounce.esp.example', result: 'pass' }] });
        break;
      default:
        big.push(spoof(ip, 1 + (i % 5), from));
    }
  }
  const underOther = Math.floor(opts.entries / 10);
  await report('big.example', domain, today - 2, big.slice(0, big.length - underOther));
  // Mail from the domain under another domain's record (the receiver applied that one): the second read finds it.
  await report('big.example', other, today - 2, big.slice(big.length - underOther));
  await markRollupChange(store.db, [domain, other, `mail.${domain}`]);
  return { domain, entries: written };
}
