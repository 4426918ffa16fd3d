/**
 * A `domains` row as a test writes it by SQL when it needs a fleet (hundreds
 * of domains, or chosen states and stages) faster than enrolment makes one:
 * enrolled and last changed at `at`, at the plan's first stage, active, on
 * the memory provider, no record found or written yet. `fields` override.
 */
import type { NewDomain } from '../../src/store/schema.js';

export function domainRow(domain: string, at: Date, fields: Partial<NewDomain> = {}): NewDomain {
  const iso = at.toISOString();
  return {
    domain,
    plan: 'default',
    provider: 'memory',
    stage_index: 0,
    state: 'active',
    state_reason: null,
    stage_since: iso,
    last_record: null,
    window_start: null,
    approved_stage_index: null,
    found_record: null,
    floor_index: null,
    report_uri: null,
    enrolled_at: iso,
    updated_at: iso,
    ...fields,
  };
}
