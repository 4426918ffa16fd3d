/**
 * Domain tags: a person's labels on a domain (`prod`, `team-payments`), so a
 * notification channel can carry only the domains it is for. Setting them is
 * an action like the others: checked, and audited with who and what changed.
 */
import { appendAudit } from '../store/audit.js';
import { parseTags, setDomainTags } from '../store/notifications.js';
import type { Store } from '../store/open.js';
import { ActionError, enrolledDomain, type Actor } from './actions.js';

const TAG = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const MAX_TAGS = 32;

/** Lowercases, checks and de-duplicates tags. @throws ActionError invalid, naming the bad tag. */
export function normalizeTags(inputs: readonly string[]): string[] {
  const out: string[] = [];
  for (const input of inputs) {
    const tag = input.trim().toLowerCase();
    if (!TAG.test(tag)) throw new ActionError(`tag "${input}": a tag is 1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit`, 'invalid', 'tags');
    if (!out.includes(tag)) out.push(tag);
  }
  if (out.length > MAX_TAGS) throw new ActionError(`at most ${MAX_TAGS} tags per domain`, 'invalid', 'tags');
  return out.sort();
}

export interface TagChange {
  domain: string;
  /** Tags before and after. */
  before: string[];
  tags: string[];
}

/**
 * Changes a domain's tags: `set` replaces them all; `add` and `remove`
 * edit them. Audited as `tag` (nothing is written when nothing changes).
 */
export async function tagDomain(store: Store, input: string, who: Actor, change: { set?: readonly string[]; add?: readonly string[]; remove?: readonly string[] }): Promise<TagChange> {
  const row = await enrolledDomain(store, input);
  const before = parseTags(row.tags);
  const removed = new Set(normalizeTags(change.remove ?? []));
  const base = change.set !== undefined ? normalizeTags(change.set) : before;
  const tags = normalizeTags([...base, ...(change.add ?? [])].filter((t) => !removed.has(t)));
  if (tags.join(',') === before.join(',')) return { domain: row.domain, before, tags };
  await store.db.transaction().execute(async (trx) => {
    await setDomainTags(trx, row.domain, tags, who.now);
    await appendAudit(trx, {
      at: who.now,
      actor: who.actor,
      domain: row.domain,
      action: 'tag',
      reason: `tags ${before.length > 0 ? before.join(', ') : '(none)'} → ${tags.length > 0 ? tags.join(', ') : '(none)'}`,
      details: { before, tags },
    });
  });
  return { domain: row.domain, before, tags };
}
