/**
 * The notification events the outbox holds: one typed list, each type with
 * its severity, and the pure mapping from an audit entry (what the program
 * already records) to the events it announces. It lives in the store because
 * appending an audit entry writes its events in the same transaction;
 * src/notify turns them into messages and delivers them. Nothing else in the program calls the notifier:
 * the audit log is the one place every decision, stage change, operator
 * action and apply failure passes through, so mapping it here covers checks
 * and actions added later too (by check rule and action name, generically).
 */

export type Severity = 'info' | 'warning' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/** Every event type, with its severity and what it means. The README lists the same. */
export const EVENT_TYPES = {
  halted: { severity: 'critical', meaning: 'the engine halted a domain (fail rate over the halt rate, or rollback-then-halt); a person must look' },
  'rolled-back': { severity: 'critical', meaning: 'the engine decided to move a domain back a stage' },
  drift: { severity: 'critical', meaning: "the live _dmarc record is not what this program last verified; the domain stopped" },
  'change-refused': { severity: 'critical', meaning: 'a change was refused: a CNAME or delegation at _dmarc, several DMARC records, a permanent provider error, or a domain the tick cannot handle (plan or provider gone)' },
  'change-stuck': { severity: 'critical', meaning: 'a change in flight keeps failing or has not verified for too long' },
  'change-retrying': { severity: 'warning', meaning: 'writing or verifying a change failed; it is retried with backoff (once per distinct failure)' },
  'approval-waiting': { severity: 'warning', meaning: 'a gated next stage waits for a person (announced once, then reminders)' },
  'reporter-quiet': { severity: 'warning', meaning: 'a regular reporter went quiet; its silence is not taken as clean until a person acknowledges it' },
  'reporter-late': { severity: 'info', meaning: "a regular reporter is past its usual delay; the day waits for it (often transient)" },
  'blocking-sender': { severity: 'warning', meaning: 'a new unaligned sender holds the domain until someone allows it or marks it as abuse' },
  'stage-verified': { severity: 'info', meaning: 'a new stage was written and verified in DNS' },
  'rollout-complete': { severity: 'info', meaning: 'a domain held its last stage cleanly: the rollout is complete' },
  'operator-action': { severity: 'info', meaning: 'a person approved, paused, resumed, rolled back, forced, allowed, tagged, enrolled' },
  'ingest-rejecting': { severity: 'warning', meaning: 'ingest rejected more inputs than usual' },
  'tick-failing': { severity: 'critical', meaning: 'the tick job failed' },
  'tick-stale': { severity: 'critical', meaning: 'no tick has finished for the configured number of intervals' },
  'freeze-entered': { severity: 'info', meaning: 'a freeze window began (when waves define one): nothing advances' },
  'freeze-left': { severity: 'info', meaning: 'a freeze window ended' },
  resolved: { severity: 'info', meaning: 'a daemon condition announced before is over (tick running again, ingest back to usual)' },
  test: { severity: 'info', meaning: 'a test message from `dmarc-rollout notify test`' },
} as const satisfies Record<string, { severity: Severity; meaning: string }>;

export type EventType = keyof typeof EVENT_TYPES;
export const EVENT_TYPE_NAMES = Object.keys(EVENT_TYPES) as EventType[];

/** One event, before it is stored: the domain's tags are added by the store. */
export interface NotifyEvent {
  type: EventType;
  severity: Severity;
  domain: string | null;
  at: string;
  /** One line a person reads first. */
  title: string;
  /** The reason in plain words (the audit reason, the failing checks). */
  detail: string;
  data?: Record<string, unknown>;
  /**
   * Set on events that announce a lasting condition: while a condition with
   * this key and `fingerprint` is known, it is not announced again (only
   * reminded of, for approvals).
   */
  condition?: { key: string; fingerprint: string };
}

/** The audit entry as appendAudit receives it. */
export interface AuditLike {
  at: Date;
  actor: string;
  domain: string | null;
  action: string;
  reason: string;
  details?: unknown;
}

/** What the mapper may need besides the entry: the stage change the same transaction just wrote. */
export interface AuditContext {
  stageChange?: { action: string; from_stage: string | null; to_stage: string } | undefined;
}

/** What an audit entry means for notifications. */
export interface AuditMapping {
  events: NotifyEvent[];
  /**
   * Condition types of this domain that the entry settles: conditions of
   * these types not re-announced by `events` are over (a new decision
   * without the quiet reporter means it reports again).
   */
  settles: EventType[];
}

/** Engine decision actions (tick.ts audits each decision under its action). */
const DECISIONS = new Set(['establish', 'advance', 'hold', 'await-approval', 'halt', 'rollback', 'complete']);
/** Types whose conditions a new engine decision re-states or settles. */
const DECISION_CONDITIONS: EventType[] = ['approval-waiting', 'reporter-quiet', 'reporter-late', 'blocking-sender'];
const APPLY_CONDITIONS: EventType[] = ['change-retrying', 'change-stuck'];

interface CheckLike {
  rule: string;
  outcome: string;
  measured?: unknown;
  detail?: string;
}

function checksOf(details: unknown): CheckLike[] {
  const checks = (details as { checks?: unknown } | null | undefined)?.checks;
  if (!Array.isArray(checks)) return [];
  return checks.filter((c): c is CheckLike => typeof c === 'object' && c !== null && typeof (c as CheckLike).rule === 'string');
}

const isEngine = (actor: string) => actor === 'engine' || actor === 'daemon';

/** Maps one audit entry to the events it announces (often none: a plain hold is not news). */
export function eventsFromAudit(entry: AuditLike, ctx: AuditContext = {}): AuditMapping {
  const at = entry.at.toISOString();
  const domain = entry.domain;
  const base = { domain, at };
  const make = (type: EventType, title: string, detail: string, data?: Record<string, unknown>, condition?: NotifyEvent['condition']): NotifyEvent => ({
    ...base,
    type,
    severity: EVENT_TYPES[type].severity,
    title,
    detail,
    ...(data ? { data } : {}),
    ...(condition ? { condition } : {}),
  });
  const who = domain ?? 'the fleet';
  const action = entry.action;

  if (!isEngine(entry.actor)) {
    return {
      events: [make('operator-action', `${who}: ${action} by ${entry.actor}`, entry.reason, { action, actor: entry.actor })],
      settles: [],
    };
  }

  if (action === 'freeze-entered' || action === 'freeze-left') {
    return { events: [make(action, `${who}: ${action === 'freeze-entered' ? 'freeze window entered' : 'freeze window left'}`, entry.reason)], settles: [] };
  }

  if (action === 'verified') {
    const change = ctx.stageChange;
    const to = change?.to_stage ?? stageFromReason(entry.reason);
    const how = change?.action ?? null;
    const events = [
      make('stage-verified', `${who}: ${to ?? 'new stage'} verified in DNS${how && how !== 'advance' ? ` (${how})` : ''}`, entry.reason, {
        from: change?.from_stage ?? null,
        to,
        move: how,
        record: (entry.details as { record?: unknown } | undefined)?.record ?? null,
      }),
    ];
    return { events, settles: [...APPLY_CONDITIONS] };
  }

  if (action === 'apply-retry' || /stuck/.test(action)) {
    const d = (entry.details ?? {}) as { to_index?: unknown; intent?: unknown; attempts?: unknown };
    const type: EventType = action === 'apply-retry' ? 'change-retrying' : 'change-stuck';
    const key = `${type}:${domain ?? '-'}:${String(d.intent ?? '')}:${String(d.to_index ?? '')}`;
    // A retrying change is announced once per distinct failure (apply.ts audits once per reason).
    const fingerprint = type === 'change-retrying' ? entry.reason.replace(/retrying from \S+/, '') : '';
    return {
      events: [make(type, `${who}: change ${type === 'change-stuck' ? 'stuck' : 'failing, retrying'}`, entry.reason, { action, ...d }, { key, fingerprint })],
      settles: [],
    };
  }

  if (/refus|permanent/.test(action)) {
    return { events: [make('change-refused', `${who}: change refused`, entry.reason, { action, details: entry.details ?? null })], settles: [...APPLY_CONDITIONS] };
  }

  if (action === 'halt' && !checksOf(entry.details).length) {
    // A halt without decision checks comes from apply or the drift check.
    const abandoned = (entry.details as { abandoned_intent?: unknown } | undefined)?.abandoned_intent;
    if (/^drift\b/.test(entry.reason)) {
      return { events: [make('drift', `${who}: the _dmarc record drifted; stopped`, entry.reason, abandoned ? { abandoned_intent: abandoned } : undefined)], settles: [...APPLY_CONDITIONS] };
    }
    if (abandoned) {
      return { events: [make('change-refused', `${who}: change refused; stopped`, entry.reason, { abandoned_intent: abandoned })], settles: [...APPLY_CONDITIONS] };
    }
    return { events: [make('halted', `${who}: halted`, entry.reason)], settles: [...APPLY_CONDITIONS] };
  }

  // Other engine bookkeeping (a window reopened, an intent superseded) is in the audit log, not news.
  if (!DECISIONS.has(action)) return { events: [], settles: [] };

  // An engine decision: the action itself, and the lasting conditions its checks show.
  const checks = checksOf(entry.details);
  const events: NotifyEvent[] = [];
  const data = { action, checks: checks.filter((c) => c.outcome !== 'passed') };
  if (action === 'halt') events.push(make('halted', `${who}: halted`, entry.reason, data));
  if (action === 'rollback') events.push(make('rolled-back', `${who}: rolling back`, entry.reason, data));
  if (action === 'complete') events.push(make('rollout-complete', `${who}: rollout complete`, entry.reason));
  if (action === 'await-approval') {
    const next = stageFromApprovalReason(entry.reason);
    events.push(
      make('approval-waiting', `${who}: ${next ?? 'the next stage'} waits for approval`, entry.reason, { next }, {
        key: `approval-waiting:${domain}:${next ?? ''}`,
        fingerprint: '',
      }),
    );
  }
  for (const check of checks) {
    if (check.outcome === 'passed') continue;
    const measured = typeof check.measured === 'string' || typeof check.measured === 'number' ? String(check.measured) : '';
    if (/reporter/.test(check.rule)) {
      const type: EventType = /late/.test(check.rule) ? 'reporter-late' : 'reporter-quiet';
      events.push(
        make(type, `${who}: reporter(s) ${type === 'reporter-late' ? 'late' : 'quiet'}: ${measured}`, check.detail ?? entry.reason, { rule: check.rule, measured }, {
          key: `${type}:${domain}:${check.rule}:${measured}`,
          fingerprint: '',
        }),
      );
    } else if (/sender|source/.test(check.rule)) {
      const names = sendersIn(check.detail ?? '') ?? measured;
      events.push(
        make('blocking-sender', `${who}: sender(s) blocking enforcement`, check.detail ?? entry.reason, { rule: check.rule, measured, senders: names }, {
          key: `blocking-sender:${domain}:${check.rule}:${names}`,
          fingerprint: '',
        }),
      );
    }
  }
  return { events, settles: [...DECISION_CONDITIONS, ...(action === 'halt' || action === 'rollback' ? APPLY_CONDITIONS : [])] };
}

/** `reject:1 verified in DNS (advance); ...` → `reject:1`. */
function stageFromReason(reason: string): string | null {
  return /^(\S+:\d+) verified/.exec(reason)?.[1] ?? null;
}

/** `quarantine:100 is clean; reject:1 waits for approval ...` → `reject:1`. */
function stageFromApprovalReason(reason: string): string | null {
  return /(\S+:\d+) waits for approval/.exec(reason)?.[1] ?? null;
}

/** The sender keys in an unaligned-sender check's detail, so a different set is a new condition. */
function sendersIn(detail: string): string | null {
  const list = /:\s*(.+?);\s*allowlist/.exec(detail)?.[1];
  if (!list) return null;
  return list
    .split(';')
    .map((s) => s.trim().replace(/\s*\([^)]*\)$/, ''))
    .sort()
    .join(', ');
}
