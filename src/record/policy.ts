/**
 * The three DMARC policies and the one ordering between them that both RFCs
 * rely on: "one level below" is how RFC 7489 treats mail outside the `pct`
 * sample and how RFC 9989 treats all failing mail under `t=y`.
 */

/** A DMARC policy as written in `p`, `sp` and `np`. */
export type Policy = 'none' | 'quarantine' | 'reject';

/** Every policy, weakest first. */
export const POLICIES: readonly Policy[] = ['none', 'quarantine', 'reject'];

/** True when `value` is exactly one of the policy names (lowercase). */
export function isPolicy(value: unknown): value is Policy {
  return typeof value === 'string' && (POLICIES as readonly string[]).includes(value);
}

/**
 * Reads a policy tag value the way receivers do: the RFC ABNF spells the
 * keywords as case-insensitive strings, so `Reject` is `reject`. Returns null
 * for anything else.
 */
export function policyFromTagValue(value: string): Policy | null {
  const lower = value.toLowerCase();
  return isPolicy(lower) ? lower : null;
}

/** The policy one level weaker: reject → quarantine → none → none. */
export function oneLevelBelow(policy: Policy): Policy {
  return policy === 'reject' ? 'quarantine' : 'none';
}
