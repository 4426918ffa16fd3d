/**
 * The rollout stage a published record amounts to, so that a program taking
 * over a domain never starts below what its owner already enforces. The
 * stage ladder is measured as RFC 7489 receivers apply it: `p` and the share
 * of failing mail `pct` puts under it. How RFC 9989 receivers read the same
 * record (`t=y` one level below, `pct` ignored) is reported beside it, so
 * the reason printed at enrolment can say what changes for them.
 */
import { parseRecord, tagValue } from './parse.js';
import { policyFromTagValue, POLICIES, type Policy } from './policy.js';
import { hasUsableUri } from './uri.js';

/** A published record read as a stage, plus the subdomain policies it sets. */
export interface PublishedStage {
  policy: Policy;
  /** Percent of failing mail under `policy` for RFC 7489 receivers (100 for p=none). */
  pct: number;
  /** `sp` and `np` as written (valid values only), null when absent. */
  sp: Policy | null;
  np: Policy | null;
  /** `t=y` was set. */
  testing: boolean;
  /** True when `pct` was present with a value below 100. */
  sampled: boolean;
  /** Why the record reads as p=none although it says otherwise (broken p), else null. */
  note: string | null;
}

/** Orders policies: none 0, quarantine 1, reject 2. */
export const policyRank = (policy: Policy): number => POLICIES.indexOf(policy);

/** Orders stages by enforcement, policy first and then pct, as plans do. */
export const publishedRank = (stage: { policy: Policy; pct: number }): number => policyRank(stage.policy) * 1000 + stage.pct;

/** What `record` enforces, read the way receivers read it (an invalid p counts as none). */
export function publishedStage(record: string): PublishedStage {
  const tags = parseRecord(record).tags;
  const pText = tagValue(tags, 'p');
  const p = policyFromTagValue(pText ?? '');
  const sp = policyFromTagValue(tagValue(tags, 'sp') ?? '');
  const np = policyFromTagValue(tagValue(tags, 'np') ?? '');
  const testing = (tagValue(tags, 't') ?? '').toLowerCase() === 'y';
  if (p === null) {
    const rua = tagValue(tags, 'rua');
    const note =
      rua !== undefined && hasUsableUri(rua)
        ? `p is ${pText === undefined ? 'missing' : `"${pText}"`}, so receivers read the record as p=none`
        : `p is ${pText === undefined ? 'missing' : `"${pText}"`} and there is no usable rua, so receivers ignore the record`;
    return { policy: 'none', pct: 100, sp, np, testing, sampled: false, note };
  }
  const pctText = tagValue(tags, 'pct');
  const pctValid = pctText !== undefined && /^[0-9]{1,3}$/.test(pctText) && Number(pctText) <= 100;
  // RFC 7489: an invalid pct is replaced by its default, 100.
  const pct = p === 'none' || !pctValid ? 100 : Number(pctText);
  return { policy: p, pct, sp, np, testing, sampled: pct < 100, note: null };
}
