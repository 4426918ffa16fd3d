/**
 * A small fleet in a real store, brought to where the page and API matter:
 * one domain clean and waiting for approval of a gated stage, one holding with
 * no reports, one paused, one receiving spoofed mail from a hostile-named
 * reporter. Built with the real engine (enrol, tick, ingest, tick) on a
 * caller's DNS provider and clock; nothing is written to the store by hand.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DnsProvider } from '../../src/dns/provider.js';
import type { Verifier } from '../../src/engine/apply.js';
import { runTick } from '../../src/engine/tick.js';
import { pause } from '../../src/fleet/actions.js';
import { enrollDomains } from '../../src/fleet/index.js';
import { loadPlan, planDirectories, type Plan } from '../../src/plans/index.js';
import { ingestInput } from '../../src/reports/index.js';
import type { Store } from '../../src/store/open.js';
import { aggregateReportXml, cleanRow, spoofRow } from './reports.js';

/** The plan the fixture enrols with: none:100, then a gated quarantine:100, then reject:100. */
export const GATED_PLAN_YAML = `description: fixture plan with a gated second stage
record_ttl: 60
stages:
  - { policy: none, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.02 }
  - { policy: quarantine, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.02, halt_fail_rate: 0.05, rollback_fail_rate: 0.1, requires_approval: true }
  - { policy: reject, pct: 100, min_days: 2, min_messages: 10, advance_max_fail_rate: 0.01, halt_fail_rate: 0.03, rollback_fail_rate: 0.05 }
`;

/** Where the fixture's domains send reports: enrolment adds it to each record as its rua. */
export const FIXTURE_REPORT_ADDRESS = 'dmarc@reports.example';
export const HOSTILE_REPORTER = '<script>alert("xss")</script>.example';

export interface FleetFixture {
  /** A folder holding the `gated` plan; add it to DMARC_ROLLOUT_PLANS for a daemon process. */
  plansDir: string;
  loadPlan(name: string): Plan;
  gated: string;
  steady: string;
  paused: string;
  spoofed: string;
}

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Builds the fleet as of `now`: every domain's first stage was established
 * six days earlier through `provider`, and the reports of the days since are
 * ingested.
 */
export async function buildFleetFixture(
  store: Store,
  opts: { now: Date; providerName: string; provider: DnsProvider; verifier?: (provider: DnsProvider) => Verifier; domainSuffix?: string },
): Promise<FleetFixture> {
  const plansDir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-plans-'));
  writeFileSync(join(plansDir, 'gated.yaml'), GATED_PLAN_YAML);
  const load = (name: string) => loadPlan(name, [plansDir, ...planDirectories()]);
  const suffix = opts.domainSuffix ?? 'example';
  const names = { gated: `gated.${suffix}`, steady: `steady.${suffix}`, paused: `paused.${suffix}`, spoofed: `spoofed.${suffix}` };
  const established = new Date(opts.now.getTime() - 6 * DAY_MS);
  await enrollDomains(store, {
    inputs: Object.values(names).map((text) => ({ text, origin: 'argv' as const })),
    plan: load('gated'),
    provider: opts.providerName,
    providers: { names: [opts.providerName], get: () => opts.provider },
    reportAddress: FIXTURE_REPORT_ADDRESS,
    actor: 'test:setup',
    now: new Date(established.getTime() - 60_000),
  });
  await runTick({
    store,
    now: established,
    providerFor: () => opts.provider,
    loadPlan: load,
    ...(opts.verifier ? { verifierFor: opts.verifier } : {}),
  });
  const today = Math.floor(opts.now.getTime() / DAY_MS) * DAY_MS;
  for (let d = 5; d >= 1; d--) {
    const day = isoDay(today - d * DAY_MS);
    const reports = [
      aggregateReportXml({ reporter: 'google.com', domain: names.gated, day, rows: [cleanRow(names.gated, '192.0.2.10', 400)] }),
      aggregateReportXml({ reporter: 'google.com', domain: names.paused, day, rows: [cleanRow(names.paused, '192.0.2.20', 100)] }),
      aggregateReportXml({
        reporter: HOSTILE_REPORTER,
        domain: names.spoofed,
        day,
        rows: [cleanRow(names.spoofed, '192.0.2.30', 200), spoofRow(names.spoofed, '203.0.113.66', 75)],
      }),
    ];
    for (const [i, xml] of reports.entries()) {
      await ingestInput(store.db, { bytes: Buffer.from(xml) }, `fixture:${day}/${i}`, { rejectedDir: join(plansDir, 'rejected'), now: () => opts.now });
    }
  }
  await pause(store, names.paused, { actor: 'test:setup', now: new Date(opts.now.getTime() - DAY_MS) }, 'waiting for the new mail gateway');
  return { plansDir, loadPlan: load, ...names };
}
