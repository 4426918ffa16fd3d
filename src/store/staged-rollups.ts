/**
 * The rollup entries of a report still being stored on SQLite (a staged
 * report, src/reports/store.ts) that has more distinct entries than ingest
 * holds in memory. A counted report's entries may reach daily_rollups only
 * in the transaction that counts it, and a big report's can be as many as
 * its rows (hundreds of thousands): summed here per report as it is read,
 * in the same short transactions as its rows, they are merged at the end by
 * SQL in key order, a slice at a time, instead of being summed again from
 * the rows inside that transaction. Nothing reads this table but the merge.
 */
import type { Kysely } from 'kysely';
import type { DailyRollupsTable, Database } from './schema.js';

type Entry = DailyRollupsTable;

/** Entries per INSERT (18 columns each: well under SQLite's parameter limit). */
const ENTRIES_PER_INSERT = 400;

const COLUMNS = [
  'key',
  'domain',
  'day',
  'reporter',
  'begin',
  'end',
  'adkim',
  'aspf',
  'source_ip',
  'header_from',
  'dkim',
  'spf',
  'reasons',
  'auth_dkim',
  'auth_spf',
  'messages',
  'records',
] as const;

/** Adds `entries` to staged report `report`'s sums. */
export async function stageRollups(db: Kysely<Database>, report: number, entries: readonly Entry[]): Promise<void> {
  const sorted = [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 0; i < sorted.length; i += ENTRIES_PER_INSERT) {
    await db
      .insertInto('staged_rollups')
      .values(sorted.slice(i, i + ENTRIES_PER_INSERT).map((e) => ({ ...e, report })))
      .onConflict((oc) =>
        oc.columns(['report', 'key']).doUpdateSet((eb) => ({
          messages: eb('staged_rollups.messages', '+', eb.ref('excluded.messages')),
          records: eb('staged_rollups.records', '+', eb.ref('excluded.records')),
        })),
      )
      .execute();
  }
}

/**
 * Adds staged report `report`'s sums to daily_rollups, in key order, `slice`
 * entries a statement, calling `between` after each (a turn of the event
 * loop). Run it inside the transaction that counts the report. Returns the
 * header_from names the entries carry (for markRollupChange).
 */
export async function mergeStagedRollups(db: Kysely<Database>, report: number, options: { slice?: number; between?: () => Promise<void> } = {}): Promise<Set<string>> {
  const slice = options.slice ?? 20_000;
  let after = '';
  for (;;) {
    // The slice's last key: the statement below then takes (after, last] by the primary key's order.
    const last = await db
      .selectFrom('staged_rollups')
      .select('key')
      .where('report', '=', report)
      .where('key', '>', after)
      .orderBy('key')
      .offset(slice - 1)
      .limit(1)
      .executeTakeFirst();
    let merge = db.selectFrom('staged_rollups').select([...COLUMNS]).where('report', '=', report).where('key', '>', after);
    if (last) merge = merge.where('key', '<=', last.key);
    await db
      .insertInto('daily_rollups')
      .columns([...COLUMNS])
      .expression(merge.orderBy('key'))
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          messages: eb('daily_rollups.messages', '+', eb.ref('excluded.messages')),
          records: eb('daily_rollups.records', '+', eb.ref('excluded.records')),
        })),
      )
      .execute();
    if (!last) break;
    after = last.key;
    await options.between?.();
  }
  const names = await db.selectFrom('staged_rollups').select('header_from').distinct().where('report', '=', report).where('header_from', 'is not', null).execute();
  return new Set(names.map((n) => n.header_from!));
}

/** Deletes staged report `report`'s sums, `slice` entries a statement (each its own short write), calling `between` after each. */
export async function dropStagedRollups(db: Kysely<Database>, report: number, options: { slice?: number; between?: () => Promise<void> } = {}): Promise<void> {
  const slice = options.slice ?? 5000;
  for (;;) {
    const some = db.selectFrom('staged_rollups').select('key').where('report', '=', report).limit(slice);
    const deleted = await db.deleteFrom('staged_rollups').where('report', '=', report).where('key', 'in', some).executeTakeFirst();
    if (Number(deleted.numDeletedRows) < slice) return;
    await options.between?.();
  }
}
