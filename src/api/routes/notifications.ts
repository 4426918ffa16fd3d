/**
 * Notifications over the API: recent messages and their delivery state per
 * channel, queueing undeliverable ones again, a test message to a channel,
 * and the summary the weekly mail carries. Thin doors onto src/notify.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EVENT_TYPE_NAMES, SEVERITIES } from '../../store/notify-events.js';
import { sendTestMessage } from '../../notify/outbox.js';
import { buildSummary, parsePeriod } from '../../notify/summary.js';
import { notificationsView } from '../../notify/views.js';
import { requeueFailed } from '../../store/notifications.js';
import { requireRole } from '../auth.js';
import { reading, viewContext, type ApiContext } from '../context.js';
import { errorMessage } from '../../errors.js';
import { ApiError } from '../errors.js';
import { errorSchema } from '../schemas.js';

const status = z.enum(['pending', 'delivered', 'failed']);
const channelName = z.string().min(1).max(63);

const eventSchema = z.object({
  id: z.number(),
  type: z.enum(EVENT_TYPE_NAMES as [string, ...string[]]),
  severity: z.enum(SEVERITIES as [string, ...string[]]),
  domain: z.string().nullable(),
  tags: z.array(z.string()),
  at: z.string(),
  title: z.string(),
  detail: z.string(),
  data: z.unknown(),
});

const notificationsSchema = z
  .object({
    channels: z.array(
      z.object({
        name: z.string(),
        type: z.enum(['webhook', 'slack', 'teams', 'smtp', 'unknown']),
        target: z.string().nullable(),
        events: z.array(z.string()).nullable(),
        min_severity: z.string(),
        tags: z.array(z.string()).nullable(),
        pending: z.number(),
        delivered: z.number(),
        failed: z.number(),
      }),
    ),
    messages: z.array(
      z.object({
        id: z.number(),
        key: z.string(),
        channel: z.string(),
        kind: z.enum(['digest', 'test', 'summary']),
        title: z.string(),
        severity: z.string(),
        event_count: z.number(),
        domains: z.array(z.string()),
        status,
        attempts: z.number(),
        created_at: z.string(),
        next_attempt_at: z.string().nullable(),
        last_attempt_at: z.string().nullable(),
        delivered_at: z.string().nullable(),
        last_error: z.string().nullable(),
      }),
    ),
    next_before: z.number().nullable(),
    events: z.array(eventSchema),
  })
  .meta({ id: 'Notifications' });

const summarySchema = z
  .object({
    since: z.string(),
    until: z.string(),
    totals: z.object({ domains: z.number(), by_state: z.record(z.string(), z.number()), at_reject_100: z.number(), moved: z.number() }),
    stages: z.array(z.object({ stage: z.string(), domains: z.number() })),
    domains: z.array(
      z.object({
        domain: z.string(),
        tags: z.array(z.string()),
        plan: z.string(),
        stage: z.string().nullable(),
        stage_number: z.number(),
        stage_count: z.number().nullable(),
        state: z.string(),
        days_in_stage: z.number().nullable(),
        authorised_fail_rate: z.number().nullable(),
        authorised_messages: z.number(),
        moves: z.array(z.object({ at: z.string(), from: z.string().nullable(), to: z.string(), action: z.string(), actor: z.string() })),
        waiting: z.string().nullable(),
        next: z.string().nullable(),
      }),
    ),
    waiting: z.array(z.object({ domain: z.string(), why: z.string() })),
    omitted: z.object({ domains: z.number(), waiting: z.number() }).describe('how many a large fleet left out of domains and waiting (listed: at most 200 each, the waiting and the moved first)'),
    events: z.record(z.string(), z.number()),
  })
  .meta({ id: 'Summary' });

export function notificationRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const typed = app.withTypeProvider<ZodTypeProvider>();
  typed.get(
    '/api/v1/notifications',
    {
      preHandler: requireRole(app, 'viewer'),
      schema: {
        summary: 'The channels, recent messages with their delivery state and last error (newest first; page with before), and recent events',
        tags: ['notifications'],
        querystring: z
          .object({ status: status.optional(), channel: channelName.optional(), before: z.coerce.number().int().positive().optional(), limit: z.coerce.number().int().min(1).max(500).default(50) })
          .strict(),
        response: { 200: notificationsSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (request) => {
      const { status: wanted, channel, before, limit } = request.query;
      return notificationsView(reading(ctx), ctx.notify ?? null, { ...(wanted ? { status: wanted } : {}), ...(channel ? { channel } : {}), ...(before ? { before } : {}), limit });
    },
  );

  typed.post(
    '/api/v1/notifications/retry',
    {
      preHandler: requireRole(app, 'operator'),
      schema: {
        summary: 'Queue undeliverable (failed) messages again, for one channel or all; the sender delivers them',
        tags: ['notifications'],
        body: z.object({ channel: channelName.optional() }).strict().default({}),
        response: { 200: z.object({ requeued: z.number() }), 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (request) => ({ requeued: await requeueFailed(ctx.store.db, { ...(request.body.channel ? { channel: request.body.channel } : {}), at: ctx.now().toISOString() }) }),
  );

  typed.post(
    '/api/v1/notifications/test',
    {
      preHandler: requireRole(app, 'operator'),
      schema: {
        summary: 'Send a test message to one channel now; delivered false with the error when the receiver refused it',
        tags: ['notifications'],
        body: z.object({ channel: channelName }).strict(),
        response: { 200: z.object({ channel: z.string(), key: z.string(), delivered: z.boolean(), error: z.string().nullable() }), 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (request) => {
      if (!ctx.notify) throw new ApiError('not-found', 'no notification channels are configured');
      return { channel: request.body.channel, ...(await sendTestMessage(ctx.store, ctx.notify, request.body.channel, ctx.now)) };
    },
  );

  typed.get(
    '/api/v1/summary',
    {
      preHandler: requireRole(app, 'viewer'),
      schema: {
        summary: 'Where every domain stands, what moved in the period, what waits for a person and why',
        tags: ['notifications'],
        querystring: z.object({ since: z.string().max(10).default('7d') }).strict(),
        response: { 200: summarySchema, 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (request) => {
      let since: number;
      try {
        since = parsePeriod(request.query.since);
      } catch (error) {
        throw new ApiError('invalid', errorMessage(error), [{ field: 'querystring.since', reason: errorMessage(error) }], { cause: error });
      }
      return buildSummary(reading(ctx), ctx.now(), since, viewContext(ctx));
    },
  );
}
