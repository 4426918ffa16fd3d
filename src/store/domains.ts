/**
 * Queries on enrolled domains and their stage history. Functions take the
 * kysely handle (or a transaction) so callers decide the transaction bounds.
 */
import type { Kysely, Transaction } from 'kysely';
import { canonicalName } from '../names.js';
import type { Database, DomainRow, DomainUpdate, NewDomain, NewStageChange, StageChange } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;

/** SQLite allows 32766 bound parameters; stay far below it for any backend. */
const IN_CHUNK = 500;

export async function getDomain(db: Db, domain: string): Promise<DomainRow | undefined> {
  return db.selectFrom('domains').selectAll().where('domain', '=', domain).executeTakeFirst();
}

/**
 * Every enrolled domain by name, `chunk` rows a read by key, a chunk at a
 * time: a tick over a large fleet holds one chunk of rows, not the fleet's.
 */
export async function* domainsInChunks(db: Db, chunk = 500): AsyncGenerator<DomainRow[]> {
  for (let after: string | null = null; ; ) {
    let read = db.selectFrom('domains').selectAll().orderBy('domain').limit(chunk);
    if (after !== null) read = read.where('domain', '>', after);
    const rows = await read.execute();
    if (rows.length > 0) yield rows;
    if (rows.length < chunk) return;
    after = rows.at(-1)!.domain;
  }
}

/** Every enrolled domain, ordered by name. */
export async function listDomains(db: Db): Promise<DomainRow[]> {
  return db.selectFrom('domains').selectAll().orderBy('domain').execute();
}

/**
 * `domain` and the enrolled names between it and each of `headerFroms` (a
 * subdomain of `domain` and its parents up to it): all the engine's
 * attribution of a row to `domain` or to an enrolled subdomain looks at
 * (src/engine/metrics.ts attributeRow), read by name instead of reading the
 * whole fleet to judge one domain (1.6 s at 100,000 domains).
 */
export async function enrolledBetween(db: Db, headerFroms: ReadonlyArray<string | null>, domain: string): Promise<Set<string>> {
  const names = new Set<string>();
  for (const header of new Set(headerFroms)) {
    if (header === null) continue;
    for (let name = canonicalName(header); name.endsWith(`.${domain}`); name = name.slice(name.indexOf('.') + 1)) names.add(name);
  }
  return new Set([domain, ...(await findDomains(db, [...names])).keys()]);
}

/** The subset of `names` already enrolled, with their rows. */
export async function findDomains(db: Db, names: string[]): Promise<Map<string, DomainRow>> {
  const found = new Map<string, DomainRow>();
  for (let i = 0; i < names.length; i += IN_CHUNK) {
    const rows = await db
      .selectFrom('domains')
      .selectAll()
      .where('domain', 'in', names.slice(i, i + IN_CHUNK))
      .execute();
    for (const row of rows) found.set(row.domain, row);
  }
  return found;
}

export async function insertDomain(db: Db, row: NewDomain): Promise<void> {
  await db.insertInto('domains').values(row).execute();
}

export async function appendStageChange(db: Db, change: NewStageChange): Promise<void> {
  await db.insertInto('stage_history').values(change).execute();
}

/** A domain's stage changes, oldest first. */
export async function stageHistory(db: Db, domain: string): Promise<StageChange[]> {
  return db.selectFrom('stage_history').selectAll().where('domain', '=', domain).orderBy('id').execute();
}

export async function updateDomain(db: Db, domain: string, patch: DomainUpdate): Promise<void> {
  await db.updateTable('domains').set(patch).where('domain', '=', domain).execute();
}
