/**
 * Sending sources a person vouches for (allowlisted: counted as authorised)
 * or marks as abuse, per domain or for all. Entries from the daemon config
 * are listed too but are changed in the file.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { classifySource, removeSourceRule } from '../../fleet/actions.js';
import { allowlistEntries, allowlistEntryOf } from '../../fleet/views.js';
import { requireRole } from '../auth.js';
import { actor, reading, type ApiContext } from '../context.js';
import { allowlistBody, allowlistEntrySchema, allowlistQuery, errorSchema } from '../schemas.js';

export function allowlistRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const viewer = requireRole(app, 'viewer');
  const operator = requireRole(app, 'operator');

  r.get(
    '/api/v1/allowlist',
    {
      preHandler: viewer,
      schema: {
        summary: 'Allowlist and abuse entries: all, or (with domain) the ones that apply to that domain, its own and the global ones',
        tags: ['allowlist'],
        querystring: allowlistQuery,
        response: { 200: z.object({ entries: z.array(allowlistEntrySchema) }), 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (request) => ({ entries: await allowlistEntries(reading(ctx), ctx.sourceRules, request.query.domain) }),
  );

  r.post(
    '/api/v1/allowlist',
    {
      preHandler: operator,
      schema: {
        summary: 'Allowlist a source (verdict authorised) or mark it as abuse, for one domain or (domain null) all; audited',
        tags: ['allowlist'],
        body: allowlistBody,
        response: {
          200: z.object({ message: z.string(), created: z.boolean(), entry: allowlistEntrySchema }),
          400: errorSchema,
          401: errorSchema,
          403: errorSchema,
          404: errorSchema,
        },
      },
    },
    async (request) => {
      const { domain, source, verdict, note } = request.body;
      const { message, added, rule } = await classifySource(ctx.store, domain, source, verdict, actor(ctx, request), note ?? null);
      return { message, created: added, entry: allowlistEntryOf(rule) };
    },
  );

  r.delete(
    '/api/v1/allowlist/:id',
    {
      preHandler: operator,
      schema: {
        summary: 'Remove an allowlist or abuse entry made through the API or CLI; audited',
        tags: ['allowlist'],
        params: z.object({ id: z.coerce.number().int().positive() }),
        querystring: z.object({ reason: z.string().trim().min(1).max(1000).default('removed') }).strict(),
        response: { 200: z.object({ message: z.string() }), 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema },
      },
    },
    async (request) => ({ message: await removeSourceRule(ctx.store, request.params.id, actor(ctx, request), request.query.reason) }),
  );
}
