/**
 * The web page's routes: sign-in with a token, the fleet, a domain, the
 * approvals queue and the audit log, and the forms behind the buttons. Pages
 * are rendered by src/web from the same views the API returns; the buttons
 * call the same fleet actions as the API and the CLI, audited as
 * `web:<token name>`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { approve, enrolledDomain, pause, resume, rollback } from '../fleet/actions.js';
import { setPlanByName, setProvider, unenrollFromPage } from '../fleet/lifecycle.js';
import { approvalsQueue, auditLogPage, domainView } from '../fleet/views.js';
import { fleetPage } from '../fleet/fleet-page.js';
import { domainsPerState } from '../store/assessments.js';
import type { DomainState } from '../store/schema.js';
import { APP_CSS } from '../web/assets.js';
import { buildSummary } from '../notify/summary.js';
import { notificationsView } from '../notify/views.js';
import { requeueFailed } from '../store/notifications.js';
import { renderNotificationsPage } from '../web/notifications-page.js';
import {
  renderApprovalsPage,
  renderAuditPage,
  renderDomainPage,
  renderErrorPage,
  renderFleetPage,
  renderLoginPage,
  type PageContext,
} from '../web/pages.js';
import { checkCsrf, issueSignInToken, signIn, signInTokenValid } from './auth.js';
import { actor, reading, viewContext, type ApiContext } from './context.js';
import { AppError, errorMessage } from '../errors.js';
import { toErrorResponse } from './errors.js';
import { AttemptLimiter } from './rate-limit.js';
import { safeLocalPath as localPath } from './redirect.js';
import type { TokenSet } from './tokens.js';

declare module 'fastify' {
  interface Session {
    /** One message shown on the next page (after a form's redirect). */
    flash?: { kind: 'ok' | 'error'; text: string };
  }
}

/** Sign-in attempts per client address: ten failures in ten minutes, then 429 until the oldest ages out. */
export const SIGN_IN_LIMIT = { attempts: 10, windowMs: 10 * 60_000 };

/** The page's buttons, by the name in the form's address; anything else is a 404 (no `__proto__`, no `toString`). */
const PAGE_ACTIONS = ['approve', 'pause', 'resume', 'rollback', 'unenroll', 'set-provider', 'set-plan'] as const;
type PageAction = (typeof PAGE_ACTIONS)[number];
const isPageAction = (name: string): name is PageAction => (PAGE_ACTIONS as readonly string[]).includes(name);

/** Rows of the fleet table per page. */
const FLEET_PAGE_ROWS = 200;

const firstString = (value: unknown): string | undefined => {
  const v = Array.isArray(value) ? value[0] : value;
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
};

export function webRoutes(app: FastifyInstance, ctx: ApiContext, tokens: TokenSet, signInForm: { secret: string; secureCookie: boolean }): void {
  // Counted in the store: every API server on the database shares one limit per client.
  const attempts = new AttemptLimiter(ctx.store.db, SIGN_IN_LIMIT);
  const signInPage = (reply: FastifyReply, next: string, status = 200, error?: string) =>
    html(reply, renderLoginPage({ csrfToken: issueSignInToken(reply, signInForm.secret, signInForm.secureCookie), next, ...(error ? { error } : {}) }), status);
  const html = (reply: FastifyReply, body: string, status = 200) => reply.code(status).type('text/html; charset=utf-8').send(body);

  function pageContext(request: FastifyRequest, reply: FastifyReply): PageContext {
    const flash = request.session.get('flash');
    if (flash) request.session.set('flash', undefined);
    return {
      user: { name: request.principal!.name, role: request.principal!.role },
      csrfToken: reply.generateCsrf(),
      ...(flash ? { flash } : {}),
    };
  }

  /** A page for signed-in people: anyone else goes to the sign-in form and comes back after. */
  const page =
    (render: (request: FastifyRequest, reply: FastifyReply) => Promise<string>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      if (!request.principal) return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
      try {
        return html(reply, await render(request, reply));
      } catch (error) {
        const { status, body } = toErrorResponse(error, request);
        return html(reply, renderErrorPage(pageContext(request, reply), status, body.error.message), status);
      }
    };

  app.get('/assets/app.css', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('Cache-Control', 'public, max-age=3600').send(APP_CSS),
  );

  app.get('/login', { schema: { hide: true } }, async (request, reply) => {
    const next = localPath((request.query as { next?: unknown }).next);
    if (request.principal) return reply.redirect(next, 303);
    return signInPage(reply, next);
  });

  app.post('/ui/login', { schema: { hide: true } }, async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const next = localPath(body.next);
    // Every POST counts as an attempt until it signs in (then the client's count is cleared).
    const wait = await attempts.attempt(request.ip, new Date());
    if (wait > 0) {
      reply.header('Retry-After', String(wait));
      return signInPage(reply, next, 429, `Too many failed sign-ins from this address. Try again in ${Math.ceil(wait / 60)} minute(s).`);
    }
    if (!signInTokenValid(request, signInForm.secret, body._csrf)) {
      return signInPage(reply, next, 403, 'The form had expired. Please sign in again.');
    }
    const token = firstString(body.token);
    const principal = token ? await signIn(request, tokens, token) : undefined;
    if (!principal) {
      request.log.warn({ ip: request.ip }, 'sign-in with an unknown token');
      return signInPage(reply, next, 401, 'That token is not known here.');
    }
    await attempts.clear(request.ip);
    request.log.info({ holder: principal.name, role: principal.role }, 'signed in');
    return reply.redirect(next, 303);
  });

  app.post('/ui/logout', { schema: { hide: true } }, async (request, reply) => {
    if (request.principal) {
      try {
        await checkCsrf(app, request, reply);
      } catch {
        return reply.redirect('/', 303);
      }
      await request.session.destroy();
    }
    return reply.redirect('/login', 303);
  });

  app.get(
    '/',
    { schema: { hide: true } },
    page(async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const state = firstString(query.state);
      const q = firstString(query.q);
      const offsetText = firstString(query.offset);
      const offset = offsetText !== undefined && /^\d{1,9}$/.test(offsetText) ? Number(offsetText) : 0;
      // One page of the fleet, filtered in SQL; the counts over the whole fleet come from grouped reads.
      const known = (['active', 'paused', 'halted', 'completed'] as const).find((s) => s === state) as DomainState | undefined;
      const view = viewContext(ctx);
      const page = await fleetPage(reading(ctx), ctx.now(), view, { ...(known ? { state: known } : {}), ...(q?.trim() ? { q: q.trim() } : {}), limit: FLEET_PAGE_ROWS, offset });
      const byState = await domainsPerState(ctx.store.reader);
      const awaiting = (await fleetPage(reading(ctx), ctx.now(), view, { awaitingApproval: true, limit: 1, remeasure: 0 })).total;
      return renderFleetPage(pageContext(request, reply), {
        domains: page.domains,
        filter: { ...(state ? { state } : {}), ...(q ? { q } : {}) },
        counts: { all: Object.values(byState).reduce((a, b) => a + b, 0), byState, awaiting },
        pager: { offset, total: page.total, nextOffset: page.next_offset, prevOffset: offset > 0 ? Math.max(0, offset - FLEET_PAGE_ROWS) : null },
      });
    }),
  );

  app.get(
    '/domains/:domain',
    { schema: { hide: true } },
    page(async (request, reply) => {
      const row = await enrolledDomain(reading(ctx), (request.params as { domain: string }).domain);
      const view = (await domainView(reading(ctx), row.domain, ctx.now(), viewContext(ctx)))!;
      return renderDomainPage(pageContext(request, reply), view);
    }),
  );

  app.get(
    '/approvals',
    { schema: { hide: true } },
    page(async (request, reply) => renderApprovalsPage(pageContext(request, reply), { domains: await approvalsQueue(reading(ctx), ctx.now(), viewContext(ctx)) })),
  );

  app.get(
    '/audit',
    { schema: { hide: true } },
    page(async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const domain = firstString(query.domain);
      const actorName = firstString(query.actor);
      const action = firstString(query.action);
      const beforeText = firstString(query.before);
      const before = beforeText !== undefined && /^\d+$/.test(beforeText) ? Number(beforeText) : undefined;
      const filter = { ...(domain ? { domain } : {}), ...(actorName ? { actor: actorName } : {}), ...(action ? { action } : {}) };
      const { events, next_before } = await auditLogPage(reading(ctx), { ...filter, ...(before ? { before } : {}), limit: 100 });
      return renderAuditPage(pageContext(request, reply), { events, filter, nextBefore: next_before });
    }),
  );

  app.get(
    '/notifications',
    { schema: { hide: true } },
    page(async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const statusText = firstString(query.status);
      const status = (['pending', 'delivered', 'failed'] as const).find((s) => s === statusText);
      const channel = firstString(query.channel);
      const beforeText = firstString(query.before);
      const before = beforeText !== undefined && /^\d+$/.test(beforeText) ? Number(beforeText) : undefined;
      const filter = { ...(status ? { status } : {}), ...(channel ? { channel } : {}) };
      const view = await notificationsView(reading(ctx), ctx.notify ?? null, { ...filter, ...(before ? { before } : {}), limit: 100 });
      const summary = await buildSummary(reading(ctx), ctx.now(), 7 * 86_400_000, viewContext(ctx));
      return renderNotificationsPage(pageContext(request, reply), { view, summary, filter });
    }),
  );

  app.post('/ui/notifications/retry', { schema: { hide: true } }, async (request, reply) => {
    if (!request.principal) return reply.redirect('/login', 303);
    if (request.principal.role !== 'operator') {
      return html(reply, renderErrorPage(pageContext(request, reply), 403, `"${request.principal.name}" holds a viewer token; retrying needs an operator`), 403);
    }
    try {
      await checkCsrf(app, request, reply);
    } catch (error) {
      return html(reply, renderErrorPage(pageContext(request, reply), 403, errorMessage(error)), 403);
    }
    const channel = firstString((request.body as Record<string, unknown> | undefined)?.channel);
    const n = await requeueFailed(ctx.store.db, { ...(channel ? { channel } : {}), at: ctx.now().toISOString() });
    request.log.info({ holder: request.principal.name, channel: channel ?? null, requeued: n }, 'undeliverable notifications queued again');
    request.session.set('flash', { kind: 'ok', text: `${n} undeliverable message(s) queued again${channel ? ` for ${channel}` : ''}` });
    return reply.redirect('/notifications', 303);
  });

  // The buttons. Each answers with a redirect to the domain page and a one-line message (post/redirect/get).
  const actions: Record<PageAction, (domain: string, request: FastifyRequest, reason: string | undefined, to: string | undefined) => Promise<string>> = {
    approve: (d, request, reason) => approve(ctx.store, d, ctx.loadPlan, actor(ctx, request), reason ?? 'approved on the web page'),
    pause: (d, request, reason) => pause(ctx.store, d, actor(ctx, request), reason ?? ''),
    resume: (d, request, reason) => resume(ctx.store, d, actor(ctx, request), reason ?? 'resumed on the web page'),
    rollback: (d, request, reason, to) =>
      rollback(ctx.store, d, ctx.loadPlan, actor(ctx, request), { reason: reason ?? 'rolled back on the web page', ...(to ? { to } : {}) }),
    // The lifecycle forms name their target in `to`: the provider, the plan, or what becomes of the record (keep or restore).
    unenroll: (d, request, reason, to) => unenrollFromPage(ctx, d, actor(ctx, request), reason ?? '', to === 'restore'),
    'set-provider': (d, request, reason, to) =>
      setProvider(ctx.store, d, actor(ctx, request), { provider: to ?? '', providers: ctx.providers ?? { names: [], get: () => { throw new AppError('config', 'the daemon has no providers configured'); } }, reason: reason ?? '' }),
    'set-plan': (d, request, reason, to) => setPlanByName(ctx, d, actor(ctx, request), to ?? '', reason ?? ''),
  };

  app.post('/ui/domains/:domain/:action', { schema: { hide: true } }, async (request, reply) => {
    const { domain: input, action } = request.params as { domain: string; action: string };
    if (!request.principal) return reply.redirect('/login', 303);
    const back = `/domains/${encodeURIComponent(input)}`;
    if (!isPageAction(action)) return html(reply, renderErrorPage(pageContext(request, reply), 404, `there is no action "${action}"`), 404);
    const run = actions[action];
    if (request.principal.role !== 'operator') {
      return html(reply, renderErrorPage(pageContext(request, reply), 403, `"${request.principal.name}" holds a viewer token; ${action} needs an operator`), 403);
    }
    try {
      await checkCsrf(app, request, reply);
    } catch (error) {
      return html(reply, renderErrorPage(pageContext(request, reply), 403, errorMessage(error)), 403);
    }
    const body = (request.body ?? {}) as Record<string, unknown>;
    try {
      const row = await enrolledDomain(ctx.store, input);
      const message = await run(row.domain, request, firstString(body.reason), firstString(body.to));
      request.session.set('flash', { kind: 'ok', text: message });
      // An unenrolled domain has no page any more: back to the fleet.
      if (action === 'unenroll') return reply.redirect('/', 303);
    } catch (error) {
      const { status, body: errorBody } = toErrorResponse(error, request);
      if (status >= 500) throw error;
      request.session.set('flash', { kind: 'error', text: errorBody.error.message });
    }
    return reply.redirect(back, 303);
  });
}
