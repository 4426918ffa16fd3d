/**
 * Realistic report traffic for scenario tests: several reporters with their
 * shares of the mail and their own delays (one on a CET day), senders whose
 * mail passes, breaks, forwards or spoofs day by day, each report with the
 * instant it would arrive. The test world (test/helpers/world.ts) delivers
 * them through the real ingest at that instant and ticks the real engine at
 * the daemon's hours.
 */
import { DAY_MS, type Delivery as WorldDelivery } from './world.js';

export interface TrafficReporter {
  org: string;
  /** Share of the domain's mail this receiver sees. */
  share: number;
  /** Hours after its period ends that its report arrives. */
  delayHours: number;
  /** Its report day starts at UTC+offset (CET: 1): the period straddles two UTC days. */
  utcOffsetHours?: number;
  /** Days (offsets from the start) it sends nothing for. */
  silentDays?: (day: number) => boolean;
  /** It re-sends each report under a new report id this many hours after the first. */
  resendAfterHours?: number;
}

export interface TrafficRow {
  ip: string;
  count: number;
  headerFrom: string;
  dkim: 'pass' | 'fail';
  spf: 'pass' | 'fail';
  dkimDomain?: string;
  dkimResult?: 'pass' | 'fail';
  spfDomain?: string;
  spfResult?: 'pass' | 'fail' | 'softfail';
  /** policy_evaluated/reason type: forwarded, mailing_list, trusted_forwarder, local_policy. */
  reason?: string;
  /** The DKIM selector (a key rotation changes it); s1 when absent. */
  selector?: string;
}

/** The domain's mail on day `day` (offset from the start), before it is split between reporters. */
export type DailyMail = (day: number) => TrafficRow[];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export function reportXml(org: string, reportId: string, domain: string, begin: number, end: number, rows: TrafficRow[]): string {
  const records = rows
    .filter((r) => r.count > 0)
    .map(
      (r) => `<record><row><source_ip>${r.ip}</source_ip><count>${r.count}</count><policy_evaluated><disposition>none</disposition><dkim>${r.dkim}</dkim><spf>${r.spf}</spf>${r.reason ? `<reason><type>${r.reason}</type></reason>` : ''}</policy_evaluated></row>
<identifiers><header_from>${esc(r.headerFrom)}</header_from></identifiers>
<auth_results>${r.dkimDomain ? `<dkim><domain>${r.dkimDomain}</domain><selector>${r.selector ?? 's1'}</selector><result>${r.dkimResult ?? r.dkim}</result></dkim>` : ''}<spf><domain>${r.spfDomain ?? r.headerFrom}</domain><result>${r.spfResult ?? r.spf}</result></spf></auth_results></record>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<feedback><report_metadata><org_name>${esc(org)}</org_name><email>noreply@${esc(org)}</email><report_id>${esc(reportId)}</report_id><date_range><begin>${begin}</begin><end>${end}</end></date_range></report_metadata>
<policy_published><domain>${domain}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><pct>100</pct></policy_published>
${records}
</feedback>
`;
}

/** Mail that passes DMARC from the domain's own servers. */
export const own = (domain: string, ip: string, count: number): TrafficRow => ({ ip, count, headerFrom: domain, dkim: 'pass', spf: 'pass', dkimDomain: domain, spfDomain: domain });
/** The same server with its signing broken: DKIM for the domain fails, SPF for it fails too. */
export const broken = (domain: string, ip: string, count: number): TrafficRow => ({
  ip,
  count,
  headerFrom: domain,
  dkim: 'fail',
  spf: 'fail',
  dkimDomain: domain,
  dkimResult: 'fail',
  spfDomain: domain,
  spfResult: 'fail',
});
/** Spoofing: fails everything. */
export const spoof = (domain: string, ip: string, count: number): TrafficRow => ({ ip, count, headerFrom: domain, dkim: 'fail', spf: 'fail', spfDomain: domain, spfResult: 'fail' });

/** `count` split by share, rounded, at least 0. */
const part = (count: number, share: number) => Math.max(0, Math.round(count * share));

/** A report on its way (see the world's Delivery), with the reporter that sends it. */
export interface Delivery extends WorldDelivery {
  org: string;
}

/** Every report the reporters send for `days` days of `mail`, each with the instant it arrives. */
export function trafficFor(domain: string, start: Date, days: number, reporters: TrafficReporter[], mail: DailyMail): Delivery[] {
  const out: Delivery[] = [];
  for (let d = 0; d < days; d++) {
    const rows = mail(d);
    for (const r of reporters) {
      if (r.silentDays?.(d)) continue;
      const offset = (r.utcOffsetHours ?? 0) * 3600_000;
      const beginMs = start.getTime() + d * DAY_MS - offset;
      const begin = beginMs / 1000;
      const end = begin + 86_399;
      const day = new Date(start.getTime() + d * DAY_MS).toISOString().slice(0, 10);
      const share = rows.map((row) => ({ ...row, count: part(row.count, r.share) }));
      const arrives = (end + 1) * 1000 + r.delayHours * 3600_000;
      out.push({ at: arrives, org: r.org, xml: reportXml(r.org, `${r.org}-${domain}-${day}`, domain, begin, end, share), source: `${r.org}/${domain}/${day}` });
      if (r.resendAfterHours !== undefined) {
        out.push({
          at: arrives + r.resendAfterHours * 3600_000,
          org: r.org,
          xml: reportXml(r.org, `${r.org}-${domain}-${day}-resent`, domain, begin, end, share),
          source: `${r.org}/${domain}/${day}/resent`,
        });
      }
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

/** The usual mix of receivers: a big one fast, a CET one, a slow one, a small one. */
export const REPORTERS: TrafficReporter[] = [
  { org: 'google.com', share: 0.45, delayHours: 6 },
  { org: 'Yahoo', share: 0.2, delayHours: 20 },
  { org: 'Mail.Ru', share: 0.15, delayHours: 10, utcOffsetHours: 1 },
  { org: 'Enterprise Outlook', share: 0.12, delayHours: 30 },
  { org: 'comcast.net', share: 0.08, delayHours: 16 },
];
