/**
 * One error type for everything an adapter refuses or fails at, with a code
 * the core can branch on. Messages are built by the adapters from known
 * parts, never from a raw SDK error object, so a secret cannot ride along in
 * a `cause` that someone later logs.
 */
import { AppError, errorMessage, type ErrorCode } from '../../src/errors.js';

/** Why a provider call failed. */
export type ProviderErrorKind =
  /** The provider's configuration is invalid. */
  | 'config'
  /** A secret (API key, token, credentials) is missing, unreadable or rejected. */
  | 'secret'
  /** No zone the account holds contains the name. */
  | 'zone-not-found'
  /** More than one zone could hold the name; configure which. */
  | 'zone-ambiguous'
  /** The provider kept throttling after every retry. */
  | 'throttled'
  /** The name holds something the adapter will not write over or cannot represent. */
  | 'conflict'
  /** A change or a wait did not finish in time. */
  | 'timeout'
  /** Any other answer from the provider's API or from DNS. */
  | 'api';

/** The error family's code for each kind: what a door answers (exit code, HTTP status). */
const CODE_OF_KIND: Readonly<Record<ProviderErrorKind, ErrorCode>> = {
  config: 'config',
  secret: 'config',
  'zone-not-found': 'not-found',
  'zone-ambiguous': 'config',
  throttled: 'unavailable',
  conflict: 'conflict',
  timeout: 'unavailable',
  api: 'unavailable',
};

/**
 * A failure of a DNS provider adapter; `message` names the provider and never
 * holds a secret. `kind` says why (the engine retries or stops on it), `code`
 * is the family's. No `cause`: an SDK's error object may carry a secret.
 */
export class ProviderError extends AppError {
  override readonly name = 'ProviderError';

  constructor(
    /** The adapter's name (`powerdns`, `route53`, ...). */
    readonly provider: string,
    readonly kind: ProviderErrorKind,
    message: string,
    /** HTTP status of the answer that caused it, when there was one. */
    readonly status?: number,
  ) {
    super(CODE_OF_KIND[kind], `${provider}: ${message}`);
  }
}

/** `text` with every occurrence of each secret replaced, for messages that quote a server's answer. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join('[redacted]');
  }
  return out;
}

/** A short, secret-free description of any thrown value. */
export function describe(error: unknown, secrets: readonly string[] = []): string {
  return redact(errorMessage(error), secrets);
}
