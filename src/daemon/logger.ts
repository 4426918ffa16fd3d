/**
 * The daemon's logger: pino JSON lines, with every field that could carry a
 * secret redacted however deep it sits, so a config or error object logged
 * whole still leaks nothing.
 */
import pino, { type Logger } from 'pino';

export const REDACTED_PATHS = [
  'password',
  'api_key',
  'api_token',
  'token',
  'secret',
  'authorization',
  '*.password',
  '*.api_key',
  '*.api_token',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.*.password',
  '*.*.api_key',
  '*.*.api_token',
  '*.*.secret',
  'headers.authorization',
  'req.headers.authorization',
  'headers.cookie',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination ?? process.stdout);
}
