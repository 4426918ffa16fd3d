/**
 * A domain's headline figures, the ones the fleet table shows and stores per
 * domain (src/store/assessments.ts): authorised mail's fail rate and volume,
 * spoofing volume, sources holding the domain, and the decision. One place
 * makes them from the engine's measurements, for the tick and for a view
 * that measures a domain again.
 */
import type { AssessmentFigures } from '../store/assessments.js';
import type { Decision, StageMetrics } from './types.js';

export function headlineFigures(metrics: StageMetrics, decision: Decision): AssessmentFigures {
  return {
    authorised_fail_rate: metrics.authorised.failRate,
    authorised_messages: metrics.authorised.messages,
    spoofing_messages: metrics.spoofing.messages,
    blocking_sources: metrics.sources.filter((s) => s.blocking).length,
    decision_action: decision.action,
    decision_to: decision.to,
    decision_summary: decision.summary,
  };
}
