/**
 * The HTTP server the daemon runs: the JSON API under /api/v1 (with its
 * OpenAPI document), the web page, and /metrics. Assembly only: plugins,
 * authentication, the one error shape, and the routes registered in one place.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifySession from '@fastify/session';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { checkRolesFirst, registerAuthentication } from './auth.js';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './context.js';
import { AppError, errorMessage } from '../errors.js';
import { ApiError, errorBody, sendError } from './errors.js';
import { actionRoutes } from './routes/actions.js';
import { lifecycleRoutes } from './routes/lifecycle.js';
import { allowlistRoutes } from './routes/allowlist.js';
import { auditRoutes } from './routes/audit.js';
import { notificationRoutes } from './routes/notifications.js';
import { domainRoutes } from './routes/domains.js';
import { metaRoutes } from './routes/meta.js';
import { planRoutes } from './routes/plans.js';
import { reportRoutes } from './routes/reports.js';
import { PersistentSessionStore } from './session-store.js';
import type { TokenSet } from './tokens.js';
import { renderErrorPage } from '../web/pages.js';
import { webRoutes } from './web.js';

export const SESSION_COOKIE = 'dmarc_rollout_session';

export interface ApiServerOptions {
  config: ApiConfig;
  tokens: TokenSet;
  context: ApiContext;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** The package version, for the OpenAPI document. */
  version?: string;
}

/** The secret that signs session cookies: from the environment or a file, else random for this process (a restart then signs everyone out). */
export function sessionSecret(config: ApiConfig, env: NodeJS.ProcessEnv = process.env): { secret: string; persistent: boolean } {
  const { secret_env: envName, secret_file: file } = config.session;
  let secret: string | undefined;
  if (envName !== undefined) {
    secret = env[envName];
    if (!secret) throw new AppError('config', `session.secret_env: the environment variable ${envName} is not set`, { field: 'api.session.secret_env' });
  } else if (file !== undefined) {
    try {
      secret = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new AppError('config', `session.secret_file: ${file} cannot be read: ${errorMessage(error)}`, { field: 'api.session.secret_file', cause: error });
    }
  }
  if (secret === undefined) return { secret: randomBytes(32).toString('base64url'), persistent: false };
  if (secret.length < 32) throw new AppError('config', `session: the session secret must be at least 32 characters (it is ${secret.length})`);
  return { secret, persistent: true };
}

export async function buildApiServer(opts: ApiServerOptions): Promise<FastifyInstance> {
  const { config, tokens, context } = opts;
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }) as FastifyBaseLogger,
    trustProxy: config.trust_proxy,
    bodyLimit: 1024 * 1024,
    // A domain name is up to 253 characters, more when percent-encoded; longer path segments are refused below.
    routerOptions: { maxParamLength: 1024 },
    // Errors the router raises before any route (a bad URL, an overlong segment) get the one error shape too.
    frameworkErrors: (error, _request, reply) => sendError(reply, error),
    // Requests are logged (fastify's default; naming disableRequestLogging at all prints a
    // deprecation warning into the JSON log). Tokens and cookies never reach the log: pino's
    // redact covers headers, and URLs carry neither.
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  app.setNotFoundHandler((request, reply) => {
    const message = `no route ${request.method} ${request.url.split('?')[0]}`;
    // A person who mistyped a page address gets a page; a program gets the JSON error.
    if (!request.url.startsWith('/api/') && (request.headers.accept ?? '').includes('text/html')) {
      return reply.code(404).type('text/html; charset=utf-8').send(renderErrorPage(null, 404, message));
    }
    return reply.code(404).send(errorBody('not-found', message));
  });
  app.addHook('onSend', async (request, reply) => {
    // Node throws while writing a header that holds a CR, LF or other control
    // character, deep in the reply, after the session is saved: refuse here,
    // before any later hook, so the client gets a 500 and the process goes on.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      try {
        validateHeaderName(name);
        for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) validateHeaderValue(name, String(v));
      } catch {
        reply.removeHeader(name);
        request.log.error({ header: name }, 'a response header held a forbidden character; refused');
        throw new ApiError('internal', `the response header ${name} held a forbidden character`);
      }
    }
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'same-origin');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    // What a signed-in person sees is not for shared caches; the stylesheet keeps its own caching.
    if (request.principal && !reply.hasHeader('cache-control')) reply.header('Cache-Control', 'no-store');
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'dmarc-rollout',
        version: opts.version ?? '0',
        description: 'Staged DMARC enforcement: the fleet, its decisions, and the actions an operator takes. Every error is `{ error: { status, code, message, issues: [{ field, reason }] } }`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from `dmarc-rollout token create`; role viewer reads, operator also acts.' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifyCookie);
  const secret = sessionSecret(config, opts.env).secret;
  const sessionLog = opts.logger.child({ component: 'sessions' });
  await app.register(fastifySession, {
    secret,
    cookieName: SESSION_COOKIE,
    saveUninitialized: false,
    store: new PersistentSessionStore(context.store, config.session.max_age_hours * 3_600_000, {
      onCallbackError: (error) => sessionLog.error({ err: error }, 'answering a request after its session was saved failed'),
    }),
    cookie: { path: '/', httpOnly: true, sameSite: 'strict', secure: config.session.secure_cookie, maxAge: config.session.max_age_hours * 3_600_000 },
  });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/session',
    getToken: (request) => (request.body as { _csrf?: string } | undefined)?._csrf ?? (request.headers['x-csrf-token'] as string | undefined),
  });
  await app.register(fastifyFormbody, { bodyLimit: 64 * 1024 });
  registerAuthentication(app, tokens);
  checkRolesFirst(app);

  metaRoutes(app, context);
  domainRoutes(app, context);
  actionRoutes(app, context);
  lifecycleRoutes(app, context);
  planRoutes(app, context);
  allowlistRoutes(app, context);
  auditRoutes(app, context);
  notificationRoutes(app, context);
  reportRoutes(app, context, config.upload_max_bytes);
  webRoutes(app, context, tokens, { secret, secureCookie: config.session.secure_cookie });
  return app;
}

export interface RunningApiServer {
  /** Where it listens, e.g. http://127.0.0.1:8080. */
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(opts: ApiServerOptions): Promise<RunningApiServer> {
  const app = await buildApiServer(opts);
  const address = await app.listen({ host: opts.config.listen.host, port: opts.config.listen.port });
  return { url: address, close: () => app.close() };
}
