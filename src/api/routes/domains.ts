/** Reading the fleet: domains (filtered), one domain in depth, the approvals queue. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { enrolledDomain } from '../../fleet/actions.js';
import { approvalsQueue, domainView } from '../../fleet/views.js';
import { fleetPage } from '../../fleet/fleet-page.js';
import { requireRole } from '../auth.js';
import { reading, viewContext, type ApiContext } from '../context.js';
import { domainListQuery, domainListResponse, domainOverviewSchema, domainParams, domainViewSchema, errorSchema } from '../schemas.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

export function domainRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const viewer = requireRole(app, 'viewer');

  r.get(
    '/api/v1/domains',
    {
      preHandler: viewer,
      schema: {
        summary: 'Enrolled domains with their stage, state, figures and next decision (as the last tick measured them), a page at a time, filtered and sorted',
        tags: ['domains'],
        querystring: domainListQuery,
        response: { 200: domainListResponse, ...errors },
      },
    },
    async (request) => {
      const { awaiting_approval: awaiting, ...q } = request.query;
      return fleetPage(reading(ctx), ctx.now(), viewContext(ctx), { ...q, ...(awaiting !== undefined ? { awaitingApproval: awaiting === 'true' } : {}) });
    },
  );

  r.get(
    '/api/v1/domains/:domain',
    {
      preHandler: viewer,
      schema: {
        summary: 'One domain: stage, state, stage-window figures, the checks of the next decision, sources, records now and next, daily series, history and audit',
        tags: ['domains'],
        params: domainParams,
        querystring: z.object({ days: z.coerce.number().int().min(1).max(400).default(90) }).strict(),
        response: { 200: domainViewSchema, ...errors },
      },
    },
    async (request) => {
      const row = await enrolledDomain(reading(ctx), request.params.domain);
      return (await domainView(reading(ctx), row.domain, ctx.now(), viewContext(ctx), { days: request.query.days }))!;
    },
  );

  r.get(
    '/api/v1/approvals',
    {
      preHandler: viewer,
      schema: {
        summary: 'Domains waiting for a person: the next stage is gated and everything else says go, or approved and not yet moved',
        tags: ['domains'],
        response: { 200: z.object({ domains: z.array(domainOverviewSchema) }), 401: errorSchema, 403: errorSchema },
      },
    },
    async () => ({ domains: await approvalsQueue(reading(ctx), ctx.now(), viewContext(ctx)) }),
  );
}
