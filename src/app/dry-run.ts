/**
 * The dry run: the planned change of every domain (engine/planned-change.ts), as
 * the next tick would make it. It decides with the tick's own code (a tick
 * with dryRun), reads each `_dmarc` set the tick would write through the
 * domain's provider, and checks it with the same function the apply step
 * uses, so a CNAME, a delegation, drift, a missing provider or a stuck change
 * shows here exactly as the tick would meet it. It writes nothing.
 */
import type { DnsProvider } from '../dns/provider.js';
import { errorMessage } from '../errors.js';
import { PlanError, type Plan } from '../plans/index.js';
import { listDomains } from '../store/domains.js';
import { getIntent } from '../store/intents.js';
import { dmarcName } from '../record/index.js';
import { planChange, stuckOf, type PlannedChange } from '../engine/planned-change.js';
import { runTick, type TickOptions } from '../engine/tick.js';

export type { PlannedChange } from '../engine/planned-change.js';

const MOVES = new Set(['establish', 'advance', 'rollback']);

export async function planChanges(opts: Omit<TickOptions, 'dryRun'> & { loadPlan(name: string): Plan }): Promise<PlannedChange[]> {
  const decided = new Map((await runTick({ ...opts, dryRun: true })).map((r) => [r.domain, r]));
  const wanted = opts.domains ? new Set(opts.domains) : null;
  const changes: PlannedChange[] = [];
  for (const row of await listDomains(opts.store.db)) {
    if (wanted && !wanted.has(row.domain)) continue;
    let plan: Plan | { problem: string };
    try {
      plan = opts.loadPlan(row.plan);
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      plan = { problem: error.message };
    }
    const intent = (await getIntent(opts.store.db, row.domain)) ?? null;
    const decision = decided.get(row.domain)?.decision ?? null;
    const active = row.state === 'active' || intent?.status === 'written';
    // The zone is read where the tick would read it: before a write, and (for drift) wherever it has written before.
    const attempted = intent
      ? !stuckOf(intent) && Date.parse(intent.next_attempt_at) <= opts.now.getTime()
      : decision !== null && (MOVES.has(decision.action) || row.last_record !== null);
    let providerProblem: string | null = null;
    let provider: DnsProvider | null = null;
    let zone: Parameters<typeof planChange>[0]['zone'] = null;
    if (active && attempted && !('problem' in plan)) {
      try {
        provider = opts.providerFor(row);
      } catch (error) {
        providerProblem = errorMessage(error);
      }
      if (provider) {
        try {
          zone = { view: await provider.inspect(dmarcName(row.domain)) };
        } catch (error) {
          zone = { error };
        }
      }
    }
    changes.push(planChange({ row, plan, intent, decision, providerProblem, zone, now: opts.now }));
  }
  return changes;
}
