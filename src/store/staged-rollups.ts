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
 * loop). Run it inside the transaction that counts the report. `touched`
 * gets the header_from names of each slice's entries as it is merged (for
 * markRollupChange), so no statement reads all of the report's entries at
 * once (at 547,000 entries a SELECT DISTINCT over them held the loop about
 * a quarter of a second).
 */
export async function mergeStagedRollups(
  db: Kysely<Database>,
  report: number,
  options: { slice?: number; between?: () => Promise<void>; touched?: (names: Set<string>) => Promise<void> } = {},
): Promise<void> {
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
    const merged = await db
      .insertInto('daily_rollups')
      .columns([...COLUMNS])
      .expression(merge.orderBy('key'))
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          messages: eb('daily_rollups.messages', '+', eb.ref('excluded.messages')),
          records: eb('daily_rollups.records', '+', eb.ref('excluded.records')),
        })),
      )
      .returning('header_from')
      .execute();
    const names = new Set<string>();
    for (const { header_from } of merged) if (header_from !== null) names.add(header_from);
    if (names.size > 0) await options.touched?.(names);
    if (!last) break;
    after = last.key;
    await options.between?.();
  }
}

/** Deletes staged report `report`'s sums, `slice` entries a statement (each its own short write), calling `between` after each. */
export async function dropStagedRollups(db: Kysely<Database>, report: number, options: { slice?: number; between?: () => Promise<void> } = {}): Promise<void> {
  const slice = options.slice ?? 1000;
  for (;;) {
    const some = db.selectFrom('staged_rollups').select('key').where('report', '=', report).limit(slice);
    const deleted = await db.deleteFrom('staged_rollups').where('report', '=', report).where('key', 'in', some).executeTakeFirst();
    if (Number(deleted.numDeletedRows) < slice) return;
    await options.between?.();
  }
}
