/** The rollout plans the daemon knows, valid or not (a broken plan file is listed with its problems). */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { formatPlanProblem, listPlans, type Plan } from '../../plans/index.js';
import { stageLabel } from '../../record/index.js';
import { requireRole } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorSchema, planSchema } from '../schemas.js';

const planOut = (plan: Plan) => ({
  name: plan.name,
  description: plan.description ?? null,
  record_ttl: plan.record_ttl,
  stages: plan.stages.map((s) => ({
    label: stageLabel(s),
    policy: s.policy,
    pct: s.pct,
    min_days: s.min_days,
    min_messages: s.min_messages,
    advance_max_fail_rate: s.advance_max_fail_rate,
    halt_fail_rate: s.halt_fail_rate,
    rollback_fail_rate: s.rollback_fail_rate,
    requires_approval: s.requires_approval,
  })),
});

export function planRoutes(app: FastifyInstance, ctx: ApiContext, plansIn: () => ReturnType<typeof listPlans> = () => listPlans()): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const viewer = requireRole(app, 'viewer');

  r.get(
    '/api/v1/plans',
    {
      preHandler: viewer,
      schema: {
        summary: 'Every plan file in the search path; an unusable one carries its problems instead of a plan',
        tags: ['plans'],
        response: {
          200: z.object({
            plans: z.array(z.object({ name: z.string(), file: z.string(), shadowed: z.boolean(), plan: planSchema.nullable(), problems: z.array(z.string()) })),
          }),
          401: errorSchema,
          403: errorSchema,
        },
      },
    },
    async () => ({
      plans: plansIn().map((l) => ({ name: l.name, file: l.file, shadowed: l.shadowed, plan: l.plan ? planOut(l.plan) : null, problems: l.problems.map(formatPlanProblem) })),
    }),
  );

  r.get(
    '/api/v1/plans/:name',
    {
      preHandler: viewer,
      schema: {
        summary: 'One plan by name, as the engine loads it',
        tags: ['plans'],
        params: z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a plan name: letters, digits, . _ -') }),
        response: { 200: planSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (request) => {
      const listing = plansIn().find((l) => l.name === request.params.name && !l.shadowed);
      if (!listing) throw new ApiError('not-found', `there is no plan named ${request.params.name}`);
      return planOut(ctx.loadPlan(listing.name));
    },
  );
}
