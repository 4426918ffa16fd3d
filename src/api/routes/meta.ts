/** The daemon's own endpoints: liveness, Prometheus metrics and the OpenAPI document. */
import type { FastifyInstance } from 'fastify';
import { requireRole } from '../auth.js';
import type { ApiContext } from '../context.js';

export function metaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  // Probes and scrapes come every few seconds: their requests are not worth a log line each.
  // No token: probes have none. It tells whether the schedules run (503 on a stall), never any domain's data.
  app.get('/healthz', { schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) => {
    if (!ctx.health) return { ok: true };
    const report = ctx.health();
    // Source names and errors (hosts, paths) are for the log and the operator, not for anyone who can reach the port.
    // Which replica answered and how many are alive: what an operator behind a load balancer asks first.
    const instances = report.instance === undefined ? {} : { instance: report.instance, live_instances: report.live_instances };
    return reply.code(report.ok ? 200 : 503).send({ ok: report.ok, problems: report.problems, failing_sources: report.sources.length, ...instances });
  });

  app.get('/metrics', { preHandler: requireRole(app, 'viewer'), schema: { hide: true }, logLevel: 'warn' }, async (_request, reply) => {
    if (!ctx.metrics) return reply.code(404).send({ error: { status: 404, code: 'not-found', message: 'metrics are not collected in this process', issues: [] } });
    const { contentType, body } = await ctx.metrics.render();
    return reply.type(contentType).send(body);
  });

  // Behind a viewer token: the document is no secret (the code is open), but it names every door and its
  // version, which is a map for nobody who has no token.
  app.get('/api/v1/openapi.json', { preHandler: requireRole(app, 'viewer'), schema: { hide: true } }, async () => app.swagger());
}
