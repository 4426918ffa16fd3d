/**
 * One error family for the whole program. An `AppError` carries a stable
 * `code` saying what kind of failure it is, optionally the `field` at fault,
 * and the `cause` it wraps; the doors (CLI, HTTP API, daemon logs) turn it
 * into an exit code, an HTTP status or a JSON body through the one table
 * here, so the same failure reads the same everywhere.
 *
 * This module imports nothing: every layer may use it.
 *
 * Every error class in src/ and providers/ extends AppError (test/errors.test.ts
 * scans for one that does not). A class may say more about the failure in a
 * `kind` of its own (ActionError's, ReportError's, ProviderError's): `code` is
 * always the family's, `kind` the class's detail. Errors from libraries
 * (commander's) are mapped by name in FOREIGN_CODES; anything else is `internal`.
 */

/**
 * What kind of failure it is. The CLI's exit code and the API's status
 * follow from it (ERROR_CODES); a new code needs a row there.
 */
export type ErrorCode =
  /** The input given is wrong: a bad domain name, record, report, plan or option value. */
  | 'invalid'
  /** What was named does not exist (a domain not enrolled, a plan not found). */
  | 'not-found'
  /** The request is valid but the current state forbids it (not paused, no gated stage, ...). */
  | 'conflict'
  /** A request body in a format this door does not read (HTTP only: a form where JSON is expected). */
  | 'unsupported-media-type'
  /** No or a wrong credential. */
  | 'unauthorized'
  /** A credential that may not do this. */
  | 'forbidden'
  /** An input over a size or work budget. */
  | 'too-large'
  /** The command line itself is wrong: unknown command or option, missing argument. */
  | 'usage'
  /** The config file is missing, unreadable or invalid. */
  | 'config'
  /** Something outside is not there or refuses: the store is locked, a DNS provider or server does not answer. */
  | 'unavailable'
  /** A bug: anything not foreseen. */
  | 'internal';

/**
 * The one table from an error code to the CLI's exit code and the HTTP status.
 * Exit codes (README.md, "Exit codes"): 0 done, 1 the command ran and the
 * answer is a failure (an invalid record, a refused action, a bad config, a
 * provider that does not answer, a bug), 2 the command line itself is wrong.
 * Scripts tell "no" from "called wrongly"; the JSON error's code says more.
 */
export const ERROR_CODES: Readonly<Record<ErrorCode, { exit: number; http: number }>> = {
  invalid: { exit: 1, http: 400 },
  'not-found': { exit: 1, http: 404 },
  conflict: { exit: 1, http: 409 },
  'unsupported-media-type': { exit: 1, http: 415 },
  unauthorized: { exit: 1, http: 401 },
  forbidden: { exit: 1, http: 403 },
  'too-large': { exit: 1, http: 413 },
  usage: { exit: 2, http: 400 },
  config: { exit: 1, http: 500 },
  unavailable: { exit: 1, http: 503 },
  internal: { exit: 1, http: 500 },
};

/** The exit code of a command that ran and whose answer is "no" (an invalid record, a refused input). */
export const EXIT_FAILED = 1;

export interface AppErrorOptions {
  /** The input at fault: an option (`--stage`), a config path (`providers.pdns.api_url`), a report element. */
  field?: string;
  /** The error this one explains (kept for logs; never shown to an API client). */
  cause?: unknown;
}

/** The base of every error the program means to report: a code, a message for people, maybe the field at fault. */
export class AppError extends Error {
  override name = 'AppError';
  readonly code: ErrorCode;
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
  }
}

/**
 * A broken promise inside the program ("unreachable", a state that cannot
 * be): a bug, never the user's input. Thrown instead of a plain Error, so
 * every error src/ and providers/ throw carries a code.
 */
export class InternalError extends AppError {
  override name = 'InternalError';

  constructor(message: string, options: Omit<AppErrorOptions, 'field'> = {}) {
    super('internal', message, options);
  }
}

/** Errors thrown by libraries, by their `name`: commander's mean the command line is wrong. */
const FOREIGN_CODES: Readonly<Record<string, ErrorCode>> = {
  CommanderError: 'usage',
  InvalidArgumentError: 'usage',
};

/** Any thrown value as an AppError: itself, a library's error mapped by name, or `internal`. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof Error) return new AppError(FOREIGN_CODES[error.name] ?? 'internal', error.message, { cause: error });
  return new AppError('internal', errorMessage(error), { cause: error });
}

/** The one way to say what went wrong, for any thrown value: the message, then each cause's that adds something. */
export function errorMessage(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e: unknown = error; e !== undefined && e !== null && !seen.has(e); e = e instanceof Error ? e.cause : undefined) {
    seen.add(e);
    const text = e instanceof Error ? e.message || e.name : typeof e === 'string' ? e : safeString(e);
    // A wrapper often repeats its cause's message; say each thing once.
    if (text !== '' && !parts.some((p) => p.includes(text))) parts.push(text);
  }
  return parts.join(': ') || 'unknown error';
}

/** The exit code for a failure (see ERROR_CODES). */
export function exitCodeFor(error: unknown): number {
  return ERROR_CODES[toAppError(error).code].exit;
}

/** The HTTP status for a failure (see ERROR_CODES). */
export function httpStatusFor(error: unknown): number {
  return ERROR_CODES[toAppError(error).code].http;
}

/** The shape every `--json` error takes: `{"error":{"code","message","field"?}}`. */
export interface ErrorJson {
  error: { code: ErrorCode; message: string; field?: string };
}

export function errorJson(error: unknown): ErrorJson {
  const e = toAppError(error);
  return { error: { code: e.code, message: errorMessage(e), ...(e.field === undefined ? {} : { field: e.field }) } };
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
