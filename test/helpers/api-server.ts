/**
 * What the API tests start the real server with: loopback on a free port, a
 * plain-http session cookie, a 64 KiB upload cap, a silent log, and two
 * people, vera (viewer) and otto (operator), known by their tokens' hashes.
 * Each test file adds the context (store, clock, plans) it is about.
 */
import pino from 'pino';
import type { ApiConfig } from '../../src/api/config.js';
import { TokenSet } from '../../src/api/tokens.js';

/** The API block the tests serve with: loopback on a free port, a plain-http session cookie, a 64 KiB upload cap. */
export const LOOPBACK_API_CONFIG: ApiConfig = {
  listen: { host: '127.0.0.1', port: 0 },
  tokens: [],
  session: { max_age_hours: 1, secure_cookie: false },
  upload_max_bytes: 64 * 1024,
  trust_proxy: false,
};

export function loopbackApiAccess(viewer: { sha256: string }, operator: { sha256: string }) {
  return {
    config: LOOPBACK_API_CONFIG,
    tokens: new TokenSet([
      { name: 'vera', role: 'viewer', sha256: viewer.sha256 },
      { name: 'otto', role: 'operator', sha256: operator.sha256 },
    ]),
    logger: pino({ level: 'silent' }),
  };
}
