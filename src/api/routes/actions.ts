/**
 * What an operator does to a domain: approve, pause, resume, roll back,
 * force. Each calls the same src/fleet/actions function as the CLI, is
 * audited with the token's name, and answers with the domain's new status.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { approve, enrolledDomain, force, pause, resume, rollback } from '../../fleet/actions.js';
import { domainOverview } from '../../fleet/views.js';
import type { DomainRow } from '../../store/schema.js';
import { requireRole } from '../auth.js';
import { actor, viewContext, type ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { actionResult, approveBody, domainParams, errorSchema, forceBody, pauseBody, resumeBody, rollbackBody } from '../schemas.js';

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema };

export function actionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const operator = requireRole(app, 'operator');

  const answer = async (domain: string, message: string) => {
    const status = await domainOverview(ctx.store, domain, ctx.now(), viewContext(ctx));
    if (!status) throw new ApiError('not-found', `${domain} is not enrolled`);
    return { domain, message, status };
  };

  const route = <B extends z.ZodType>(
    name: string,
    summary: string,
    body: B,
    run: (row: DomainRow, body: z.output<B>, request: FastifyRequest) => Promise<string>,
  ) =>
    r.post(
      `/api/v1/domains/:domain/${name}`,
      { preHandler: operator, schema: { summary, tags: ['actions'], params: domainParams, body, response: { 200: actionResult, ...errors } } },
      async (request) => {
        const row = await enrolledDomain(ctx.store, request.params.domain);
        return answer(row.domain, await run(row, request.body as z.output<B>, request));
      },
    );

  route('approve', 'Approve the gated next stage; the next tick moves once the current stage is clean', approveBody, (row, body, request) =>
    approve(ctx.store, row.domain, ctx.loadPlan, actor(ctx, request), body.reason),
  );
  route('pause', 'Stop the domain where it is until resumed (a reason is required)', pauseBody, (row, body, request) =>
    pause(ctx.store, row.domain, actor(ctx, request), body.reason),
  );
  route('resume', 'Let a paused or halted domain move again', resumeBody, (row, body, request) =>
    resume(ctx.store, row.domain, actor(ctx, request), body.reason ?? 'resumed'),
  );
  route('rollback', 'Go back one stage, or to a named earlier stage; the next tick writes and verifies it', rollbackBody, (row, body, request) =>
    rollback(ctx.store, row.domain, ctx.loadPlan, actor(ctx, request), {
      reason: body.reason ?? 'rolled back by an operator',
      ...(body.to !== undefined ? { to: body.to } : {}),
    }),
  );
  route('force', 'Move to any stage of the plan, forwards or back (a reason is required)', forceBody, (row, body, request) =>
    force(ctx.store, row.domain, ctx.loadPlan, actor(ctx, request), { to: body.to, reason: body.reason }),
  );
}
