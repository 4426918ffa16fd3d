/**
 * The daemon config's `api` block: where the HTTP API and web page listen,
 * who may use them (bearer tokens, stored only as hashes) and how page
 * sessions behave. Validated with the rest of the config at start.
 */
import { z } from 'zod';

/** A token's hash as kept at rest: the SHA-256 of the token, hex. */
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected the SHA-256 of the token as 64 lowercase hex digits (dmarc-rollout token create prints it)');

export const apiRoleSchema = z.enum(['viewer', 'operator']);
export type ApiRole = z.infer<typeof apiRoleSchema>;

/** One token: who holds it (the name the audit log shows), what it may do, and its hash. */
export const apiTokenEntrySchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits and . _ @ - only, up to 64 characters (it is shown in the audit log)'),
    role: apiRoleSchema,
    sha256: sha256Hex,
  })
  .strict();
export type ApiTokenEntry = z.infer<typeof apiTokenEntrySchema>;

export const apiTokenFileSchema = z.array(apiTokenEntrySchema);

export const apiConfigSchema = z
  .object({
    listen: z
      .object({
        /** Loopback by default: put a TLS-terminating proxy in front to expose it. */
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 8080 }),
    /** Tokens written in the config itself (hashes only). */
    tokens: z.array(apiTokenEntrySchema).default([]),
    /** A YAML file with more tokens in the same form, kept apart from the config (relative to the config's folder). */
    tokens_file: z.string().min(1).optional(),
    session: z
      .object({
        /** The secret that signs session cookies, from the environment or a file; random per start when neither is set (a restart then signs everyone out). */
        secret_env: z.string().min(1).optional(),
        secret_file: z.string().min(1).optional(),
        max_age_hours: z.number().positive().max(24 * 30).default(12),
        /**
         * Mark cookies Secure; set true when a TLS proxy is in front (browsers drop Secure cookies over plain http).
         * The cookie is only sent when the request counts as https, so list the proxy in `trust_proxy` too.
         */
        secure_cookie: z.boolean().default(false),
      })
      .strict()
      .default({ max_age_hours: 12, secure_cookie: false }),
    /** Largest report upload accepted, bytes. */
    upload_max_bytes: z.number().int().positive().default(25 * 1024 * 1024),
    /** Trust X-Forwarded-* from this proxy address (or true for any), for client addresses in logs. */
    trust_proxy: z.union([z.boolean(), z.string().min(1)]).default(false),
  })
  .strict();

export type ApiConfig = z.infer<typeof apiConfigSchema>;
