/**
 * Replaying history: given reports (files, or what the store holds), run the
 * daemon's own tick with a simulated clock and an in-memory zone, and say on
 * which day each domain would have moved, held or stopped, and why.
 *
 * As real as the daemon: every report is first read through the real ingest
 * into a staging store (duplicates and re-sends handled as live), then made
 * visible in the replay store only when it would have arrived: its period's
 * end plus its reporter's delay (given, or learned from when the operator's
 * store received that reporter's reports). Ticks run at the hours asked for,
 * through runTick, the daemon's code path. A scripted person can approve
 * every gated step, resume a halted domain after a while and allowlist
 * sources on a given day. Nothing here touches the operator's store or DNS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError, InternalError } from '../errors.js';
import { approve, classifySource, resume } from '../fleet/actions.js';
import { enrollDomains } from '../fleet/enroll.js';
import type { Plan } from '../plans/index.js';
import { stageLabel } from '../record/index.js';
import { ingestPaths } from '../reports/index.js';
import { rollUpStoredReports } from '../store/rollups.js';
import { openSqliteStore, type Store } from '../store/open.js';
import type { SourceRuleRow } from '../store/schema.js';
import { MemoryDns } from '../engine/memory-dns.js';
import { runTick } from '../engine/tick.js';
import type { Check, DecisionAction } from '../engine/types.js';
import { DAY_SECONDS, epochDayToIso } from '../engine/window.js';

/** Without a delay given or learned, a report arrives this long after its period ends. */
export const DEFAULT_REPORT_DELAY_SECONDS = DAY_SECONDS;
/** A learned delay longer than this is a backlog import, not how the reporter sends. */
const MAX_LEARNED_DELAY_SECONDS = 7 * DAY_SECONDS;

export interface ScriptedAllow {
  /** From this instant on the source is allowlisted for the domain (null: every domain). */
  at: Date;
  domain: string | null;
  source: string;
}

export interface SimulateOptions {
  /** The domains to replay together (each enrolled on `plan`). */
  domains: string[];
  plan: Plan;
  /** Report files or folders to replay; when absent, `fromStore` supplies the reports. */
  reportPaths?: string[];
  /** The operator's store to copy these domains' reports from (read only). */
  fromStore?: Store;
  /** Allowlist and abuse verdicts in force from the start. */
  sourceRules?: Array<Omit<SourceRuleRow, 'id'>>;
  /** First simulated UTC day; defaults to the first day with reports. */
  start?: Date;
  /** Days to simulate; defaults to three days past the last report. */
  days?: number;
  /** UTC hours (0-23) the daemon ticks at, each at minute `tickMinute`; every hour by default, as the default schedule. */
  tickHours?: number[];
  tickMinute?: number;
  /** A report arrives this long after its period ends, for every reporter... */
  reportDelaySeconds?: number;
  /** ...or for these reporters (org name, as in the reports). */
  reporterDelaySeconds?: Record<string, number>;
  /** The scripted person: approve every gated step as soon as it is asked for. */
  approveAll?: boolean;
  /** The scripted person: resume a halted domain this many hours after it halted. */
  resumeAfterHours?: number;
  /** The scripted person: allowlist these sources at these times. */
  allow?: ScriptedAllow[];
  /** The live record each domain starts from (e.g. the owner's rua tags); a fresh record when absent. */
  initialRecord?: string | null;
}

export interface SimulationStep {
  domain: string;
  /** UTC instant of the tick. */
  at: string;
  /** UTC date of the tick. */
  day: string;
  /** Stage in force before the decision. */
  stage: string;
  action: DecisionAction | 'verified' | 'halted' | 'person';
  /** Stage moved to, when it moves. */
  to?: string;
  reasons: string[];
}

export interface DomainOutcome {
  domain: string;
  finalStage: string;
  finalState: string;
  /** The first day the plan's last stage was in force, if it was reached. */
  reachedLastStageOn: string | null;
  /** Days from the first simulated day to that day. */
  daysToLastStage: number | null;
}

export interface SimulationResult {
  steps: SimulationStep[];
  domains: DomainOutcome[];
  reportsIngested: number;
  reportsRejected: number;
  /** The delay used per reporter, seconds after its period ends. */
  delays: Record<string, number>;
}

interface StagedReport {
  id: number;
  org: string;
  end: number;
  arrivesAt: number;
}

export async function simulate(opts: SimulateOptions): Promise<SimulationResult> {
  if (opts.domains.length === 0) throw new AppError('usage', 'simulate: name at least one domain', { field: 'domain' });
  const scratch = mkdtempSync(join(tmpdir(), 'dmarc-rollout-simulate-'));
  const staging = await openSqliteStore(join(scratch, 'staging.sqlite'));
  const store = await openSqliteStore(join(scratch, 'replay.sqlite'));
  try {
    let ingested = 0;
    let rejected = 0;
    if (opts.reportPaths) {
      const summary = await ingestPaths(staging.db, opts.reportPaths, { rejectedDir: join(scratch, 'rejected') });
      ingested = summary.stored;
      rejected = summary.rejected + summary.errors;
    } else if (opts.fromStore) {
      for (const domain of opts.domains) ingested += await copyReports(opts.fromStore, staging, domain);
    }
    const delays = await reporterDelays(staging, opts);
    const staged: StagedReport[] = (await staging.db.selectFrom('reports').select(['id', 'org', 'end']).orderBy('end').execute()).map((r) => ({
      id: r.id,
      org: r.org,
      end: Number(r.end),
      arrivesAt: Number(r.end) + (delays[r.org] ?? DEFAULT_REPORT_DELAY_SECONDS),
    }));
    staged.sort((a, b) => a.arrivesAt - b.arrivesAt || a.id - b.id);

    const range = await staging.db
      .selectFrom('reports')
      .select((eb) => [eb.fn.min('begin').as('first'), eb.fn.max('end').as('last')])
      .executeTakeFirst();
    const firstDay = opts.start
      ? Math.floor(opts.start.getTime() / 1000 / DAY_SECONDS)
      : Math.floor(Number(range?.first ?? Date.now() / 1000) / DAY_SECONDS);
    const lastArrival = staged.length > 0 ? staged[staged.length - 1]!.arrivesAt : firstDay * DAY_SECONDS;
    const days = opts.days ?? Math.max(1, Math.floor(lastArrival / DAY_SECONDS) - firstDay + 3);
    const hours = [...new Set(opts.tickHours ?? Array.from({ length: 24 }, (_, h) => h))].sort((a, b) => a - b);
    const minute = opts.tickMinute ?? 17;

    const dns = new MemoryDns();
    const startAt = new Date(firstDay * DAY_SECONDS * 1000);
    for (const domain of opts.domains) if (opts.initialRecord) dns.set(`_dmarc.${domain}`, { txt: [opts.initialRecord], ttl: 3600 });
    const enrolled = await enrollDomains(store, {
      inputs: opts.domains.map((text) => ({ text, origin: 'simulate' })),
      plan: opts.plan,
      provider: 'memory',
      providers: { names: ['memory'], get: () => dns },
      // Where the replayed reports would have gone: any address will do, nothing is sent.
      reportAddress: 'dmarc-reports@simulate.invalid',
      actor: 'simulate',
      now: startAt,
    } as Parameters<typeof enrollDomains>[1]);
    if (enrolled.refused.length > 0) throw new AppError('invalid', `cannot simulate ${enrolled.refused[0]!.input.text}: ${enrolled.refused[0]!.reason}`, { field: 'domain' });
    for (const rule of opts.sourceRules ?? []) await store.db.insertInto('source_rules').values(rule).execute();
    const allows = [...(opts.allow ?? [])].sort((a, b) => a.at.getTime() - b.at.getTime());

    const steps: SimulationStep[] = [];
    const lastStep = new Map<string, string>();
    const reached = new Map<string, string>();
    const haltedAt = new Map<string, number>();
    const last = opts.plan.stages[opts.plan.stages.length - 1]!;
    const label = (i: number) => stageLabel(opts.plan.stages[i]!);
    let next = 0;
    const push = (step: SimulationStep) => {
      const key = `${step.action}|${step.stage}|${step.reasons.join('|')}`;
      // The daemon audits a decision once, not on every tick that repeats it; so does the replay.
      const repeatable = step.action === 'hold' || step.action === 'await-approval' || step.action === 'complete';
      if (repeatable && lastStep.get(step.domain) === key) return;
      lastStep.set(step.domain, key);
      steps.push(step);
    };

    for (let d = 0; d < days; d++) {
      for (const hour of hours) {
        const now = new Date(((firstDay + d) * DAY_SECONDS + hour * 3600 + minute * 60) * 1000);
        const nowSeconds = now.getTime() / 1000;
        const day = epochDayToIso(firstDay + d);
        // Reports that have arrived by now are stored, as the daemon's ingest would have stored them.
        while (next < staged.length && staged[next]!.arrivesAt <= nowSeconds) await copyReport(staging, store, staged[next++]!);
        while (allows.length > 0 && allows[0]!.at <= now) {
          const a = allows.shift()!;
          const res = await classifySource(store, a.domain, a.source, 'authorised', { actor: 'simulate', now }, 'simulate --allow');
          for (const domain of a.domain === null ? opts.domains : [a.domain]) {
            push({ domain, at: now.toISOString(), day, stage: '', action: 'person', reasons: [res.message] });
          }
        }
        for (const domain of opts.domains) {
          const row = await store.db.selectFrom('domains').selectAll().where('domain', '=', domain).executeTakeFirstOrThrow();
          if (row.state === 'halted' && opts.resumeAfterHours !== undefined) {
            const since = haltedAt.get(domain) ?? nowSeconds;
            haltedAt.set(domain, since);
            if (nowSeconds - since >= opts.resumeAfterHours * 3600) {
              const message = await resume(store, domain, { actor: 'simulate', now }, 'simulate --resume-after');
              haltedAt.delete(domain);
              push({ domain, at: now.toISOString(), day, stage: label(row.stage_index), action: 'person', reasons: [message] });
            }
          }
        }
        for (let round = 0; round < 2; round++) {
          const results = await runTick({ store, now, providerFor: () => dns, loadPlan: () => opts.plan });
          let again = false;
          for (const result of results) {
            if (result.error) throw new InternalError(`simulated tick at ${now.toISOString()} failed for ${result.domain}: ${result.error}`);
            const decision = result.decision;
            if (decision) {
              const step: SimulationStep = { domain: result.domain, at: now.toISOString(), day, stage: decision.from, action: decision.action, reasons: reasonsOf(decision.checks, decision.summary) };
              if (decision.to && decision.action !== 'await-approval') step.to = decision.to;
              push(step);
            }
            if (result.apply?.status === 'verified') {
              const to = opts.plan.stages[result.apply.toIndex]!;
              push({ domain: result.domain, at: now.toISOString(), day, stage: stageLabel(to), action: 'verified', reasons: [`judged on mail from ${result.apply.windowStart}`] });
              if (to.policy === last.policy && to.pct === last.pct && !reached.has(result.domain)) reached.set(result.domain, day);
            }
            if (decision?.action === 'await-approval' && opts.approveAll) {
              await approve(store, result.domain, () => opts.plan, { actor: 'simulate', now }, 'simulate --approve-all');
              again = true;
            }
          }
          if (!again) break;
        }
        for (const domain of opts.domains) {
          const row = await store.db.selectFrom('domains').select(['state', 'state_reason', 'stage_index']).where('domain', '=', domain).executeTakeFirstOrThrow();
          if (row.state === 'halted' && !haltedAt.has(domain)) {
            haltedAt.set(domain, nowSeconds);
            push({ domain, at: now.toISOString(), day, stage: label(row.stage_index), action: 'halted', reasons: [row.state_reason ?? 'halted'] });
          }
        }
      }
      const states = await store.db.selectFrom('domains').select(['state']).execute();
      const settled = states.every((s) => s.state === 'completed' || (s.state === 'halted' && opts.resumeAfterHours === undefined));
      if (settled && next >= staged.length) break;
    }

    const outcomes: DomainOutcome[] = [];
    for (const domain of opts.domains) {
      const final = await store.db.selectFrom('domains').selectAll().where('domain', '=', domain).executeTakeFirstOrThrow();
      const on = reached.get(domain) ?? null;
      outcomes.push({
        domain,
        finalStage: label(final.stage_index),
        finalState: final.state,
        reachedLastStageOn: on,
        daysToLastStage: on === null ? null : Math.round((Date.parse(`${on}T00:00:00Z`) / 1000 - firstDay * DAY_SECONDS) / DAY_SECONDS),
      });
    }
    return { steps, domains: outcomes, reportsIngested: ingested, reportsRejected: rejected, delays };
  } finally {
    await staging.close();
    await store.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The checks that did not pass, or the summary when every check passed. */
function reasonsOf(checks: Check[], summary: string): string[] {
  const open = checks.filter((c) => c.outcome !== 'passed').map((c) => `${c.rule}: ${c.detail}`);
  return open.length > 0 ? open : [summary];
}

/**
 * Each reporter's delay: given, or its median arrival delay in the operator's
 * store (when that looks like live arrival, not a backlog import), or a day.
 */
async function reporterDelays(staging: Store, opts: SimulateOptions): Promise<Record<string, number>> {
  const rows = await staging.db.selectFrom('reports').select(['org', 'end', 'received_at']).execute();
  const byOrg = new Map<string, number[]>();
  for (const r of rows) {
    const list = byOrg.get(r.org) ?? [];
    list.push(Date.parse(r.received_at) / 1000 - Number(r.end));
    byOrg.set(r.org, list);
  }
  const delays: Record<string, number> = {};
  for (const [org, list] of byOrg) {
    const given = opts.reporterDelaySeconds?.[org] ?? opts.reportDelaySeconds;
    if (given !== undefined) {
      delays[org] = given;
      continue;
    }
    const sorted = list.sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    delays[org] = opts.fromStore && median >= 0 && median <= MAX_LEARNED_DELAY_SECONDS ? Math.round(median) : DEFAULT_REPORT_DELAY_SECONDS;
  }
  return delays;
}

/** Stores one staged report in the replay store, as received at its arrival. */
async function copyReport(from: Store, to: Store, report: StagedReport): Promise<void> {
  const stored = await from.db.selectFrom('reports').selectAll().where('id', '=', report.id).executeTakeFirstOrThrow();
  const { id: _old, ...values } = stored;
  await to.db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('reports')
      .values({ ...values, received_at: new Date(report.arrivesAt * 1000).toISOString() })
      .returning('id')
      .executeTakeFirstOrThrow();
    const rows = await from.db.selectFrom('report_rows').selectAll().where('report', '=', report.id).execute();
    for (const { id: _rowId, ...row } of rows) await trx.insertInto('report_rows').values({ ...row, report: inserted.id }).execute();
    // The engine judges from rollups: a counted copy is rolled up with its rows, as ingest does.
    if (values.counted === 1) await rollUpStoredReports(trx, [Number(inserted.id)]);
  });
}

/** Copies the reports that name `domain` (as policy domain or header_from) from the operator's store, every copy with its flags. */
async function copyReports(from: Store, to: Store, domain: string): Promise<number> {
  const reportIds = await from.db
    .selectFrom('reports as r')
    .select('r.id')
    .where((eb) =>
      eb.or([
        eb('r.domain', '=', domain),
        eb.exists(eb.selectFrom('report_rows as rr').select('rr.id').whereRef('rr.report', '=', 'r.id').where('rr.header_from', '=', domain)),
      ]),
    )
    .execute();
  let copied = 0;
  for (const { id } of reportIds) {
    const report = await from.db.selectFrom('reports').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const exists = await to.db.selectFrom('reports').select('id').where('content_hash', '=', report.content_hash).executeTakeFirst();
    if (exists) continue;
    const { id: _old, ...reportValues } = report;
    const rows = await from.db.selectFrom('report_rows').selectAll().where('report', '=', id).execute();
    await to.db.transaction().execute(async (trx) => {
      const inserted = await trx.insertInto('reports').values(reportValues).returning('id').executeTakeFirstOrThrow();
      for (const { id: _rowId, ...row } of rows) await trx.insertInto('report_rows').values({ ...row, report: inserted.id }).execute();
      // The engine judges from rollups: a counted copy is rolled up with its rows, as ingest does.
      if (reportValues.counted === 1) await rollUpStoredReports(trx, [Number(inserted.id)]);
    });
    copied++;
  }
  return copied;
}
