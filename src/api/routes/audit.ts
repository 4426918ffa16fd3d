/** The audit log, newest first, paged by id and filterable by domain, actor and action. */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { auditLogPage } from '../../fleet/views.js';
import { requireRole } from '../auth.js';
import { reading, type ApiContext } from '../context.js';
import { auditPage, auditQuery, errorSchema } from '../schemas.js';

export function auditRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/v1/audit',
    {
      preHandler: requireRole(app, 'viewer'),
      schema: {
        summary: 'Audit events, newest first; pass next_before as before for the next page',
        tags: ['audit'],
        querystring: auditQuery,
        response: { 200: auditPage, 400: errorSchema, 401: errorSchema, 403: errorSchema },
      },
    },
    async (request) => auditLogPage(reading(ctx), request.query),
  );
}
