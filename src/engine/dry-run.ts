/**
 * The dry run: what the next tick would change, domain by domain, as a diff of
 * the `_dmarc` record (old → new). It reads the live record through the
 * provider and edits it exactly as a real apply would, and writes nothing.
 */
import type { Plan } from '../plans/index.js';
import { dmarcRecordsOf } from '../record/index.js';
import { getIntent } from '../store/intents.js';
import { dmarcName, recordForPlanStage } from './apply.js';
import { runTick, type TickOptions } from './tick.js';
import type { Decision } from './types.js';

export interface PlannedChange {
  domain: string;
  /** What the tick would decide; absent for a change already in flight. */
  decision?: Decision;
  /** The DMARC record live now, as the provider reports it. */
  live: string | null;
  /** The record the tick would publish; null when nothing would be written. */
  next: string | null;
  /** Why the change could not be planned (no provider, an invalid result, ...). */
  problem?: string;
}

export async function planChanges(opts: Omit<TickOptions, 'dryRun'> & { loadPlan(name: string): Plan }): Promise<PlannedChange[]> {
  const results = await runTick({ ...opts, dryRun: true });
  const changes: PlannedChange[] = [];
  for (const result of results) {
    const row = await opts.store.db.selectFrom('domains').selectAll().where('domain', '=', result.domain).executeTakeFirstOrThrow();
    const intent = await getIntent(opts.store.db, row.domain);
    const toIndex = result.decision?.toIndex ?? intent?.to_index ?? null;
    const moves = intent !== undefined || (result.decision && ['establish', 'advance', 'rollback'].includes(result.decision.action));
    const change: PlannedChange = { domain: row.domain, live: null, next: null };
    if (result.decision) change.decision = result.decision;
    if (result.error) change.problem = result.error;
    if (!moves || toIndex === null || result.error) {
      changes.push(change);
      continue;
    }
    try {
      const provider = opts.providerFor(row);
      const dmarc = dmarcRecordsOf(await provider.readTxt(dmarcName(row.domain)));
      change.live = dmarc[0] ?? null;
      if (dmarc.length > 1) throw new Error(`${dmarc.length} v=DMARC1 records at _dmarc.${row.domain}`);
      if (intent?.record) {
        change.next = intent.record;
      } else {
        const edit = recordForPlanStage(opts.loadPlan(row.plan), toIndex, change.live, row.report_uri);
        // A record already as the stage wants it is verified without a write: no diff to show.
        if (edit.ok) change.next = edit.record === change.live ? null : edit.record;
        else change.problem = `the record would be invalid: ${edit.problems.map((p) => p.reason).join('; ')}`;
      }
    } catch (error) {
      change.problem = error instanceof Error ? error.message : String(error);
    }
    changes.push(change);
  }
  return changes;
}
