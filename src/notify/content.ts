/**
 * What a message says, before any channel formats it: a digest (the events
 * of one tick, grouped by domain), a test message, or the periodic summary.
 * Stored as the message's content, so a retry after a restart sends exactly
 * what was first meant to be sent.
 */
import type { NotificationEventRow } from '../store/schema.js';
import { parseTags } from '../store/notifications.js';
import { EVENT_TYPES, SEVERITIES, type EventType, type Severity } from '../store/notify-events.js';
import type { ChannelFilter } from './config.js';
import type { FleetSummary } from './summary.js';

export interface ContentEvent {
  id: number;
  type: EventType;
  severity: Severity;
  domain: string | null;
  tags: string[];
  at: string;
  title: string;
  detail: string;
  data: unknown;
}

export interface DomainGroup {
  /** null for fleet-wide events (the tick, ingest). */
  domain: string | null;
  tags: string[];
  events: ContentEvent[];
}

export interface MessageContent {
  kind: 'digest' | 'test' | 'summary';
  title: string;
  /** The most severe event's severity (info for a summary). */
  severity: Severity;
  counts: Record<Severity, number>;
  groups: DomainGroup[];
  summary?: FleetSummary;
  /** A digest too large for one message is sent in parts of at most MAX_EVENTS_PER_MESSAGE events. */
  part?: { index: number; of: number };
  /** The page's address, when configured, for links. */
  baseUrl: string | null;
}

export function contentEventOf(row: NotificationEventRow): ContentEvent {
  let data: unknown = null;
  if (row.data !== null) {
    try {
      data = JSON.parse(row.data);
    } catch {
      data = null;
    }
  }
  return {
    id: row.id,
    type: row.type as EventType,
    severity: row.severity,
    domain: row.domain,
    tags: parseTags(row.tags),
    at: row.at,
    title: row.title,
    detail: row.detail,
    data,
  };
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);

/** Whether a channel wants an event: its type, its severity, and a domain tag (fleet-wide events always pass the tag filter). */
export function channelWants(filter: ChannelFilter, event: Pick<ContentEvent, 'type' | 'severity' | 'domain' | 'tags'>): boolean {
  if (event.type === 'test') return true;
  if (filter.events && !filter.events.includes(event.type)) return false;
  if (rank(event.severity) < rank(filter.minSeverity)) return false;
  if (filter.tags && event.domain !== null && !event.tags.some((t) => filter.tags!.includes(t))) return false;
  return true;
}

/** A message carries at most this many events, so a first tick over a large fleet stays within what receivers accept. */
export const MAX_EVENTS_PER_MESSAGE = 500;

/** A digest of events: grouped by domain (fleet-wide first, then by name), each group oldest first. */
export function digestContent(events: readonly ContentEvent[], baseUrl: string | null, part?: { index: number; of: number }): MessageContent {
  const groups = new Map<string | null, DomainGroup>();
  for (const e of events) {
    let group = groups.get(e.domain);
    if (!group) groups.set(e.domain, (group = { domain: e.domain, tags: e.tags, events: [] }));
    group.events.push(e);
  }
  const ordered = [...groups.values()].sort((a, b) => (a.domain === null ? -1 : b.domain === null ? 1 : a.domain.localeCompare(b.domain)));
  const counts: Record<Severity, number> = { info: 0, warning: 0, critical: 0 };
  for (const e of events) counts[e.severity] += 1;
  const severity = [...SEVERITIES].reverse().find((s) => counts[s] > 0) ?? 'info';
  const domains = ordered.filter((g) => g.domain !== null).length;
  const first = events.length === 1 ? events[0]!.title : null;
  const title =
    first ??
    `${events.length} events${domains > 0 ? ` for ${domains} domain${domains === 1 ? '' : 's'}` : ''}` +
      (counts.critical > 0 ? ` (${counts.critical} critical)` : counts.warning > 0 ? ` (${counts.warning} warning)` : '');
  return {
    kind: 'digest',
    title: `dmarc-rollout: ${title}${part ? ` (part ${part.index} of ${part.of})` : ''}`,
    severity,
    counts,
    groups: ordered,
    ...(part ? { part } : {}),
    baseUrl,
  };
}

export function testContent(channel: string, at: Date, baseUrl: string | null): MessageContent {
  const event: ContentEvent = {
    id: 0,
    type: 'test',
    severity: EVENT_TYPES.test.severity,
    domain: null,
    tags: [],
    at: at.toISOString(),
    title: `test message for channel ${channel}`,
    detail: `If you read this, channel ${channel} reaches you. Sent by dmarc-rollout notify test at ${at.toISOString()}.`,
    data: null,
  };
  return { ...digestContent([event], baseUrl), kind: 'test', title: `dmarc-rollout: test message for channel ${channel}` };
}

export function summaryContent(summary: FleetSummary, baseUrl: string | null): MessageContent {
  return {
    kind: 'summary',
    title: `dmarc-rollout summary ${summary.since.slice(0, 10)} to ${summary.until.slice(0, 10)}: ${summary.totals.domains} domains, ${summary.waiting.length} waiting for a person`,
    severity: 'info',
    counts: { info: 0, warning: 0, critical: 0 },
    groups: [],
    summary,
    baseUrl,
  };
}
