/**
 * The periodic summary: where every domain stands, what moved in the period,
 * what waits for a person and why, and the figures for a small chart (the
 * fleet by stage, each domain's progress through its plan). Computed from
 * the same views the page shows; the weekly mail, `dmarc-rollout summary` and
 * the notifications page render this one value.
 */
import { AppError } from '../errors.js';
import { fleetOverview, type DomainOverview, type ViewContext } from '../fleet/views.js';
import { domainsInTurns } from '../store/assessments.js';
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
  const overview = await fleetOverview(store, now, ctx);
  // A chunk of the fleet a read, with turns between (one read of a large fleet would hold the event loop).
  const tags = new Map((await domainsInTurns(store.db)).map((r) => [r.domain, parseTags(r.tags)]));
  const history = await store.db
    .selectFrom('stage_history')
    .select(['domain', 'at', 'from_stage', 'to_stage', 'action', 'actor'])
    .where('at', '>=', since)
    .where('at', '<=', now.toISOString())
    .orderBy('id')
    .execute();
  const movesOf = new Map<string, SummaryMove[]>();
  for (const h of history) {
    if (h.action === 'enroll') continue;
    const list = movesOf.get(h.domain) ?? [];
    list.push({ at: h.at, from: h.from_stage, to: h.to_stage, action: h.action, actor: h.actor });
    movesOf.set(h.domain, list);
  }
  const eventRows = await store.db
    .selectFrom('notification_events')
    .select(['type', (eb) => eb.fn.countAll<number>().as('n')])
    .where('at', '>=', since)
    .where('type', '!=', 'test')
    .groupBy('type')
    .execute();

  const byState: Record<DomainState, number> = { active: 0, paused: 0, halted: 0, completed: 0 };
  const stageCounts = new Map<string, number>();
  const domains: SummaryDomain[] = [];
  const waiting: FleetSummary['waiting'] = [];
  for (const d of overview) {
    byState[d.state] += 1;
    const stage = d.stage ?? 'unknown';
    stageCounts.set(stage, (stageCounts.get(stage) ?? 0) + 1);
    const why = waitingReason(d);
    if (why) waiting.push({ domain: d.domain, why });
    domains.push({
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
      moves: movesOf.get(d.domain) ?? [],
      waiting: why,
      next: d.next_decision ? d.next_decision.summary : null,
    });
  }
  // A large fleet's summary lists what needs reading (waiting, then moved) before the domains that only hold,
  // up to SUMMARY_LISTED of each list; the totals and the chart count every domain.
  const rank = (d: SummaryDomain) => (d.waiting !== null ? 0 : d.moves.length > 0 ? 1 : 2);
  const listed = domains.length <= SUMMARY_LISTED ? domains : [...domains].sort((a, b) => rank(a) - rank(b) || (a.domain < b.domain ? -1 : 1)).slice(0, SUMMARY_LISTED);
  return {
    since,
    until: now.toISOString(),
    totals: {
      domains: overview.length,
      by_state: byState,
      at_reject_100: overview.filter((d) => d.stage === 'reject:100').length,
      moved: domains.filter((d) => d.moves.length > 0).length,
    },
    stages: [...stageCounts.entries()].sort((a, b) => stageOrder(a[0]) - stageOrder(b[0])).map(([stage, n]) => ({ stage, domains: n })),
    domains: listed.length === domains.length ? domains : listed.sort((a, b) => (a.domain < b.domain ? -1 : 1)),
    waiting: waiting.slice(0, SUMMARY_LISTED),
    omitted: { domains: domains.length - listed.length, waiting: Math.max(0, waiting.length - SUMMARY_LISTED) },
    events: Object.fromEntries(eventRows.map((r) => [r.type, Number(r.n)])),
  };
}

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
