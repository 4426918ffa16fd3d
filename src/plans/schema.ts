/**
 * The plan file format, as zod schemas: the one source of the Plan and Stage
 * types. A plan is the ordered list of stages a domain walks through, each
 * with the evidence it needs before the next step and the failure rates that
 * stop or reverse it.
 */
import { z } from 'zod';
import { stageLabel, stageProblem } from '../record/index.js';

export const POLICIES = ['none', 'quarantine', 'reject'] as const;
export const policySchema = z.enum(POLICIES);

/** A failure rate as a fraction of authorised messages, 0 to 1. */
const rate = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');

export const stageSchema = z
  .object({
    policy: policySchema,
    pct: z.number().int('must be a whole number').min(1, 'must be 1 to 100').max(100, 'must be 1 to 100'),
    /** Whole UTC report days the stage must be observed before it may advance. */
    min_days: z.number().int('must be a whole number of days').min(0, 'cannot be negative'),
    /** Authorised messages that must be observed in the stage before it may advance. */
    min_messages: z.number().int('must be a whole number').min(0, 'cannot be negative'),
    /** Advance only when the authorised-mail failure rate is at or below this. */
    advance_max_fail_rate: rate,
    /** Stop the rollout (halt, a person decides) when the rate exceeds this; null where halting means nothing (p=none). */
    halt_fail_rate: rate.nullable().default(null),
    /** Step back when the rate exceeds this; null where there is nothing to go back to. */
    rollback_fail_rate: rate.nullable().default(null),
    /** A person must approve the move into this stage. */
    requires_approval: z.boolean().default(false),
    /**
     * Where a rollback from this stage goes, as `policy:pct` of an earlier
     * stage; by default the last stage that held cleanly before the regression.
     */
    rollback_to: z
      .string()
      .regex(/^(none|quarantine|reject):\d{1,3}$/, 'must be a stage label such as quarantine:10')
      .optional(),
  })
  .strict()
  .superRefine((stage, ctx) => {
    if (stage.policy === 'none' && stage.pct !== 100) {
      ctx.addIssue({ code: 'custom', path: ['pct'], message: 'p=none has no sampling: pct must be 100' });
    }
    if (stage.halt_fail_rate !== null && stage.halt_fail_rate < stage.advance_max_fail_rate) {
      ctx.addIssue({
        code: 'custom',
        path: ['halt_fail_rate'],
        message: `must be at least advance_max_fail_rate (${stage.advance_max_fail_rate})`,
      });
    }
    if (stage.rollback_fail_rate !== null) {
      const floor = stage.halt_fail_rate ?? stage.advance_max_fail_rate;
      if (stage.rollback_fail_rate < floor) {
        ctx.addIssue({
          code: 'custom',
          path: ['rollback_fail_rate'],
          message: `must be at least ${stage.halt_fail_rate !== null ? 'halt_fail_rate' : 'advance_max_fail_rate'} (${floor})`,
        });
      }
    }
  });

export const planSchema = z
  .object({
    description: z.string().optional(),
    /** TTL written on the _dmarc record during the rollout: short, so a rollback takes effect fast. */
    record_ttl: z.number().int().min(30, 'below 30 s many resolvers clamp it anyway').max(86400).default(300),
    /** Which subdomain policies the plan writes alongside p; unmanaged ones are left as the owner wrote them. */
    manage: z
      .object({ sp: z.boolean().default(false), np: z.boolean().default(false) })
      .strict()
      .default({ sp: false, np: false }),
    /** A source that authenticates as another domain and sends at least this many messages holds the domain for a person to classify. */
    unaligned_source_min_messages: z.number().int().min(1).default(50),
    /**
     * A regular reporter silent this many days past when its report was due is
     * quiet: the domain holds until a person acknowledges it or it reports again.
     */
    quiet_reporter_days: z.number().int().min(1).default(3),
    /** A regular reporter this many hours past its usual delay is late: the domain holds, naming the day awaited. */
    late_reporter_slack_hours: z.number().min(0).max(24 * 14).default(12),
    /** How sure a rate must be before it halts, rolls back or advances (one-sided Wilson bound). */
    evidence_confidence: z.number().min(0.5, 'must be at least 0.5').max(0.9999, 'must be below 1').default(0.95),
    /** The latest complete days judged on their own as well, so a sharp regression halts within a day. */
    recent_days: z.number().int().min(1).max(7).default(1),
    /**
     * A change in effect within this many minutes after a UTC midnight opens
     * its window at that midnight: the few minutes of mail under the old record
     * cost less than waiting a whole day.
     */
    window_grace_minutes: z.number().int().min(0).max(180).default(60),
    stages: z.array(stageSchema).min(1, 'a plan needs at least one stage'),
  })
  .strict()
  .superRefine((plan, ctx) => {
    plan.stages.forEach((stage, i) => {
      if (stage.rollback_to === undefined) return;
      // A stage with a problem of its own (none:5) is refused above and is nobody's rollback target.
      const target = plan.stages.findIndex((s) => stageProblem(s) === null && stageLabel(s) === stage.rollback_to);
      if (target < 0 || target >= i) {
        ctx.addIssue({ code: 'custom', path: ['stages', i, 'rollback_to'], message: `${stage.rollback_to} is not an earlier stage of this plan` });
      }
    });
    // Each step must tighten enforcement: a plan that loosens or repeats a
    // stage would turn "advance" into a silent rollback.
    for (let i = 1; i < plan.stages.length; i++) {
      const prev = plan.stages[i - 1]!;
      const cur = plan.stages[i]!;
      // A stage with a problem of its own (none:5) is refused above; its label cannot be written.
      if (stageProblem(prev) !== null || stageProblem(cur) !== null) continue;
      if (stageRank(cur) <= stageRank(prev)) {
        ctx.addIssue({
          code: 'custom',
          path: ['stages', i],
          message: `${stageLabel(cur)} does not tighten ${stageLabel(prev)}; stages must go from none towards reject with rising pct`,
        });
      }
    }
  });

/** Orders stages by enforcement: policy first, then pct. */
export function stageRank(stage: { policy: z.infer<typeof policySchema>; pct: number }): number {
  return POLICIES.indexOf(stage.policy) * 1000 + stage.pct;
}

export type Policy = z.infer<typeof policySchema>;
export type Stage = z.infer<typeof stageSchema>;
/** A plan as written in its file, defaults applied. */
export type PlanBody = z.infer<typeof planSchema>;
/** A loaded plan: its body plus where it came from. */
export interface Plan extends PlanBody {
  /** The file name without extension; what `enroll --plan` takes. */
  name: string;
  file: string;
}
