/**
 * Enrolling domains into a plan. A batch (the command line, or a file of a few
 * thousand lines) is checked line by line and written in one transaction: the
 * valid names go in together, and every refused line comes back with its
 * reason so the operator can fix the file and run it again.
 */
import type { Plan } from '../plans/index.js';
import { appendAudit } from '../store/audit.js';
import { appendStageChange, findDomains, insertDomain } from '../store/domains.js';
import type { Store } from '../store/open.js';
import { normalizeDomainName } from './domain-name.js';

/** One line of input: the text and where it came from, to name it when refused. */
export interface EnrollInput {
  text: string;
  /** `argv`, or the file name. */
  origin: string;
  /** 1-based line number within a file. */
  line?: number;
}

export interface EnrollRequest {
  inputs: EnrollInput[];
  plan: Plan;
  provider: string | null;
  actor: string;
  now: Date;
}

export interface EnrollRefusal {
  input: EnrollInput;
  reason: string;
}

export interface EnrollResult {
  enrolled: string[];
  /** Already enrolled before this run (left untouched), with their plan. */
  alreadyEnrolled: Array<{ domain: string; plan: string }>;
  refused: EnrollRefusal[];
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Reads an enrolment file: one domain a line; blank lines and `#` comments are skipped. */
export function enrollInputsFromText(text: string, origin: string): EnrollInput[] {
  const inputs: EnrollInput[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const withoutComment = raw.replace(/#.*$/, '').trim();
    if (withoutComment !== '') inputs.push({ text: withoutComment, origin, line: index + 1 });
  });
  return inputs;
}

/** Validates every input and enrolls the valid, new ones at the plan's first stage, in one transaction. */
export async function enrollDomains(store: Store, request: EnrollRequest): Promise<EnrollResult> {
  if (request.provider !== null && !PROVIDER_NAME.test(request.provider)) {
    throw new Error(`provider "${request.provider}": use lowercase letters, digits, "-" or "_"`);
  }
  const refused: EnrollRefusal[] = [];
  const firstSeen = new Map<string, EnrollInput>();
  for (const input of request.inputs) {
    const name = normalizeDomainName(input.text);
    if (!name.ok) {
      refused.push({ input, reason: name.reason });
      continue;
    }
    const earlier = firstSeen.get(name.domain);
    if (earlier) {
      refused.push({ input, reason: `${name.domain} is listed twice (first at ${describeInput(earlier)})` });
      continue;
    }
    firstSeen.set(name.domain, input);
  }

  const firstStage = request.plan.stages[0]!;
  const at = request.now.toISOString();
  return store.db.transaction().execute(async (trx) => {
    const existing = await findDomains(trx, [...firstSeen.keys()]);
    const enrolled: string[] = [];
    const alreadyEnrolled: EnrollResult['alreadyEnrolled'] = [];
    for (const domain of firstSeen.keys()) {
      const row = existing.get(domain);
      if (row) {
        alreadyEnrolled.push({ domain, plan: row.plan });
        continue;
      }
      await insertDomain(trx, {
        domain,
        plan: request.plan.name,
        provider: request.provider,
        stage_index: 0,
        state: 'active',
        state_reason: null,
        stage_since: null,
        last_record: null,
        window_start: null,
        approved_stage_index: null,
        enrolled_at: at,
        updated_at: at,
      });
      const stage = `${firstStage.policy}:${firstStage.pct}`;
      const reason = `enrolled into plan ${request.plan.name}; first stage ${stage} is written and verified by the next tick`;
      await appendStageChange(trx, {
        domain,
        at,
        from_stage: null,
        to_stage: stage,
        action: 'enroll',
        actor: request.actor,
        reason,
        record: null,
      });
      await appendAudit(trx, {
        at: request.now,
        actor: request.actor,
        domain,
        action: 'enroll',
        reason,
        details: { plan: request.plan.name, plan_file: request.plan.file, provider: request.provider },
      });
      enrolled.push(domain);
    }
    return { enrolled, alreadyEnrolled, refused };
  });
}

/** `file:line` or `argument "x"`, for messages about one input. */
export function describeInput(input: EnrollInput): string {
  return input.line === undefined ? `argument "${input.text}"` : `${input.origin}:${input.line}`;
}
