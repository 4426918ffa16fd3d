/**
 * Sending sources a person vouches for (allowlisted: counted as authorised)
 * or marks as abuse, per domain or for all. Entries from the daemon config
 * are listed too but are changed in the file.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { classifySource, parseSourceSpec, removeSourceRule } from '../../fleet/actions.js';
import { listSourceRules } from '../../store/source-rules.js';
import type { SourceRuleRow } from '../../store/schema.js';
import { requireRole } from '../auth.js';
import { actor, enrolledDomain, type ApiContext } from '../context.js';
import { ApiError, badField } from '../errors.js';
import { allowlistBody, allowlistEntrySchema, allowlistQuery, errorSchema } from '../schemas.js';

const specText = (kind: string, value: string) => (kind === 'ip' ? value : `${kind}:${value}`);

const fromStore = (r: SourceRuleRow) => ({
  id: r.id,
  domain: r.domain,
  source: specText(r.kind, r.value),
  verdict: r.verdict,
  from: 'store' as const,
  added_by: r.added_by,
  added_at: r.added_at,
  note: r.note,
});

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
    async (request) => {
      const domain = request.query.domain === undefined ? undefined : (await enrolledDomain(ctx, request.query.domain, 'query.domain')).domain;
      const stored = (await listSourceRules(ctx.store.db, domain)).map(fromStore);
      const configured = ctx.sourceRules
        .filter((rule) => domain === undefined || rule.domain === null || rule.domain === domain)
        .map((rule) => ({
          id: null,
          domain: rule.domain,
          source: specText(rule.kind, rule.value),
          verdict: rule.verdict,
          from: 'config' as const,
          added_by: null,
          added_at: null,
          note: null,
        }));
      return { entries: [...stored, ...configured] };
    },
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
      const body = request.body;
      const domain = body.domain === null ? null : (await enrolledDomain(ctx, body.domain, 'body.domain')).domain;
      let spec;
      try {
        spec = parseSourceSpec(body.source);
      } catch (error) {
        throw badField('body.source', (error as Error).message);
      }
      const { message, added } = await classifySource(ctx.store, domain, body.source, body.verdict, actor(ctx, request), body.note ?? null);
      const rows = await listSourceRules(ctx.store.db);
      const entry = rows.find((row) => row.domain === domain && row.kind === spec.kind && row.value === spec.value && row.verdict === body.verdict)!;
      return { message, created: added, entry: fromStore(entry) };
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
    async (request) => {
      const exists = (await listSourceRules(ctx.store.db)).some((row) => row.id === request.params.id);
      if (!exists) throw new ApiError(404, 'not-found', `there is no allowlist entry ${request.params.id}`);
      return { message: await removeSourceRule(ctx.store, request.params.id, actor(ctx, request), request.query.reason) };
    },
  );
}
