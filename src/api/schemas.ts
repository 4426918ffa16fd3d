/**
 * The API's request and response shapes, as zod schemas: fastify validates
 * requests and serialises responses with them, and the OpenAPI document is
 * generated from them, so the three cannot drift apart. Type-level checks at
 * the bottom tie them to the view types the fleet module returns.
 */
import { z } from 'zod';
import type { AuditEntryView, DomainOverview, DomainView } from '../fleet/views.js';

const iso = z.string().describe('ISO-8601 UTC timestamp');
const stageLabel = z.string().describe('a plan stage as policy:pct, e.g. quarantine:25');

export const errorSchema = z
  .object({
    error: z.object({
      status: z.number().int(),
      /** The error family's code (src/errors.ts), the same the CLI prints: invalid, not-found, conflict, unauthorized, forbidden, too-large, unsupported-media-type, config, unavailable, internal. */
      code: z.string(),
      message: z.string(),
      /** One entry per wrong field, with the field's path (e.g. `body.reason`) and the reason. */
      issues: z.array(z.object({ field: z.string(), reason: z.string() })),
    }),
  })
  .meta({ id: 'Error' });

const domainState = z.enum(['active', 'paused', 'halted', 'completed']);
const decisionAction = z.enum(['establish', 'advance', 'hold', 'await-approval', 'halt', 'rollback', 'complete']);

const domainStatusShape = {
  domain: z.string(),
  plan: z.string(),
  provider: z.string().nullable(),
  state: domainState,
  state_reason: z.string().nullable(),
  stage: stageLabel.nullable(),
  stage_number: z.number().int(),
  stage_count: z.number().int().nullable(),
  stage_since: iso.nullable(),
  days_in_stage: z.number().int().nullable(),
  enrolled_at: iso,
  stuck: z
    .object({ attempts: z.number().int(), last_error: z.string().nullable() })
    .nullable()
    .describe('the change in flight has failed this many times (5 or more) and is still retried; null when not stuck'),
  plan_problem: z.string().optional(),
};

const changeInFlight = z.object({
  action: z.string(),
  to: stageLabel,
  status: z.enum(['requested', 'pending', 'written']),
  attempts: z.number().int(),
  next_attempt_at: iso,
  last_error: z.string().nullable(),
  actor: z.string(),
  reason: z.string(),
});

const overviewShape = {
  ...domainStatusShape,
  authorised_fail_rate: z.number().nullable().describe('DMARC failures of authorised mail in the stage window, 0..1'),
  authorised_messages: z.number().int(),
  spoofing_messages: z.number().int(),
  blocking_sources: z.number().int(),
  next_decision: z.object({ action: decisionAction, to: stageLabel.nullable(), summary: z.string() }).nullable(),
  change_in_flight: changeInFlight.nullable(),
  awaiting_approval: z.boolean(),
  approved_stage: stageLabel.nullable(),
  assessed_at: iso.nullable().optional().describe('when the figures and next decision were measured: by the last tick, or for this request when stale'),
  figures_stale: z
    .boolean()
    .describe('true when a report, a rule or the domain changed since assessed_at and the figures were not measured again for this request (its budget of work ran out): the next tick measures them'),
};

export const domainOverviewSchema = z.object(overviewShape).meta({ id: 'DomainOverview' });

const totals = z.object({ messages: z.number().int(), passed: z.number().int(), failed: z.number().int() });

const checkSchema = z.object({
  rule: z.string(),
  outcome: z.enum(['passed', 'failed', 'inconclusive']),
  measured: z.union([z.number(), z.string()]).nullable(),
  threshold: z.union([z.number(), z.string()]).nullable(),
  detail: z.string(),
  interval: z
    .object({ low: z.number(), high: z.number(), confidence: z.number(), messages: z.number().int() })
    .optional()
    .describe("for a rate: its one-sided Wilson bounds at the plan's evidence_confidence and the messages it stands on"),
});

const sourceSchema = z.object({
  key: z.string(),
  ip: z.string(),
  dkimDomains: z.array(z.string()),
  spfDomains: z.array(z.string()),
  class: z.enum(['authorised', 'unaligned', 'unauthenticated', 'forwarded']),
  classReason: z.string(),
  messages: z.number().int(),
  passed: z.number().int(),
  lookbackMessages: z.number().int(),
  lookbackPassed: z.number().int(),
  daysSeen: z.number().int(),
  blocking: z.boolean(),
});

const reporterSchema = z.object({
  reporter: z.string(),
  lastReportEnd: iso,
  daysReported: z.number().int(),
  regular: z.boolean(),
  quiet: z.boolean(),
  late: z.boolean().optional().describe('past its usual delay plus the plan slack: the domain holds for it'),
  usualDelaySeconds: z.number().int().optional().describe('report end to arrival, learned from its history'),
  awaitedDay: z.string().nullable().optional().describe('YYYY-MM-DD: the first day it has not reported yet'),
  acknowledgedBy: z.string().nullable().optional().describe('who acknowledged its silence'),
});

const stageChangeSchema = z.object({
  id: z.number().int(),
  domain: z.string(),
  at: iso,
  from_stage: stageLabel.nullable(),
  to_stage: stageLabel,
  action: z.string(),
  actor: z.string(),
  reason: z.string(),
  record: z.string().nullable(),
});

export const auditEventSchema = z
  .object({
    id: z.number().int(),
    at: iso,
    actor: z.string().describe('engine, cli:<user>, api:<token name> or web:<token name>'),
    domain: z.string().nullable(),
    action: z.string(),
    reason: z.string(),
    details: z.unknown().describe('the measurements and checks behind the event, when any'),
  })
  .meta({ id: 'AuditEvent' });

export const domainViewSchema = z
  .object({
    ...overviewShape,
    record_now: z.string().nullable(),
    record_next: z.string().nullable(),
    next_stage: stageLabel.nullable(),
    plan_stages: z.array(z.object({ label: stageLabel, requires_approval: z.boolean() })),
    record_next_problem: z.string().nullable(),
    metrics: z
      .object({
        domain: z.string(),
        windowStart: iso.nullable(),
        elapsedDays: z.number().int(),
        daysObserved: z.number().int(),
        all: totals,
        own: totals,
        subdomains: totals,
        subdomainsJudged: z.boolean(),
        authorised: totals.extend({ failRate: z.number().nullable() }),
        spoofing: totals,
      })
      .nullable(),
    checks: z.array(checkSchema),
    sources: z.array(sourceSchema).describe('Per class, the sources holding the domain first, then those sending the most: at most 200 of each class'),
    sources_omitted: z
      .record(z.enum(['authorised', 'unaligned', 'unauthenticated', 'forwarded']), z.object({ sources: z.number().int(), messages: z.number().int() }))
      .describe('Per class, the sources left out of `sources` and their messages in the stage window'),
    reporters: z.array(reporterSchema),
    daily: z.array(
      z.object({
        day: z.string().describe('YYYY-MM-DD, UTC'),
        messages: z.number().int(),
        authorised: z.number().int(),
        authorised_failed: z.number().int(),
        authorised_fail_rate: z.number().nullable(),
        spoofing: z.number().int(),
        stage: stageLabel.nullable(),
      }),
    ),
    history: z.array(stageChangeSchema),
    audit: z.array(auditEventSchema),
  })
  .meta({ id: 'DomainView' });

export const domainListQuery = z
  .object({
    state: domainState.optional(),
    stage: stageLabel.optional(),
    plan: z.string().min(1).optional(),
    provider: z.string().min(1).optional(),
    q: z.string().min(1).max(253).optional().describe('part of the domain name'),
    awaiting_approval: z.enum(['true', 'false']).optional(),
    sort: z
      .enum(['domain', 'state', 'stage', 'days_in_stage', 'authorised_fail_rate', 'authorised_messages', 'spoofing_messages', 'blocking_sources'])
      .default('domain')
      .describe('the column to sort by (ties by domain name); domains without figures come last'),
    order: z.enum(['asc', 'desc']).default('asc'),
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('domains per page'),
    offset: z.coerce.number().int().min(0).default(0).describe('domains to skip: next_offset of the previous page'),
  })
  .strict();

export const domainListResponse = z.object({
  domains: z.array(domainOverviewSchema),
  total: z.number().int().describe('domains matching the filter, on all pages'),
  next_offset: z.number().int().nullable().describe('offset of the next page; null on the last'),
});

export const domainParams = z.object({ domain: z.string().min(1).max(253) });

const reason = z.string().trim().min(1, 'must not be empty').max(1000);

export const approveBody = z.object({ reason: reason.optional() }).strict();
export const pauseBody = z.object({ reason }).strict();
export const resumeBody = z.object({ reason: reason.optional() }).strict();
export const rollbackBody = z.object({ to: stageLabel.optional(), reason: reason.optional() }).strict();
export const forceBody = z.object({ to: stageLabel, reason }).strict();
export const unenrollBody = z
  .object({ reason, restore: z.boolean().default(false).describe('write back the record found at enrolment (none found: remove the DMARC record)') })
  .strict();
export const setProviderBody = z.object({ provider: z.string().min(1).max(63).describe('a provider named in the daemon config'), reason }).strict();
export const setPlanBody = z.object({ plan: z.string().min(1).max(200).describe('a registered plan name (see GET /api/v1/plans)'), reason }).strict();
export const unenrollResult = z.object({ domain: z.string(), message: z.string() }).meta({ id: 'UnenrollResult' });

export const actionResult = z
  .object({ domain: z.string(), message: z.string().describe('what was done, in plain words'), status: domainOverviewSchema })
  .meta({ id: 'ActionResult' });

const planStageSchema = z.object({
  label: stageLabel,
  policy: z.enum(['none', 'quarantine', 'reject']),
  pct: z.number().int(),
  min_days: z.number(),
  min_messages: z.number().int(),
  advance_max_fail_rate: z.number(),
  halt_fail_rate: z.number().nullable(),
  rollback_fail_rate: z.number().nullable(),
  requires_approval: z.boolean(),
});

export const planSchema = z
  .object({ name: z.string(), description: z.string().nullable(), record_ttl: z.number().int(), stages: z.array(planStageSchema) })
  .meta({ id: 'Plan' });

export const allowlistEntrySchema = z
  .object({
    id: z.number().int().nullable().describe('null for entries from the daemon config (change those in the file)'),
    domain: z.string().nullable().describe('null: every domain'),
    source: z.string().describe('an IP, a CIDR, dkim:<domain> or spf:<domain>'),
    verdict: z.enum(['authorised', 'abuse']),
    from: z.enum(['store', 'config']),
    added_by: z.string().nullable(),
    added_at: iso.nullable(),
    note: z.string().nullable(),
  })
  .meta({ id: 'AllowlistEntry' });

export const allowlistQuery = z.object({ domain: z.string().min(1).max(253).optional() }).strict();

export const allowlistBody = z
  .object({
    domain: z.string().min(1).max(253).nullable().describe('the enrolled domain, or null for every domain'),
    source: z.string().min(1).max(300),
    verdict: z.enum(['authorised', 'abuse']).default('authorised'),
    note: z.string().max(1000).optional(),
  })
  .strict();

export const auditQuery = z
  .object({
    domain: z.string().min(1).max(253).optional(),
    actor: z.string().min(1).max(200).optional(),
    action: z.string().min(1).max(100).optional(),
    before: z.coerce.number().int().positive().optional().describe('only events with an id below this (the previous page’s next_before)'),
    limit: z.coerce.number().int().min(1).max(500).default(50),
  })
  .strict();

export const auditPage = z
  .object({ events: z.array(auditEventSchema), next_before: z.number().int().nullable().describe('pass as `before` for the next (older) page; null at the end') })
  .meta({ id: 'AuditPage' });

export const uploadResult = z
  .object({
    status: z.enum(['stored', 'duplicate', 'rejected', 'error']),
    source: z.string(),
    id: z.number().int().optional(),
    counted: z.boolean().optional(),
    flag: z.string().nullable().optional(),
    org: z.string().optional(),
    report_id: z.string().optional(),
    domain: z.string().optional(),
    begin: z.number().int().optional(),
    end: z.number().int().optional(),
    records: z.number().int().optional(),
    messages: z.number().int().optional(),
    container: z.string().nullable().optional(),
    repaired: z.string().nullable().optional(),
    field: z.string().nullable().optional(),
    reason: z.string().optional(),
    kind: z.string().optional(),
  })
  .meta({ id: 'UploadResult' });

// The views are typed in src/fleet/views.ts; these lines fail to compile when a schema drops or mistypes a field.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const overviewMatches: Exact<z.output<typeof domainOverviewSchema>, DomainOverview> = true;
const viewMatches: Exact<Omit<z.output<typeof domainViewSchema>, 'audit'>, Omit<DomainView, 'audit'>> = true;
const auditMatches: Exact<z.output<typeof auditEventSchema>, AuditEntryView> = true;
void overviewMatches;
void viewMatches;
void auditMatches;
