/**
 * Builds aggregate reports as receivers send them (RFC 7489 XML), for tests
 * that need days of mail: a reporter, a day (or the receiver's own range),
 * and rows of sources. The scenario traffic (traffic.ts) is written with it
 * too.
 */

export interface GeneratedRow {
  ip: string;
  count: number;
  headerFrom: string;
  /** policy_evaluated results: pass means aligned and authenticated. */
  dkim: 'pass' | 'fail';
  spf: 'pass' | 'fail';
  /** auth_results: the DKIM d= and SPF domain the message authenticated as, with results. */
  dkimDomain?: string;
  dkimResult?: 'pass' | 'fail';
  spfDomain?: string;
  spfResult?: 'pass' | 'fail' | 'softfail';
  /** policy_evaluated/reason type: forwarded, mailing_list, trusted_forwarder, local_policy. */
  reason?: string;
  /** The DKIM selector (a key rotation changes it); s1 when absent. */
  selector?: string;
}

export interface GeneratedReport {
  reporter: string;
  /** Policy domain (the record the receiver applied). */
  domain: string;
  /** UTC day the report covers, as YYYY-MM-DD. */
  day: string;
  rows: GeneratedRow[];
  p?: string;
  pct?: number;
  /** `${reporter}-${domain}-${day}` when absent. */
  reportId?: string;
  /** The date range in epoch seconds when it is not the UTC day (a receiver on CET). */
  range?: { begin: number; end: number };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The report's date range: the whole UTC day, end at 23:59:59 as most reporters write it. */
export function dayRange(day: string): { begin: number; end: number } {
  const begin = Date.parse(`${day}T00:00:00Z`) / 1000;
  return { begin, end: begin + 86_399 };
}

export function aggregateReportXml(r: GeneratedReport): string {
  const { begin, end } = r.range ?? dayRange(r.day);
  const records = r.rows
    .map(
      (row) => `  <record>
    <row><source_ip>${row.ip}</source_ip><count>${row.count}</count>
      <policy_evaluated><disposition>none</disposition><dkim>${row.dkim}</dkim><spf>${row.spf}</spf>${row.reason ? `<reason><type>${row.reason}</type></reason>` : ''}</policy_evaluated></row>
    <identifiers><header_from>${esc(row.headerFrom)}</header_from></identifiers>
    <auth_results>${row.dkimDomain ? `<dkim><domain>${row.dkimDomain}</domain><selector>${row.selector ?? 's1'}</selector><result>${row.dkimResult ?? row.dkim}</result></dkim>` : ''}<spf><domain>${row.spfDomain ?? row.headerFrom}</domain><result>${row.spfResult ?? row.spf}</result></spf></auth_results>
  </record>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>${esc(r.reporter)}</org_name><email>noreply@${esc(r.reporter)}</email>
    <report_id>${esc(r.reportId ?? `${r.reporter}-${r.domain}-${r.day}`)}</report_id><date_range><begin>${begin}</begin><end>${end}</end></date_range></report_metadata>
  <policy_published><domain>${r.domain}</domain><adkim>r</adkim><aspf>r</aspf><p>${r.p ?? 'none'}</p><sp>${r.p ?? 'none'}</sp><pct>${r.pct ?? 100}</pct></policy_published>
${records}
</feedback>
`;
}

/** Mail that passes DMARC from the domain's own servers. */
export function cleanRow(domain: string, ip: string, count: number): GeneratedRow {
  return { ip, count, headerFrom: domain, dkim: 'pass', spf: 'pass', dkimDomain: domain, spfDomain: domain };
}

/** The same authorised server failing (DKIM broke, SPF still passes for its own bounce domain, unaligned). */
export function brokenRow(domain: string, ip: string, count: number): GeneratedRow {
  return { ip, count, headerFrom: domain, dkim: 'fail', spf: 'fail', dkimDomain: domain, dkimResult: 'fail', spfDomain: domain, spfResult: 'fail' };
}

/** A forgotten ESP: authenticates as itself, not aligned with the domain. */
export function unalignedEspRow(domain: string, ip: string, count: number, esp: string): GeneratedRow {
  return { ip, count, headerFrom: domain, dkim: 'fail', spf: 'fail', dkimDomain: esp, dkimResult: 'pass', spfDomain: `bounce.${esp}`, spfResult: 'pass' };
}

/** Spoofing: fails everything. */
export function spoofRow(domain: string, ip: string, count: number): GeneratedRow {
  return { ip, count, headerFrom: domain, dkim: 'fail', spf: 'fail', spfDomain: domain, spfResult: 'fail' };
}
