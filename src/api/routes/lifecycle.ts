/**
 * A domain's lifecycle over the API: unenroll it (its record left as it is,
 * or restored to the one found at enrolment), move it to another configured
 * provider, or to another plan keeping its stage. The same src/fleet/lifecycle
 * functions as the CLI; audited with the token's name.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { enrolledDomain } from '../../fleet/actions.js';
import { setPlanByName, setProvider, unenrollFromPage } from '../../fleet/lifecycle.js';
import { domainOverview } from '../../fleet/views.js';
import { requireRole } from '../auth.js';
import { AppError } from '../../errors.js';
import { actor, viewContext, type ApiContext } from '../context.js';
import { actionResult, domainParams, errorSchema, setPlanBody, setProviderBody, unenrollBody, unenrollResult } from '../schemas.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

export function lifecycleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const operator = requireRole(app, 'operator');
  const noProviders = { names: [] as string[], get: () => { throw new AppError('config', 'the daemon has no providers configured'); } };

  const status = async (domain: string, message: string) => ({
    domain,
    message,
    status: (await domainOverview(ctx.store, domain, ctx.now(), viewContext(ctx)))!,
  });

  r.post(
    '/api/v1/domains/:domain/unenroll',
    { preHandler: operator, schema: { summary: 'Stop managing the domain: history kept, the live record left as it is unless restore is true', tags: ['lifecycle'], params: domainParams, body: unenrollBody, response: { 200: unenrollResult, ...errors } } },
    async (request) => {
      const row = await enrolledDomain(ctx.store, request.params.domain);
      return { domain: row.domain, message: await unenrollFromPage(ctx, row.domain, actor(ctx, request), request.body.reason, request.body.restore) };
    },
  );

  r.post(
    '/api/v1/domains/:domain/set-provider',
    { preHandler: operator, schema: { summary: 'Move the domain to another configured DNS provider (its record there must be the one this program tracks)', tags: ['lifecycle'], params: domainParams, body: setProviderBody, response: { 200: actionResult, ...errors } } },
    async (request) => {
      const row = await enrolledDomain(ctx.store, request.params.domain);
      return status(row.domain, await setProvider(ctx.store, row.domain, actor(ctx, request), { provider: request.body.provider, providers: ctx.providers ?? noProviders, reason: request.body.reason }));
    },
  );

  r.post(
    '/api/v1/domains/:domain/set-plan',
    { preHandler: operator, schema: { summary: 'Move the domain to another plan, keeping its stage by label (refused when the plan lacks it)', tags: ['lifecycle'], params: domainParams, body: setPlanBody, response: { 200: actionResult, ...errors } } },
    async (request) => {
      const row = await enrolledDomain(ctx.store, request.params.domain);
      return status(row.domain, await setPlanByName(ctx, row.domain, actor(ctx, request), request.body.plan, request.body.reason));
    },
  );
}
