/**
 * Evidence, not anecdotes: how sure a failure rate is. One failed message in
 * 32 is 3.1 %, above a reject stage's 3 % halt rate, and says almost nothing;
 * 300 failed in 5,000 says a sender broke. Decisions on a rate use the Wilson
 * score interval (good at small counts and rates near 0, where the normal
 * approximation fails) at the plan's confidence, one-sided because each rule
 * asks one question: alarms ask "is the rate surely above the threshold?"
 * (lower bound), advancing asks "is it surely at or below?" (upper bound).
 */

export interface RateEvidence {
  failed: number;
  messages: number;
  /** failed / messages, or null without messages. */
  rate: number | null;
  /** One-sided Wilson bounds at `confidence`: the rate is above `low` and below `high` with that confidence. */
  low: number;
  high: number;
  confidence: number;
}

/** The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: ${p} is not in (0, 1)`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** The failure rate of `failed` out of `messages` with its one-sided Wilson bounds at `confidence` (e.g. 0.95). */
export function rateEvidence(failed: number, messages: number, confidence: number): RateEvidence {
  if (messages <= 0) return { failed, messages, rate: null, low: 0, high: 1, confidence };
  const z = normalQuantile(confidence);
  const p = failed / messages;
  const z2 = z * z;
  const centre = p + z2 / (2 * messages);
  const spread = z * Math.sqrt((p * (1 - p)) / messages + z2 / (4 * messages * messages));
  const denominator = 1 + z2 / messages;
  return {
    failed,
    messages,
    rate: p,
    low: Math.max(0, (centre - spread) / denominator),
    high: Math.min(1, (centre + spread) / denominator),
    confidence,
  };
}

/** "3.1% (1 of 32; 95% sure it is 0.16%–13.9%)" */
export function describeEvidence(e: RateEvidence, percent: (rate: number) => string): string {
  if (e.rate === null) return 'no authorised mail';
  return `${percent(e.rate)} (${e.failed} of ${e.messages}; ${Math.round(e.confidence * 100)}% sure it is above ${percent(e.low)} and below ${percent(e.high)})`;
}
