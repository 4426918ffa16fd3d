/**
 * A small fleet in a real store, brought to where the page and API matter:
 * one domain clean and waiting for approval of a gated stage, one holding with
 * no reports, one paused, one receiving spoofed mail from a hostile-named
 * reporter. Built in the test world (test/helpers/world.ts) on the caller's
 * store, DNS provider and clock: enrol, tick, reports through the real
 * ingest; nothing is written to the store by hand.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp-dirs.js';
import type { DnsProvider } from '../../src/dns/provider.js';
import type { Verifier } from '../../src/engine/apply.js';
import { pause } from '../../src/fleet/actions.js';
import { loadPlan, planDirectories, type Plan } from '../../src/plans/index.js';
import type { Store } from '../../src/store/open.js';
import { aggregateReportXml, cleanRow, spoofRow } from './reports.js';
import { createWorld, type Delivery, type World } from './world.js';

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
  /** The world the fleet was built in, its clock at `now`: tick it, send it reports. */
  world: World<DnsProvider>;
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
  const plansDir = tempDir('dmarc-rollout-plans-');
  writeFileSync(join(plansDir, 'gated.yaml'), GATED_PLAN_YAML);
  const load = (name: string) => loadPlan(name, [plansDir, ...planDirectories()]);
  const suffix = opts.domainSuffix ?? 'example';
  const names = { gated: `gated.${suffix}`, steady: `steady.${suffix}`, paused: `paused.${suffix}`, spoofed: `spoofed.${suffix}` };
  const established = new Date(opts.now.getTime() - 6 * DAY_MS);
  const w = await createWorld<DnsProvider>({ store, start: new Date(established.getTime() - 60_000), dns: opts.provider, providerName: opts.providerName, plan: load('gated'), loadPlan: load, reportAddress: FIXTURE_REPORT_ADDRESS });
  await w.enrol(Object.values(names), { actor: 'test:setup' });
  await w.tick(established, opts.verifier ? { verifierFor: opts.verifier } : {});
  const today = Math.floor(opts.now.getTime() / DAY_MS) * DAY_MS;
  const deliveries: Delivery[] = [];
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
    // All of them arrive at `now`, after the last tick.
    for (const [i, xml] of reports.entries()) deliveries.push({ at: opts.now.getTime(), xml, source: `fixture:${day}/${i}` });
  }
  await w.send(deliveries);
  await w.moveTo(opts.now);
  await pause(store, names.paused, { actor: 'test:setup', now: new Date(opts.now.getTime() - DAY_MS) }, 'waiting for the new mail gateway');
  return { world: w, plansDir, loadPlan: load, ...names };
}
