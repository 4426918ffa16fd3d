/**
 * Every error the API returns is JSON of one shape: status, a stable code, a
 * message, and one issue per wrong field (its path and the reason). This
 * module maps fastify's, zod's and the fleet's errors onto it.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { ActionError } from '../fleet/actions.js';
import { PlanError } from '../plans/index.js';

export type ErrorCode = 'bad-request' | 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'too-large' | 'unsupported-media-type' | 'internal';

export interface FieldIssue {
  field: string;
  reason: string;
}

/** An error meant for the client, with its status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly issues: FieldIssue[] = [],
  ) {
    super(message);
  }
}


export function errorBody(status: number, code: ErrorCode, message: string, issues: FieldIssue[] = []) {
  return { error: { status, code, message, issues } };
}

const CODES: Record<number, ErrorCode> = { 400: 'bad-request', 401: 'unauthorized', 403: 'forbidden', 404: 'not-found', 409: 'conflict', 413: 'too-large', 415: 'unsupported-media-type' };

/** The JSON status and body for any error a route or hook threw. */
export function toErrorResponse(error: unknown, request: FastifyRequest): { status: number; body: ReturnType<typeof errorBody> } {
  if (error instanceof ApiError) return { status: error.status, body: errorBody(error.status, error.code, error.message, error.issues) };
  if (hasZodFastifySchemaValidationErrors(error)) {
    const part = (error as FastifyError).validationContext ?? 'request';
    const issues = error.validation.map((v) => {
      const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
      const field = [part, path].filter(Boolean).join('.');
      const keys = (v.params as { keys?: unknown }).keys;
      if (v.keyword === 'unrecognized_keys' && Array.isArray(keys)) return { field, reason: `unknown field(s) ${keys.join(', ')}` };
      return { field, reason: v.message ?? 'invalid' };
    });
    return { status: 400, body: errorBody(400, 'bad-request', issues.map((i) => `${i.field}: ${i.reason}`).join('; '), issues) };
  }
  if (error instanceof ActionError) {
    if (error.kind === 'not-found') return { status: 404, body: errorBody(404, 'not-found', error.message) };
    if (error.kind === 'invalid') {
      const issues = [{ field: fieldPath(request, error.field), reason: error.message }];
      return { status: 400, body: errorBody(400, 'bad-request', `${issues[0]!.field}: ${error.message}`, issues) };
    }
    return { status: 409, body: errorBody(409, 'conflict', error.message) };
  }
  if (error instanceof PlanError) return { status: 409, body: errorBody(409, 'conflict', error.message) };
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error, issues: error.cause.issues }, 'response does not match its schema');
    return { status: 500, body: errorBody(500, 'internal', 'internal error') };
  }
  const fe = error as FastifyError;
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status === 500) {
    request.log.error({ err: error }, 'request failed');
    return { status, body: errorBody(500, 'internal', 'internal error; the daemon log has the details') };
  }
  const field = fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? 'body' : 'request';
  return { status, body: errorBody(status, CODES[status] ?? 'bad-request', fe.message, status === 400 || status === 415 ? [{ field, reason: fe.message }] : []) };
}

/** Where in the request a module's field name came from: the path, the query string or the body. */
function fieldPath(request: FastifyRequest, field: string | undefined): string {
  if (field === undefined) return 'request';
  if (field in ((request.params ?? {}) as object)) return `params.${field}`;
  if (field in ((request.query ?? {}) as object)) return `querystring.${field}`;
  return `body.${field}`;
}

export function sendError(reply: FastifyReply, error: unknown) {
  const { status, body } = toErrorResponse(error, reply.request);
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}
