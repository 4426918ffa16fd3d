/**
 * Realistic report traffic for scenario tests: several reporters with their
 * shares of the mail and their own delays (one on a CET day), senders whose
 * mail passes, breaks, forwards or spoofs day by day, and a world that
 * delivers each report through the real ingest at the instant it would have
 * arrived, then ticks the real engine at the daemon's hours. Nothing of the
 * engine is stubbed: the store is a real SQLite file, the zone the in-memory
 * provider.
 */
import { join } from 'node:path';
import { MemoryDns } from '../../src/engine/memory-dns.js';
import { runTick, type DomainTickResult } from '../../src/engine/tick.js';
import { enrollDomains } from '../../src/fleet/index.js';
import type { Plan } from '../../src/plans/index.js';
import { ingestInput, type IngestResult } from '../../src/reports/index.js';
import { openSqliteStore, type Store } from '../../src/store/open.js';
import { tempStore } from './cli.js';

export const DAY_MS = 86_400_000;

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

export interface Delivery {
  at: number;
  org: string;
  xml: string;
  source: string;
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

export interface World {
  store: Store;
  dns: MemoryDns;
  /** Ticks at each hour of each day; delivers reports as they arrive; returns every result with its time. */
  run(fromDay: number, toDay: number, onTick?: (now: Date, results: DomainTickResult[]) => Promise<void> | void): Promise<Array<{ at: Date; result: DomainTickResult }>>;
  ingested: IngestResult[];
  close(): Promise<void>;
}

/**
 * A store fed `deliveries` as they arrive (from `start`), with `domains`
 * enrolled on `plan` on day `enrolDay` (so reporters already have a history),
 * each starting from `records[domain]` when given (enrolment starts at the
 * stage the live record matches), ticked at `tickHours` UTC, minute 17.
 */
export async function world(opts: {
  domains: string[];
  plan: Plan;
  start: Date;
  deliveries: Delivery[];
  tickHours: number[];
  enrolDay?: number;
  records?: Record<string, string>;
}): Promise<World> {
  const { dir, db } = tempStore('dmarc-rollout-scenario-');
  const store = await openSqliteStore(db);
  const dns = new MemoryDns();
  for (const [domain, record] of Object.entries(opts.records ?? {})) dns.set(`_dmarc.${domain}`, { txt: [record], ttl: 300 });
  const enrolDay = opts.enrolDay ?? 0;
  let enrolled = false;
  const enrol = async (now: Date) => {
    const res = await enrollDomains(store, {
      inputs: opts.domains.map((text) => ({ text, origin: 'test' })),
      plan: opts.plan,
      provider: 'memory',
      providers: { names: ['memory'], get: () => dns },
      reportAddress: 'dmarc-reports@scenario.example',
      actor: 'test',
      now,
    } as Parameters<typeof enrollDomains>[1]);
    if (res.refused.length > 0) throw new Error(`enrolment refused: ${res.refused.map((r) => r.reason).join('; ')}`);
    enrolled = true;
  };
  let next = 0;
  const ingested: IngestResult[] = [];
  return {
    store,
    dns,
    ingested,
    async run(fromDay, toDay, onTick) {
      const log: Array<{ at: Date; result: DomainTickResult }> = [];
      for (let d = fromDay; d < toDay; d++) {
        for (const hour of opts.tickHours) {
          const now = new Date(opts.start.getTime() + d * DAY_MS + hour * 3600_000 + 17 * 60_000);
          while (next < opts.deliveries.length && opts.deliveries[next]!.at <= now.getTime()) {
            const delivery = opts.deliveries[next++]!;
            const at = new Date(delivery.at);
            ingested.push(await ingestInput(store.db, { bytes: Buffer.from(delivery.xml) }, delivery.source, { rejectedDir: join(dir, 'rejected'), now: () => at }));
          }
          if (!enrolled) {
            if (d < enrolDay) continue;
            await enrol(now);
          }
          const results = await runTick({ store, now, providerFor: () => dns, loadPlan: () => opts.plan });
          for (const result of results) log.push({ at: now, result });
          await onTick?.(now, results);
        }
      }
      return log;
    },
    close: () => store.close(),
  };
}
