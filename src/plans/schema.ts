/**
 * The plan file format, as zod schemas: the one source of the Plan and Stage
 * types. A plan is the ordered list of stages a domain walks through, each
 * with the evidence it needs before the next step and the failure rates that
 * stop or reverse it.
 */
import { z } from 'zod';

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
    /** A reporter silent this many days after sending daily is flagged and holds the domain. */
    quiet_reporter_days: z.number().int().min(1).default(3),
    stages: z.array(stageSchema).min(1, 'a plan needs at least one stage'),
  })
  .strict()
  .superRefine((plan, ctx) => {
    // Each step must tighten enforcement: a plan that loosens or repeats a
    // stage would turn "advance" into a silent rollback.
    for (let i = 1; i < plan.stages.length; i++) {
      const prev = plan.stages[i - 1]!;
      const cur = plan.stages[i]!;
      if (stageRank(cur) <= stageRank(prev)) {
        ctx.addIssue({
          code: 'custom',
          path: ['stages', i],
          message: `${cur.policy}:${cur.pct} does not tighten ${prev.policy}:${prev.pct}; stages must go from none towards reject with rising pct`,
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
