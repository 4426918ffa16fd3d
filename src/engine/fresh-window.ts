/**
 * Resuming a halted domain starts a fresh window: the days that halted it
 * stay in the audit log but no longer count, or the domain would halt again
 * on the next tick on the same broken days. A paused domain keeps its window
 * (nothing was wrong with its mail).
 */
import { updateDomain } from '../store/domains.js';
import type { Store } from '../store/open.js';
import type { DomainRow } from '../store/schema.js';
import { freshWindowStart } from './window.js';

/** Moves a halted domain's window to the next UTC midnight; returns what to tell the person, or null when nothing changed. */
export async function openFreshWindow(store: Store, row: DomainRow, now: Date): Promise<string | null> {
  if (row.state !== 'halted' || row.window_start === null) return null;
  const start = freshWindowStart(now).toISOString();
  await updateDomain(store.db, row.domain, { window_start: start, updated_at: now.toISOString() });
  return `judged on a fresh window from ${start.slice(0, 10)}: the days before no longer count`;
}
