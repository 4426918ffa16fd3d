/**
 * Every error the API returns is JSON of one shape: status, the error
 * family's code (src/errors.ts, the same code the CLI prints for the same
 * failure), a message, and one issue per wrong field (its path and the
 * reason). This module maps fastify's, zod's and the modules' errors onto it;
 * the status always follows from the code through the family's one table.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { AppError, ERROR_CODES, errorMessage, toAppError, type ErrorCode } from '../errors.js';

export interface FieldIssue {
  field: string;
  reason: string;
}

/** An error a route or hook means for the client: a family code and, for bad input, the fields at fault. */
export class ApiError extends AppError {
  override name = 'ApiError';
  constructor(
    code: ErrorCode,
    message: string,
    readonly issues: FieldIssue[] = [],
    options: { cause?: unknown } = {},
  ) {
    super(code, message, options);
  }

  /** The HTTP status the code maps to. */
  get status(): number {
    return ERROR_CODES[this.code].http;
  }
}

/** The body of every error answer; `status` is the one the code maps to (fastify's own 4xx keep theirs). */
export function errorBody(code: ErrorCode, message: string, issues: FieldIssue[] = [], status = ERROR_CODES[code].http) {
  return { error: { status, code, message, issues } };
}

/** Fastify's own 4xx statuses (a body too large, a bad content type, ...) as the family's codes. */
const CODE_OF_STATUS: ReadonlyMap<number, ErrorCode> = new Map(
  (Object.entries(ERROR_CODES) as [ErrorCode, { http: number }][])
    .filter(([code, { http }]) => http >= 400 && http < 500 && code !== 'usage')
    .map(([code, { http }]) => [http, code]),
);

/** The JSON status and body for any error a route or hook threw. */
export function toErrorResponse(error: unknown, request: FastifyRequest): { status: number; body: ReturnType<typeof errorBody> } {
  if (error instanceof ApiError) return answer(error.code, error.message, error.issues);
  if (hasZodFastifySchemaValidationErrors(error)) {
    const part = (error as FastifyError).validationContext ?? 'request';
    const issues = error.validation.map((v) => {
      const path = v.instancePath.replace(/^\//, '').split('/').filter(Boolean).join('.');
      const field = [part, path].filter(Boolean).join('.');
      const keys = (v.params as { keys?: unknown }).keys;
      if (v.keyword === 'unrecognized_keys' && Array.isArray(keys)) return { field, reason: `unknown field(s) ${keys.join(', ')}` };
      return { field, reason: v.message ?? 'invalid' };
    });
    return answer('invalid', issues.map((i) => `${i.field}: ${i.reason}`).join('; '), issues);
  }
  if (isResponseSerializationError(error)) {
    request.log.error({ err: error, issues: error.cause.issues }, 'response does not match its schema');
    return answer('internal', 'internal error');
  }
  if (!(error instanceof AppError)) {
    // Fastify's own refusals (the body, its type or its size) carry a 4xx status of their own.
    const fe = error as FastifyError;
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      const status = fe.statusCode;
      const field = fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? 'body' : 'request';
      const issues = status === 400 || status === 415 ? [{ field, reason: fe.message }] : [];
      return answer(CODE_OF_STATUS.get(status) ?? 'invalid', fe.message, issues, status);
    }
  }
  const e = toAppError(error);
  if (ERROR_CODES[e.code].http >= 500) {
    // What failed inside (a path, a provider's answer) is for the operator's log, not the client.
    request.log.error({ err: error, code: e.code }, 'request failed');
    return answer(e.code, 'internal error; the daemon log has the details');
  }
  const message = errorMessage(e);
  if (e.code === 'invalid' && e.field !== undefined) {
    const issues = [{ field: fieldPath(request, e.field), reason: message }];
    return answer(e.code, `${issues[0]!.field}: ${message}`, issues);
  }
  return answer(e.code, message);
}

function answer(code: ErrorCode, message: string, issues: FieldIssue[] = [], status = ERROR_CODES[code].http) {
  return { status, body: errorBody(code, message, issues, status) };
}

/** Where in the request a module's field name came from: the path, the query string or the body. */
function fieldPath(request: FastifyRequest, field: string): string {
  if (field in ((request.params ?? {}) as object)) return `params.${field}`;
  if (field in ((request.query ?? {}) as object)) return `querystring.${field}`;
  return `body.${field}`;
}

export function sendError(reply: FastifyReply, error: unknown) {
  const { status, body } = toErrorResponse(error, reply.request);
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}
