/**
 * What a plan's stage writes, and where: the `_dmarc` name of a domain and
 * the record for stage `index` of a plan, edited from the live one. Pure, so
 * the writer (engine/apply.ts), the planned change, enrolment and the views
 * that show the next record all compute it the same way, and a view never has
 * to import the module that writes DNS to know what it would write.
 */
import { parseRecord, tagValue } from './parse.js';
import { hasUsableUri } from './uri.js';
import { editRecordForStage, type EditResult } from './edit.js';
import type { Policy } from './policy.js';
import type { StageTarget } from './stage.js';

/** The name a domain's DMARC record lives at. */
export const dmarcName = (domain: string) => `_dmarc.${domain}`;

/** The parts of a plan (src/plans/) that decide what its stages write. */
export interface StagePlan {
  stages: readonly StageTarget[];
  /** Which subdomain policies follow p; unmanaged ones are left as the owner wrote them. */
  manage: { sp: boolean; np: boolean };
}

/**
 * The record for stage `index` of `plan`, edited from `live`: sp/np follow p
 * where the plan manages them, and `reportUri` (the daemon's own address,
 * set at enrolment) becomes the rua while the live record has no usable one.
 */
export function recordForPlanStage(plan: StagePlan, index: number, live: string | null, reportUri: string | null = null): EditResult {
  const target = plan.stages[index]!;
  const manage: { sp?: Policy; np?: Policy } = {};
  if (plan.manage.sp) manage.sp = target.policy;
  if (plan.manage.np) manage.np = target.policy;
  const rua = live === null ? undefined : tagValue(parseRecord(live).tags, 'rua');
  const addRua = reportUri !== null && (rua === undefined || !hasUsableUri(rua));
  return editRecordForStage(live, target, { manage, ...(addRua ? { rua: [reportUri] } : {}) });
}
