/**
 * Reading raw report rows back: the counted copy of each report,
 * rows that a domain's record may govern (the receiver applied its record, or
 * header_from is the domain), in a time range, with what classing a sender
 * needs (the alignment modes, the receiver's override reasons, DKIM
 * selectors). Attribution to the domain
 * itself or its subdomains is the engine's job; this only narrows the read.
 * The engine and the views read the daily rollups instead (rollups.ts), which
 * give the same rows summed and outlive retention; this stays for checking
 * them against the rows (tests, bench/scale.ts).
 */
import type { Kysely } from 'kysely';
import type { ObservedRow } from './observed.js';
import type { Database } from './schema.js';

export async function loadObservedRows(
  db: Kysely<Database>,
  domain: string,
  range: { fromEpoch: number; toEpoch: number },
): Promise<ObservedRow[]> {
  const base = () =>
    db
      .selectFrom('report_rows as rr')
      .innerJoin('reports as r', 'r.id', 'rr.report')
      .select([
        'r.org',
        'r.begin',
        'r.end',
        'r.domain as policy_domain',
        'r.adkim',
        'r.aspf',
        'rr.source_ip',
        'rr.count',
        'rr.header_from',
        'rr.dkim',
        'rr.spf',
        'rr.disposition',
        'rr.reasons',
        'rr.auth_dkim',
        'rr.auth_spf',
      ])
      .where('r.counted', '=', 1)
      .where('r.end', '>=', range.fromEpoch)
      .where('r.begin', '<=', range.toEpoch);
  // Two indexed reads rather than one OR across the two tables, which no index
  // serves (it scanned every stored row once per domain, per tick and per page).
  const underItsRecord = await base().where('r.domain', '=', domain).execute();
  const fromItsName = await base().where('rr.header_from', '=', domain).where('r.domain', '!=', domain).execute();
  const rows = [...underItsRecord, ...fromItsName];
  return rows.map((row) => ({
    reporter: row.org,
    begin: Number(row.begin),
    end: Number(row.end),
    policyDomain: row.policy_domain,
    sourceIp: row.source_ip,
    count: Number(row.count),
    headerFrom: row.header_from,
    dkim: row.dkim,
    spf: row.spf,
    disposition: row.disposition,
    adkim: alignmentMode(row.adkim),
    aspf: alignmentMode(row.aspf),
    reasons: overrideReasons(row.reasons),
    authDkim: dkimResults(row.auth_dkim),
    authSpf: spfResults(row.auth_spf),
  }));
}

/** `s` only when the receiver saw strict alignment; absent or anything else is relaxed (RFC 7489 6.3). */
function alignmentMode(value: string | null): 'r' | 's' {
  return value?.toLowerCase() === 's' ? 's' : 'r';
}

function overrideReasons(json: string | null): NonNullable<ObservedRow['reasons']> {
  if (!json) return [];
  const parsed = JSON.parse(json) as Array<{ type?: string | null; comment?: string | null }>;
  return parsed.map((r) => ({ type: r.type?.toLowerCase() ?? null, comment: r.comment ?? null }));
}

function dkimResults(json: string | null): ObservedRow['authDkim'] {
  if (!json) return [];
  const parsed = JSON.parse(json) as Array<{ domain?: string | null; selector?: string | null; result?: string | null }>;
  return parsed.map((r) => ({ domain: r.domain ?? null, selector: r.selector ?? null, result: r.result ?? null }));
}

function spfResults(json: string | null): ObservedRow['authSpf'] {
  if (!json) return [];
  const parsed = JSON.parse(json) as Array<{ domain?: string | null; result?: string | null }>;
  return parsed.map((r) => ({ domain: r.domain ?? null, result: r.result ?? null }));
}
