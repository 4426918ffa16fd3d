/**
 * Manual adapter settings: where to look for the record once a person has
 * published it, how often, for how long, and where to print what to publish.
 */
import { z } from 'zod';

/** `ip`, `ip:port`, `[ipv6]:port`: a server to query directly. */
const server = z
  .string()
  .regex(/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[[0-9a-fA-F:.]+\](:\d{1,5})?|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$/, 'an IP address, optionally with :port');

/** `providers: manual` settings. */
export const manualConfigSchema = z
  .object({
    type: z.literal('manual'),
    /** Servers to verify against. When absent: the zone's authoritative servers, found through `resolvers`. */
    nameservers: z.array(server).min(1).optional(),
    /** Resolvers used to find the authoritative servers; the system's when absent. */
    resolvers: z.array(server).min(1).optional(),
    /** Port to query discovered authoritative servers on. */
    authoritative_port: z.number().int().min(1).max(65535).default(53),
    /** How often to look for the record while waiting. */
    poll_seconds: z.number().positive().default(30),
    /**
     * How long to wait for a person to publish before the write fails. 0 means
     * print and return at once: the daemon then leaves the change as a written
     * intent and verifies it on later ticks, so one domain waiting for a person
     * does not hold up the whole tick.
     */
    timeout_seconds: z.number().min(0).default(24 * 3600),
    /** Where the instructions are printed. */
    output: z.enum(['stdout', 'stderr']).default('stderr'),
  })
  .strict();

export type ManualConfig = z.infer<typeof manualConfigSchema>;
