/**
 * What a person looks at about notifications: the channels (never their
 * secrets), recent messages with their delivery state and last error, the
 * counts per channel and status, and recent events. One function for the
 * page, the API and `notify list`.
 */
import type { Store } from '../store/open.js';
import { messageCounts, recentEvents, recentMessages } from '../store/notifications.js';
import type { NotificationMessageRow } from '../store/schema.js';
import type { NotifySettings } from './config.js';
import { contentEventOf, type ContentEvent, type MessageContent } from './content.js';

export interface ChannelView {
  name: string;
  /** unknown: messages remain for a channel the config no longer has. */
  type: 'webhook' | 'slack' | 'teams' | 'smtp' | 'unknown';
  /** Where it goes, without secrets: the SMTP host and recipients; nothing for URL channels (the URL is a secret). */
  target: string | null;
  events: string[] | null;
  min_severity: string;
  tags: string[] | null;
  pending: number;
  delivered: number;
  failed: number;
}

export interface MessageView {
  id: number;
  key: string;
  channel: string;
  kind: NotificationMessageRow['kind'];
  title: string;
  severity: string;
  event_count: number;
  /** The domains the message is about. */
  domains: string[];
  status: NotificationMessageRow['status'];
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  delivered_at: string | null;
  last_error: string | null;
}

export interface NotificationsView {
  channels: ChannelView[];
  messages: MessageView[];
  /** For paging: pass as `before` for older messages; null at the end. */
  next_before: number | null;
  events: ContentEvent[];
}

export interface NotificationsQuery {
  status?: NotificationMessageRow['status'];
  channel?: string;
  before?: number;
  limit?: number;
}

export function messageView(row: NotificationMessageRow): MessageView {
  let content: Partial<MessageContent> = {};
  try {
    content = JSON.parse(row.content) as MessageContent;
  } catch {
    content = {};
  }
  return {
    id: row.id,
    key: row.key,
    channel: row.channel,
    kind: row.kind,
    title: content.title ?? row.kind,
    severity: content.severity ?? 'info',
    event_count: row.event_count,
    domains: (content.groups ?? []).map((g) => g.domain).filter((d): d is string => d !== null),
    status: row.status,
    attempts: row.attempts,
    created_at: row.created_at,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at : null,
    last_attempt_at: row.last_attempt_at,
    delivered_at: row.delivered_at,
    last_error: row.last_error,
  };
}

export async function notificationsView(store: Store, settings: Pick<NotifySettings, 'channels'> | null, query: NotificationsQuery = {}): Promise<NotificationsView> {
  const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
  const rows = await recentMessages(store.db, { ...query, limit: limit + 1 });
  const counts = await messageCounts(store.db);
  const count = (channel: string, status: string) => counts.find((c) => c.channel === channel && c.status === status)?.n ?? 0;
  const configured = settings?.channels ?? [];
  const channels: ChannelView[] = configured.map((c) => ({
    name: c.name,
    type: c.type,
    target: c.type === 'smtp' ? `${c.to.join(', ')} via ${c.host}:${c.port}` : null,
    events: c.filter.events,
    min_severity: c.filter.minSeverity,
    tags: c.filter.tags,
    pending: count(c.name, 'pending'),
    delivered: count(c.name, 'delivered'),
    failed: count(c.name, 'failed'),
  }));
  // Messages for a channel no longer in the config stay visible, so nothing queued is hidden.
  for (const name of new Set(counts.map((c) => c.channel))) {
    if (configured.some((c) => c.name === name)) continue;
    channels.push({ name, type: 'unknown', target: '(not in the config any more)', events: null, min_severity: 'info', tags: null, pending: count(name, 'pending'), delivered: count(name, 'delivered'), failed: count(name, 'failed') });
  }
  const page = rows.slice(0, limit);
  return {
    channels,
    messages: page.map(messageView),
    next_before: rows.length > limit ? page.at(-1)!.id : null,
    events: (await recentEvents(store.db, { limit: 50 })).map(contentEventOf),
  };
}
