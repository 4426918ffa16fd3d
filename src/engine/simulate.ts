/**
 * Replaying history: given reports (a folder, or what the store holds), run
 * the real engine day by day with a simulated clock and an in-memory zone,
 * and say on which day the domain would have moved, held or stopped, and why.
 * Nothing here touches the operator's store or DNS: the replay has a store
 * and a zone of its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { approve } from '../fleet/actions.js';
import { enrollDomains } from '../fleet/enroll.js';
import type { Plan } from '../plans/index.js';
import { ingestPaths } from '../reports/index.js';
import { openSqliteStore, type Store } from '../store/open.js';
import type { SourceRuleRow } from '../store/schema.js';
import { MemoryDns } from './memory-dns.js';
import { runTick } from './tick.js';
import type { Check, DecisionAction } from './types.js';
import { DAY_SECONDS, epochDayToIso } from './window.js';

export interface SimulateOptions {
  domain: string;
  plan: Plan;
  /** Report files or folders to replay; when absent, `fromStore` supplies the reports. */
  reportPaths?: string[];
  /** The operator's store to copy this domain's reports from (read only). */
  fromStore?: Store;
  /** Allowlist and abuse verdicts to apply in the replay. */
  sourceRules?: Array<Omit<SourceRuleRow, 'id'>>;
  /** First simulated UTC day; defaults to the first day with reports. */
  start?: Date;
  /** Days to simulate; defaults to three days past the last report. */
  days?: number;
  /** Approve every gated step as soon as it is asked for. */
  approveAll?: boolean;
  /** Reports become visible this long after their period ends (receivers send a day or more late). */
  reportDelaySeconds?: number;
  /** The live record the domain starts from (e.g. the owner's rua tags); a fresh record when absent. */
  initialRecord?: string | null;
}

export interface SimulationStep {
  /** UTC date of the tick. */
  day: string;
  /** Stage in force before the decision. */
  stage: string;
  action: DecisionAction | 'verified';
  /** Stage moved to, when it moves. */
  to?: string;
  reasons: string[];
}

export interface SimulationResult {
  steps: SimulationStep[];
  finalStage: string;
  finalState: string;
  /** The first day reject:100 was in force, if it was reached. */
  reachedRejectOn: string | null;
  reportsIngested: number;
  reportsRejected: number;
}

/** The simulated daemon ticks once a day, at noon UTC. */
const TICK_OFFSET_SECONDS = 12 * 3600;

export async function simulate(opts: SimulateOptions): Promise<SimulationResult> {
  const scratch = mkdtempSync(join(tmpdir(), 'dmarc-rollout-simulate-'));
  const store = await openSqliteStore(join(scratch, 'replay.sqlite'));
  try {
    let ingested = 0;
    let rejected = 0;
    if (opts.reportPaths) {
      const summary = await ingestPaths(store.db, opts.reportPaths, { rejectedDir: join(scratch, 'rejected') });
      ingested = summary.stored;
      rejected = summary.rejected + summary.errors;
    } else if (opts.fromStore) {
      ingested = await copyReports(opts.fromStore, store, opts.domain);
    }
    for (const rule of opts.sourceRules ?? []) await store.db.insertInto('source_rules').values(rule).execute();

    const range = await store.db
      .selectFrom('reports')
      .select((eb) => [eb.fn.min('begin').as('first'), eb.fn.max('end').as('last')])
      .executeTakeFirst();
    const firstDay = opts.start
      ? Math.floor(opts.start.getTime() / 1000 / DAY_SECONDS)
      : Math.floor(Number(range?.first ?? Date.now() / 1000) / DAY_SECONDS);
    const lastDay = Math.floor(Number(range?.last ?? firstDay * DAY_SECONDS) / DAY_SECONDS);
    const days = opts.days ?? Math.max(1, lastDay - firstDay + 3);
    const delay = opts.reportDelaySeconds ?? DAY_SECONDS;

    const dns = new MemoryDns();
    if (opts.initialRecord) dns.set(`_dmarc.${opts.domain}`, { txt: [opts.initialRecord], ttl: 3600 });
    const startAt = new Date(firstDay * DAY_SECONDS * 1000);
    const enrolled = await enrollDomains(store, {
      inputs: [{ text: opts.domain, origin: 'simulate' }],
      plan: opts.plan,
      provider: 'memory',
      actor: 'simulate',
      now: startAt,
    });
    if (enrolled.refused.length > 0) throw new Error(`cannot simulate ${opts.domain}: ${enrolled.refused[0]!.reason}`);
    const domain = enrolled.enrolled[0]!;

    const steps: SimulationStep[] = [];
    let reachedRejectOn: string | null = null;
    const last = opts.plan.stages[opts.plan.stages.length - 1]!;
    for (let d = 0; d < days; d++) {
      const now = new Date(((firstDay + d) * DAY_SECONDS + TICK_OFFSET_SECONDS) * 1000);
      const day = epochDayToIso(firstDay + d);
      for (let round = 0; round < 2; round++) {
        const [result] = await runTick({ store, now, providerFor: () => dns, loadPlan: () => opts.plan, reportDelaySeconds: delay });
        const decision = result?.decision;
        if (result?.error) throw new Error(`simulated tick on ${day} failed: ${result.error}`);
        if (decision) {
          const step: SimulationStep = { day, stage: decision.from, action: decision.action, reasons: reasonsOf(decision.checks, decision.summary) };
          if (decision.to && decision.action !== 'await-approval') step.to = decision.to;
          steps.push(step);
        }
        if (result?.apply?.status === 'verified') {
          const to = opts.plan.stages[result.apply.toIndex]!;
          if (to.policy === last.policy && to.pct === last.pct && reachedRejectOn === null) reachedRejectOn = day;
        }
        if (decision?.action === 'await-approval' && opts.approveAll) {
          await approve(store, domain, () => opts.plan, { actor: 'simulate', now }, 'simulate --approve-all');
          continue;
        }
        break;
      }
      const row = await store.db.selectFrom('domains').select(['state']).where('domain', '=', domain).executeTakeFirstOrThrow();
      if (row.state === 'completed' || row.state === 'halted') break;
    }
    const final = await store.db.selectFrom('domains').selectAll().where('domain', '=', domain).executeTakeFirstOrThrow();
    const stage = opts.plan.stages[final.stage_index]!;
    return {
      steps,
      finalStage: `${stage.policy}:${stage.pct}`,
      finalState: final.state,
      reachedRejectOn,
      reportsIngested: ingested,
      reportsRejected: rejected,
    };
  } finally {
    await store.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The checks that did not pass, or the summary when every check passed. */
function reasonsOf(checks: Check[], summary: string): string[] {
  const open = checks.filter((c) => c.outcome !== 'passed').map((c) => `${c.rule}: ${c.detail}`);
  return open.length > 0 ? open : [summary];
}
      providers: { names: ['memory'], get: () => dns },
      // Where the replayed reports would have gone: any address will do, nothing is sent.
      reportAddress: 'dmarc-reports@simulate.invalid',

/** Copies the reports that name `domain` (as policy domain or header_from) from the operator's store. */
async function copyReports(from: Store, to: Store, domain: string): Promise<number> {
  const reportIds = await from.db
    .selectFrom('reports as r')
    .select('r.id')
    .where('r.counted', '=', 1)
    .where((eb) =>
      eb.or([
        eb('r.domain', '=', domain),
        eb.exists(eb.selectFrom('report_rows as rr').select('rr.id').whereRef('rr.report', '=', 'r.id').where('rr.header_from', '=', domain)),
      ]),
    )
    .execute();
  for (const { id } of reportIds) {
    const report = await from.db.selectFrom('reports').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const { id: _old, ...reportValues } = report;
    const inserted = await to.db.insertInto('reports').values(reportValues).returning('id').executeTakeFirstOrThrow();
    const rows = await from.db.selectFrom('report_rows').selectAll().where('report', '=', id).execute();
    for (const { id: _rowId, ...row } of rows) await to.db.insertInto('report_rows').values({ ...row, report: inserted.id }).execute();
  }
  return reportIds.length;
}
