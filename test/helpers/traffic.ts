/**
 * Realistic report traffic for scenario tests: several reporters with their
 * shares of the mail and their own delays (one on a CET day), senders whose
 * mail passes, breaks, forwards or spoofs day by day, each report with the
 * instant it would arrive. The test world (test/helpers/world.ts) delivers
 * them through the real ingest at that instant and ticks the real engine at
 * the daemon's hours.
 */
import { aggregateReportXml, type GeneratedRow } from './reports.js';
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

/** A row of a day's mail: the generated-report row (reports.ts), with forwarders' reasons and DKIM selectors. */
export type TrafficRow = GeneratedRow;

/** The domain's mail on day `day` (offset from the start), before it is split between reporters. */
export type DailyMail = (day: number) => TrafficRow[];

/** A report as `org` sends it for [begin, end] (epoch seconds), rows without mail left out. */
export function reportXml(org: string, reportId: string, domain: string, begin: number, end: number, rows: TrafficRow[]): string {
  const day = new Date(begin * 1000).toISOString().slice(0, 10);
  return aggregateReportXml({ reporter: org, reportId, domain, day, range: { begin, end }, rows: rows.filter((r) => r.count > 0) });
}

/** The rows of reports.ts under the scenarios' names: the domain's own mail passing, the same server broken, spoofing. */
export { cleanRow as own, brokenRow as broken, spoofRow as spoof } from './reports.js';

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
