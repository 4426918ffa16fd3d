/**
 * Cloudflare adapter settings. The API token is named, not given: it is read
 * from the environment variable or file the config points at.
 */
import { z } from 'zod';

/** `providers: cloudflare` settings. */
export const cloudflareConfigSchema = z
  .object({
    type: z.literal('cloudflare'),
    /** Environment variable holding the API token. */
    api_token_env: z.string().min(1).optional(),
    /** File holding the API token. */
    api_token_file: z.string().min(1).optional(),
    /** Another API base than https://api.cloudflare.com/client/v4 (a test server). */
    base_url: z.url({ protocol: /^https?$/ }).optional(),
    /** The zone to write to; discovered by name when absent. */
    zone_id: z.string().regex(/^[0-9a-f]{32}$/, 'a 32-hex-digit zone id').optional(),
    /**
     * Requests this adapter may make in any 5 minutes. Cloudflare allows
     * 1,200 per user and blocks every call for 5 minutes past that, and the
     * dashboard and other tools count too: leave headroom.
     */
    requests_per_5_minutes: z.number().int().min(10).max(1200).default(1000),
    /** Requests sent back to back before pacing starts. */
    burst: z.number().int().min(1).max(100).default(20),
    /** per_page for record and zone lists (Cloudflare's minimum is 5; zone lists cap it at 50). */
    page_size: z.number().int().min(5).max(1000).default(100),
    /** Tries per API call on 429 / 5xx / connection failure. */
    max_attempts: z.number().int().min(1).max(20).default(5),
    /** Longest Retry-After worth sleeping through; a longer one fails the call. */
    max_retry_after_seconds: z.number().positive().default(330),
    /** Per-request timeout. */
    timeout_seconds: z.number().positive().default(30),
  })
  .strict()
  .refine((c) => (c.api_token_env === undefined) !== (c.api_token_file === undefined), {
    message: 'set exactly one of api_token_env or api_token_file',
  });

export type CloudflareConfig = z.infer<typeof cloudflareConfigSchema>;
