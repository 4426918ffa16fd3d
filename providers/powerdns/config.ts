/**
 * PowerDNS adapter settings. The API key is named, not given: it is read
 * from the environment variable or file that the config points at.
 */
import { z } from 'zod';

/** `providers: powerdns` settings. */
export const powerdnsConfigSchema = z
  .object({
    type: z.literal('powerdns'),
    /** Base URL of the PowerDNS webserver, e.g. http://127.0.0.1:8081 (with or without /api/v1). */
    api_url: z.url({ protocol: /^https?$/ }),
    /** PowerDNS server id in API paths; `localhost` on a plain install. */
    server_id: z.string().min(1).default('localhost'),
    /** Environment variable holding the API key. */
    api_key_env: z.string().min(1).optional(),
    /** File holding the API key. */
    api_key_file: z.string().min(1).optional(),
    /** The zone to write to; discovered from the server's zone list when absent. */
    zone: z.string().min(1).optional(),
    /** Per-request timeout. */
    timeout_seconds: z.number().positive().default(30),
    /** Tries per API call when the server answers 5xx/429 or cannot be reached. */
    max_attempts: z.number().int().min(1).max(20).default(5),
  })
  .strict()
  .refine((c) => (c.api_key_env === undefined) !== (c.api_key_file === undefined), {
    message: 'set exactly one of api_key_env or api_key_file',
  });

export type PowerdnsConfig = z.infer<typeof powerdnsConfigSchema>;
