/**
 * The periodic summary: where every domain stands, what moved in the period,
 * what waits for a person and why, and the figures for a small chart (the
 * fleet by stage, each domain's progress through its plan). Computed from
 * the same views the page shows; the weekly mail, `dmarc-rollout summary` and
 * the notifications page render this one value.
 */
import { AppError } from '../errors.js';
import { sql } from 'kysely';
import { forEachOverviewPage, type DomainOverview, type ViewContext } from '../fleet/views.js';
import { findDomains } from '../store/domains.js';
import type { Store } from '../store/open.js';
import { parseTags } from '../store/notifications.js';
import type { DomainState } from '../store/schema.js';

export interface SummaryMove {
  at: string;
  from: string | null;
  to: string;
  action: string;
  actor: string;
}

export interface SummaryDomain {
  domain: string;
  tags: string[];
  plan: string;
  stage: string | null;
  stage_number: number;
  stage_count: number | null;
  state: DomainState;
  days_in_stage: number | null;
  authorised_fail_rate: number | null;
  authorised_messages: number;
  /** Stage changes in the period, oldest first. */
  moves: SummaryMove[];
  /** What a person must do for it to move on, or null. */
  waiting: string | null;
  /** What the next tick would do, in a sentence, when it would judge the domain. */
  next: string | null;
}

export interface FleetSummary {
  since: string;
  until: string;
  totals: { domains: number; by_state: Record<DomainState, number>; at_reject_100: number; moved: number };
  /** Domains per stage, weakest stage first: the fleet chart. */
  stages: Array<{ stage: string; domains: number }>;
  /** Every domain, by name; in a fleet past SUMMARY_LISTED, the first SUMMARY_LISTED of those waiting for a person, then those that moved, then the rest. */
  domains: SummaryDomain[];
  /** What waits for a person, at most SUMMARY_LISTED. */
  waiting: Array<{ domain: string; why: string }>;
  /** How many were left out of `domains` and `waiting` (the page and the API's domain list have them all). */
  omitted: { domains: number; waiting: number };
  /** Notification events in the period by type (what was announced). */
  events: Record<string, number>;
}

/** Domains (and waiting entries) a summary lists by name: a mail or a chat message listing 100,000 is read by nobody. */
export const SUMMARY_LISTED = 200;

/** Parses `7d`, `36h`, `2w` into milliseconds. @throws AppError invalid (field `since`) naming the accepted forms. */
export function parsePeriod(text: string): number {
  const m = /^(\d{1,4})\s*([hdw])$/.exec(text.trim());
  if (!m || Number(m[1]) === 0) throw new AppError('invalid', `"${text}" is not a period; use e.g. 36h, 7d or 2w`, { field: 'since' });
  const unit = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2] as 'h' | 'd' | 'w'];
  return Number(m[1]) * unit;
}

export async function buildSummary(store: Store, now: Date, sinceMs: number, ctx: ViewContext = {}): Promise<FleetSummary> {
  const since = new Date(now.getTime() - sinceMs).toISOString();
  const movesOf = await movesBetween(store, since, now.toISOString());
  const eventRows = await store.db
    .selectFrom('notification_events')
    .select(['type', (eb) => eb.fn.countAll<number>().as('n')])
    .where('at', '>=', since)
    .where('type', '!=', 'test')
    .groupBy('type')
    .execute();

  const byState: Record<DomainState, number> = { active: 0, paused: 0, halted: 0, completed: 0 };
  const stageCounts = new Map<string, number>();
  let total = 0;
  let atReject100 = 0;
  let moved = 0;
  let waitingTotal = 0;
  // Pages come in name order, so the first SUMMARY_LISTED of each kind kept here are the first by name.
  const waitingKept: SummaryDomain[] = [];
  const movedKept: SummaryDomain[] = [];
  const holdingKept: SummaryDomain[] = [];
  await forEachOverviewPage(store, now, ctx, async (page) => {
    const tags = new Map([...(await findDomains(store.db, page.map((d) => d.domain))).values()].map((r) => [r.domain, parseTags(r.tags)]));
    for (const d of page) {
      total += 1;
      byState[d.state] += 1;
      const stage = d.stage ?? 'unknown';
      stageCounts.set(stage, (stageCounts.get(stage) ?? 0) + 1);
      if (d.stage === 'reject:100') atReject100 += 1;
      const why = waitingReason(d);
      const moves = movesOf.get(d.domain) ?? [];
      if (why) waitingTotal += 1;
      if (moves.length > 0) moved += 1;
      const kept = why ? waitingKept : moves.length > 0 ? movedKept : holdingKept;
      if (kept.length >= SUMMARY_LISTED) continue;
      kept.push({
        domain: d.domain,
        tags: tags.get(d.domain) ?? [],
        plan: d.plan,
        stage: d.stage,
        stage_number: d.stage_number,
        stage_count: d.stage_count,
        state: d.state,
        days_in_stage: d.days_in_stage,
        authorised_fail_rate: d.authorised_fail_rate,
        authorised_messages: d.authorised_messages,
        moves,
        waiting: why,
        next: d.next_decision ? d.next_decision.summary : null,
      });
    }
  });
  // What needs reading first (waiting, then moved), then the domains that only hold; by name.
  const listed = [...waitingKept, ...movedKept, ...holdingKept].slice(0, SUMMARY_LISTED).sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
  return {
    since,
    until: now.toISOString(),
    totals: { domains: total, by_state: byState, at_reject_100: atReject100, moved },
    stages: [...stageCounts.entries()].sort((a, b) => stageOrder(a[0]) - stageOrder(b[0])).map(([stage, n]) => ({ stage, domains: n })),
    domains: listed,
    waiting: waitingKept.map((d) => ({ domain: d.domain, why: d.waiting! })),
    omitted: { domains: total - listed.length, waiting: waitingTotal - waitingKept.length },
    events: Object.fromEntries(eventRows.map((r) => [r.type, Number(r.n)])),
  };
}

/** Stage changes in the period (enrolments aside) by domain, oldest first, read MOVES_PER_READ a statement by the (at, id) index. */
async function movesBetween(store: Store, since: string, until: string): Promise<Map<string, SummaryMove[]>> {
  const movesOf = new Map<string, SummaryMove[]>();
  for (let after: { at: string; id: number } | null = null; ; ) {
    let read = store.db
      .selectFrom('stage_history')
      .select(['id', 'domain', 'at', 'from_stage', 'to_stage', 'action', 'actor'])
      .where('at', '>=', since)
      .where('at', '<=', until)
      .orderBy('at')
      .orderBy('id')
      .limit(MOVES_PER_READ);
    if (after !== null) read = read.where(sql<boolean>`(at, id) > (${after.at}, ${after.id})`);
    const rows = await read.execute();
    for (const h of rows) {
      if (h.action === 'enroll') continue;
      const list = movesOf.get(h.domain) ?? [];
      list.push({ at: h.at, from: h.from_stage, to: h.to_stage, action: h.action, actor: h.actor });
      movesOf.set(h.domain, list);
    }
    if (rows.length < MOVES_PER_READ) return movesOf;
    after = { at: rows.at(-1)!.at, id: Number(rows.at(-1)!.id) };
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const MOVES_PER_READ = 5000;

/** Why a domain waits for a person, in plain words; null when it needs nobody. */
function waitingReason(d: DomainOverview): string | null {
  if (d.state === 'halted') return `halted: ${d.state_reason ?? 'no reason recorded'}; resume or roll back after looking`;
  if (d.state === 'paused') return `paused: ${d.state_reason ?? 'no reason recorded'}; resume when ready`;
  if (d.plan_problem) return `its plan cannot be loaded: ${d.plan_problem}`;
  if (d.awaiting_approval) return `${d.next_decision?.to ?? 'the next stage'} waits for approval (dmarc-rollout approve ${d.domain})`;
  if (d.change_in_flight?.last_error) return `a change to ${d.change_in_flight.to} keeps failing: ${d.change_in_flight.last_error}`;
  if (d.blocking_sources > 0) return `${d.blocking_sources} unaligned sender(s) hold it until someone runs allow or abuse`;
  return null;
}

/** none < quarantine < reject, then by pct; unknown last. */
function stageOrder(label: string): number {
  const m = /^(none|quarantine|reject):(\d+)$/.exec(label);
  if (!m) return 10_000;
  return { none: 0, quarantine: 1000, reject: 2000 }[m[1] as 'none' | 'quarantine' | 'reject'] + Number(m[2]);
}
