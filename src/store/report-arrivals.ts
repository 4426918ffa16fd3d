/**
 * What the engine needs to know whether a day's reports are all in: each
 * counted report's reporter, date range and arrival (ingest) time for a
 * domain, and the acknowledgements people gave for reporters gone quiet.
 */
import type { Kysely, Transaction } from 'kysely';
import type { ReportArrival, ReporterAcknowledgement } from './observed.js';
import type { Database } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** Counted reports under `domain`'s record that end in [fromEpoch, toEpoch], with when each was ingested. */
export async function loadReportArrivals(db: Db, domain: string, range: { fromEpoch: number; toEpoch: number }): Promise<ReportArrival[]> {
  const rows = await db
    .selectFrom('reports')
    .select(['org', 'begin', 'end', 'received_at'])
    .where('domain', '=', domain)
    .where('counted', '=', 1)
    .where('begin', '>=', range.fromEpoch - 31 * 86_400)
    .where('end', '>=', range.fromEpoch)
    .where('end', '<=', range.toEpoch)
    .execute();
  return rows.map((r) => ({ reporter: r.org, begin: Number(r.begin), end: Number(r.end), arrivedAt: Math.floor(Date.parse(r.received_at) / 1000) }));
}

export async function listReporterAcknowledgements(db: Db, domain: string): Promise<ReporterAcknowledgement[]> {
  const rows = await db.selectFrom('reporter_acknowledgements').select(['reporter', 'at', 'actor']).where('domain', '=', domain).execute();
  return rows.map((r) => ({ reporter: r.reporter, at: Math.floor(Date.parse(r.at) / 1000), actor: r.actor }));
}

export async function insertReporterAcknowledgement(
  db: Db,
  ack: { domain: string; reporter: string; at: Date; actor: string; reason: string },
): Promise<void> {
  await db.insertInto('reporter_acknowledgements').values({ ...ack, at: ack.at.toISOString() }).execute();
}
