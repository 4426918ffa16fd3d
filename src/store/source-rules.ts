/** The operators' verdicts on sending sources (allowlist and abuse marks), per domain or global. */
import type { Kysely, Transaction } from 'kysely';
import type { Database, SourceRuleRow } from './schema.js';

/** Rules that apply to `domain`: its own and the global ones. */
export async function sourceRulesFor(db: Kysely<Database>, domain: string): Promise<SourceRuleRow[]> {
  return db
    .selectFrom('source_rules')
    .selectAll()
    .where((eb) => eb.or([eb('domain', '=', domain), eb('domain', 'is', null)]))
    .orderBy('id')
    .execute();
}

/** Adds a rule unless the same one exists; either way, the rule as stored. */
export async function addSourceRule(
  db: Kysely<Database>,
  rule: Omit<SourceRuleRow, 'id'>,
): Promise<{ added: boolean; rule: SourceRuleRow }> {
  const existing = await db
    .selectFrom('source_rules')
    .selectAll()
    .where((eb) => (rule.domain === null ? eb('domain', 'is', null) : eb('domain', '=', rule.domain)))
    .where('kind', '=', rule.kind)
    .where('value', '=', rule.value)
    .where('verdict', '=', rule.verdict)
    .executeTakeFirst();
  if (existing) return { added: false, rule: existing };
  return { added: true, rule: await db.insertInto('source_rules').values(rule).returningAll().executeTakeFirstOrThrow() };
}

/** Every rule, or (with `domain`) the ones that apply to it, oldest first. */
export async function listSourceRules(db: Kysely<Database>, domain?: string): Promise<SourceRuleRow[]> {
  if (domain !== undefined) return sourceRulesFor(db, domain);
  return db.selectFrom('source_rules').selectAll().orderBy('id').execute();
}

export async function getSourceRule(db: Kysely<Database>, id: number): Promise<SourceRuleRow | undefined> {
  return db.selectFrom('source_rules').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function deleteSourceRule(db: Kysely<Database> | Transaction<Database>, id: number): Promise<void> {
  await db.deleteFrom('source_rules').where('id', '=', id).execute();
}
