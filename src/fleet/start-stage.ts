/**
 * Where a domain starts: the plan stage that matches what its `_dmarc`
 * record already publishes, never a weaker one. A pure function of the plan
 * and what was read live, so enrolment, its tests and its printed reason all
 * come from one place. A person may pick another stage only by naming it
 * with a reason; a `_dmarc` owned elsewhere (a CNAME or NS delegation to a
 * hosted service), several DMARC records, or a record this program cannot
 * edit are refused with what to do about them.
 */
import type { RecordSetView } from '../dns/provider.js';
import { hostedHint } from '../dns/hosted-dmarc.js';
import { errorMessage } from '../errors.js';
import type { Plan, Stage } from '../plans/index.js';
import { dmarcRecordsOf, parseStageLabel, recordForPlanStage, policyRank, publishedRank, publishedStage, stageLabel, type PublishedStage } from '../record/index.js';

/** A person's choice of starting stage, against what the record says. */
export interface StartOverride {
  stage: string;
  reason: string;
}

export type StartChoice =
  | {
      ok: true;
      /** Index into the plan's stages. */
      index: number;
      label: string;
      /** The DMARC record live at enrolment, null when there was none. */
      found: string | null;
      /** The stage the live record amounts to, the lowest the engine may go without a person. */
      floorIndex: number;
      /** True when a person chose the stage (--start-at) instead of the record. */
      chosenByPerson: boolean;
      /** Why this stage, in plain words, for the output and the audit log. */
      why: string;
    }
  | { ok: false; reason: string };

/** The stage to start `plan` at for a domain whose `_dmarc` name holds `view`. */
export function chooseStartStage(plan: Plan, fqdn: string, view: RecordSetView, override?: StartOverride): StartChoice {
  if (view.cname) {
    return { ok: false, reason: `${fqdn} is a CNAME to ${view.cname}${hostedHint(view.cname)}; the record is managed there, so this program cannot roll it out (remove the CNAME and publish a TXT record to hand it over)` };
  }
  if (view.delegation && view.delegation.length > 0) {
    return { ok: false, reason: `${fqdn} is delegated to ${view.delegation.join(', ')}${hostedHint(view.delegation[0]!)}; a record written in this zone would never be served (remove the delegation to hand it over)` };
  }
  const dmarc = dmarcRecordsOf(view.txt);
  if (dmarc.length > 1) {
    return { ok: false, reason: `${fqdn} has ${dmarc.length} v=DMARC1 records, so receivers apply none of them; keep one by hand, then enroll` };
  }
  const found = dmarc[0] ?? null;
  if (found !== null) {
    const edit = recordForPlanStage(plan, 0, found);
    if (!edit.ok) {
      return { ok: false, reason: `the live record "${found}" cannot be edited safely: ${edit.problems.map((p) => `${p.tag ?? 'record'}: ${p.reason}`).join('; ')}; fix it by hand, then enroll` };
    }
  }
  const published = found === null ? null : publishedStage(found);
  const floorIndex = published === null ? 0 : lowestStageNotWeaker(plan, published);
  if (floorIndex < 0) {
    const last = plan.stages[plan.stages.length - 1]!;
    return { ok: false, reason: `${fqdn} publishes ${describe(published!)}, stronger than the last stage of plan ${plan.name} (${stageLabel(last)}); enroll it into a plan that reaches it, or choose a stage with --start-at and a reason` };
  }

  if (override !== undefined) {
    if (override.reason.trim() === '') return { ok: false, reason: '--start-at needs a reason (--reason): starting anywhere but where the record stands is a person’s decision' };
    let index: number;
    try {
      const target = parseStageLabel(override.stage);
      index = plan.stages.findIndex((s) => s.policy === target.policy && s.pct === target.pct);
    } catch (error) {
      return { ok: false, reason: `--start-at: ${errorMessage(error)}` };
    }
    if (index < 0) return { ok: false, reason: `--start-at ${override.stage} is not a stage of plan ${plan.name} (${plan.stages.map(stageLabel).join(', ')})` };
    const natural = stageLabel(plan.stages[floorIndex]!);
    const relation = index < floorIndex ? `weaker than ${natural}, where the live record stands` : index > floorIndex ? `stronger than ${natural}, where the live record stands` : 'where the live record stands';
    return {
      ok: true,
      index,
      label: stageLabel(plan.stages[index]!),
      found,
      // The person's choice becomes the floor when it is lower: they decided the domain may stand there.
      floorIndex: Math.min(index, floorIndex),
      chosenByPerson: true,
      why: `${override.stage} chosen by a person (${relation}): ${override.reason}; found ${found === null ? 'no DMARC record' : `"${found}"`}`,
    };
  }

  const label = stageLabel(plan.stages[floorIndex]!);
  let why: string;
  if (published === null) {
    why = `no DMARC record at ${fqdn}, so it starts at the plan's first stage ${label}`;
  } else {
    why = `${fqdn} publishes ${describe(published)}; ${label} is the first stage of plan ${plan.name} that is not weaker`;
    if (published.note) why += ` (${published.note})`;
    const writes = plan.stages[floorIndex]!;
    if (published.sampled && !published.testing && (writes.policy !== 'none' && writes.pct < 100)) {
      const full = stageLabel({ policy: writes.policy, pct: 100 });
      why += `; RFC 9989 receivers ignore pct and applied p=${published.policy} to all failing mail, while ${label} adds t=y, so they apply one level below until ${full} (--start-at ${full} with a reason keeps them where they are)`;
    } else if (published.testing && !published.sampled && published.policy !== 'none') {
      why += `; t=y without pct made RFC 9989 receivers apply one level below p=${published.policy}, RFC 7489 receivers all of it: ${label} is what the RFC 7489 ones already apply`;
    }
  }
  return { ok: true, index: floorIndex, label, found, floorIndex, chosenByPerson: false, why };
}

/** The first stage writing no weaker a policy than `published` for the domain and, where the plan writes them, for its subdomains; -1 if none. */
function lowestStageNotWeaker(plan: Plan, published: PublishedStage): number {
  const rank = publishedRank(published);
  return plan.stages.findIndex((stage: Stage) => {
    if (publishedRank(stage) < rank) return false;
    if (plan.manage.sp && policyRank(stage.policy) < policyRank(published.sp ?? published.policy)) return false;
    if (plan.manage.np && policyRank(stage.policy) < policyRank(published.np ?? published.sp ?? published.policy)) return false;
    return true;
  });
}

function describe(p: PublishedStage): string {
  if (p.policy === 'none') return 'p=none';
  return p.sampled ? `p=${p.policy} at ${p.pct} %${p.testing ? ' with t=y' : ''}` : `p=${p.policy}${p.testing ? ' with t=y' : ''}`;
}
