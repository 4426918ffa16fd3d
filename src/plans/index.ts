/** Plans: the stage ladder a domain walks and the evidence each step needs. */
export { POLICIES, planSchema, stageSchema, policySchema, stageRank } from './schema.js';
export type { Plan, PlanBody, Policy, Stage } from './schema.js';
export {
  PlanError,
  formatPlanProblem,
  listPlans,
  loadPlan,
  loadPlanFile,
  parsePlan,
  planDirectories,
} from './load.js';
export type { PlanListing, PlanProblem } from './load.js';
