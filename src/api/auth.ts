/**
 * Who is asking, and may they: a bearer token (scripts, Prometheus) or a page
 * session made by signing in with a token. Tokens carry a role; `viewer`
 * reads, `operator` also acts. A session's state-changing requests must carry
 * the CSRF token its page was rendered with; a bearer request needs none,
 * since no browser attaches it on its own.
 */
import type {} from '@fastify/csrf-protection';
import type {} from '@fastify/session';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { ApiRole } from './config.js';
import { ApiError } from './errors.js';
import { hashToken, roleAllows, type Principal, type TokenSet } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated holder, null when the request carries no valid credentials. */
    principal: Principal | null;
    /** How the principal was authenticated. */
    authVia: 'token' | 'session' | null;
  }
  interface Session {
    /** The signed-in token holder; the hash lets a revoked token end its sessions. */
    principal?: { name: string; sha256: string };
  }
}

/** Reads the credentials on every request; routes then ask for a role with requireRole(). */
export function registerAuthentication(app: FastifyInstance, tokens: TokenSet): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('authVia', null);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match) throw new ApiError('unauthorized', 'the Authorization header must be "Bearer <token>"', [{ field: 'headers.authorization', reason: 'not a bearer token' }]);
      const principal = tokens.lookup(match[1]!);
      if (!principal) throw new ApiError('unauthorized', 'the bearer token is not known (revoked, mistyped or from another installation)', [{ field: 'headers.authorization', reason: 'unknown token' }]);
      request.principal = principal;
      request.authVia = 'token';
      return;
    }
    const signedIn = request.session?.get('principal');
    if (signedIn) {
      const principal = tokens.holder(signedIn.name, signedIn.sha256);
      if (principal) {
        request.principal = principal;
        request.authVia = 'session';
      } else {
        await request.session.destroy();
      }
    }
  });
}

/** Signs the session in as the holder of `token`; false when the token is not known. */
export async function signIn(request: FastifyRequest, tokens: TokenSet, token: string): Promise<Principal | undefined> {
  const principal = tokens.lookup(token.trim());
  if (!principal) return undefined;
  // A new session id at sign-in: a session id planted before sign-in is worth nothing after it.
  await request.session.regenerate();
  request.session.set('principal', { name: principal.name, sha256: hashToken(token.trim()) });
  return principal;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A preHandler made by requireRole, marked with the role so the route's onRequest can check it first. */
type RoleGuard = ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) & { requiredRole: ApiRole };

function principalFor(request: FastifyRequest, reply: FastifyReply, role: ApiRole): void {
  const principal = request.principal;
  if (!principal) {
    reply.header('WWW-Authenticate', 'Bearer realm="dmarc-rollout"');
    throw new ApiError('unauthorized', 'sign in or send "Authorization: Bearer <token>"', [{ field: 'headers.authorization', reason: 'missing' }]);
  }
  if (!roleAllows(principal.role, role)) {
    throw new ApiError('forbidden', `"${principal.name}" holds a ${principal.role} token; this needs ${role}`);
  }
}

/**
 * A preHandler that lets through only holders of `role` (or better). API
 * routes answer 401/403 as JSON; session requests that change state must pass
 * the CSRF check (which needs the parsed body, hence a preHandler). The role
 * itself is also checked before the body is read: see checkRolesFirst.
 */
export function requireRole(app: FastifyInstance, role: ApiRole): RoleGuard {
  const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    principalFor(request, reply, role);
    if (request.authVia === 'session' && !SAFE_METHODS.has(request.method)) await checkCsrf(app, request, reply);
  };
  return Object.assign(guard, { requiredRole: role });
}

/**
 * Moves each route's role check to onRequest: a request without the right
 * credentials is answered 401/403 before its body is read or validated, so an
 * anonymous client learns nothing from validation errors and costs no parsing.
 * Register before the routes.
 */
export function checkRolesFirst(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const handlers = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler];
    const guard = handlers.find((h): h is RoleGuard => typeof (h as Partial<RoleGuard>).requiredRole === 'string');
    if (!guard) return;
    const early = async (request: FastifyRequest, reply: FastifyReply) => principalFor(request, reply, guard.requiredRole);
    const before = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...before, early] as RouteOptions['onRequest'];
  });
}

/**
 * The sign-in form's CSRF check, without a stored session: an anonymous
 * visitor to the sign-in page leaves no row in the store. The page sets a
 * random nonce in a SameSite=Strict cookie and puts its HMAC in the form;
 * a cross-site form post carries no cookie, so it cannot sign a visitor in
 * under someone else's token.
 */
export const SIGN_IN_COOKIE = 'dmarc_rollout_sign_in';

export function issueSignInToken(reply: FastifyReply, secret: string, secure: boolean): string {
  const nonce = randomBytes(24).toString('base64url');
  // Like the session cookie: a Secure cookie is not sent over plain http (nor to a peer trust_proxy does not believe).
  if (!secure || reply.request.protocol === 'https') {
    reply.setCookie(SIGN_IN_COOKIE, nonce, { path: '/ui/login', httpOnly: true, sameSite: 'strict', secure, maxAge: 3600 });
  }
  return signInMac(secret, nonce);
}

export function signInTokenValid(request: FastifyRequest, secret: string, formToken: unknown): boolean {
  const nonce = request.cookies?.[SIGN_IN_COOKIE];
  if (typeof nonce !== 'string' || nonce === '' || typeof formToken !== 'string') return false;
  const expected = Buffer.from(signInMac(secret, nonce));
  const given = Buffer.from(formToken);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

const signInMac = (secret: string, nonce: string) => createHmac('sha256', secret).update(`sign-in:${nonce}`).digest('base64url');

/** Runs @fastify/csrf-protection's check, turning its refusal into our JSON error. */
export function checkCsrf(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  return new Promise((resolve, reject) => {
    const sent = reply.send.bind(reply);
    // The plugin reports a failure by calling reply.send(error); catch it instead.
    reply.send = ((payload: unknown) => {
      reply.send = sent;
      reject(new ApiError('forbidden', 'the form is stale or was not sent by this page (CSRF check failed); reload and try again', [{ field: 'body._csrf', reason: 'missing or wrong' }]));
      return reply;
    }) as typeof reply.send;
    app.csrfProtection(request, reply, () => {
      reply.send = sent;
      resolve();
    });
  });
}

/** The audit log's name for who acted: `api:<token>` for bearer calls, `web:<token>` for the page. */
export function actorOf(request: FastifyRequest): string {
  const p = request.principal;
  if (!p) throw new ApiError('unauthorized', 'not signed in');
  return `${request.authVia === 'session' ? 'web' : 'api'}:${p.name}`;
}
