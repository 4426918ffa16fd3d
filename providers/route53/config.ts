/**
 * Route 53 adapter settings. No secret is ever in here: credentials come
 * from the standard AWS chain (environment, shared config/credentials files
 * and profiles, SSO, container or instance roles).
 */
import { z } from 'zod';

/** `providers: route53` settings. */
export const route53ConfigSchema = z
  .object({
    type: z.literal('route53'),
    /** Route 53 is global; the SDK still wants a region to sign for. */
    region: z.string().min(1).default('us-east-1'),
    /** Another endpoint than AWS's (a test server, a FIPS endpoint). */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    /** The hosted zone to write to; discovered by name (public zones only) when absent. */
    hosted_zone_id: z.string().regex(/^(\/hostedzone\/)?[A-Z0-9]+$/, 'a hosted zone id such as Z0123456789ABC').optional(),
    /** Named profile from the shared AWS config files. */
    profile: z.string().min(1).optional(),
    /**
     * `chain` (default): the SDK's whole credential chain. `env`: only
     * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), so a
     * missing key fails at once instead of trying instance metadata.
     */
    credential_source: z.enum(['chain', 'env']).default('chain'),
    /** MaxItems for list calls. */
    page_size: z.number().int().min(1).max(300).default(100),
    /** Tries per API call when throttled. */
    max_attempts: z.number().int().min(1).max(30).default(8),
    /** How often to ask GetChange while a change is PENDING. */
    poll_seconds: z.number().positive().default(5),
    /** How long a change may stay PENDING before the write fails. */
    change_timeout_seconds: z.number().positive().default(600),
    /** Client-side pacing: Route 53 allows five requests a second per account, shared by every caller. */
    requests_per_second: z.number().positive().max(5).default(4),
  })
  .strict();

export type Route53Config = z.infer<typeof route53ConfigSchema>;
