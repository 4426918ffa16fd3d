/**
 * One world for every engine-level test: a store on the dialect the test
 * chooses (test/helpers/dialects.ts: a SQLite file, or a fresh database on
 * the file's Postgres), a DNS provider (the engine's in-memory zone unless
 * the test brings a real one), a clock that only the test moves, reports
 * delivered through the real ingest at the instant each arrives, and ticks
 * through the daemon's own runTick at the world's time. Domains are enrolled
 * as the CLI enrols them. Nothing is written to the store by hand.
 *
 * Time: `now()` is the world's clock. `moveTo(at)` moves it (delivering the
 * reports that arrived meanwhile) without ticking; `tick()` runs one tick
 * now; `runUntil(at)` and `advanceDays(n)` tick at the daemon's hours
 * (`tickHours`, at `tickMinute`) on the way, delivering each report before
 * the first tick after it arrives, as the daemon's sources would.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { DnsProvider } from '../../src/dns/provider.js';
import { MemoryDns } from '../../src/engine/memory-dns.js';
import { runTick, type DomainTickResult, type TickOptions } from '../../src/engine/tick.js';
import { enrollDomains, type EnrollResult } from '../../src/fleet/index.js';
import { loadPlan as loadNamedPlan, type Plan } from '../../src/plans/index.js';
import { ingestInput, type IngestResult, type RawInput } from '../../src/reports/index.js';
import { getDomain, stageHistory } from '../../src/store/domains.js';
import type { Store } from '../../src/store/open.js';
import type { AuditEvent, DomainRow, StageChange } from '../../src/store/schema.js';
import { tempStore } from './cli.js';
import { SQLITE, type StoreDialect } from './dialects.js';
import { aggregateReportXml, dayRange, type GeneratedReport } from './reports.js';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** A report on its way: its XML, the instant it reaches the daemon, and the name ingest files it under. */
export interface Delivery {
  at: number;
  xml: string;
  source: string;
}

export interface WorldOptions<P extends DnsProvider> {
  /** Where the clock starts. */
  start: Date;
  /** The store's dialect; SQLite when absent. */
  dialect?: StoreDialect;
  /** A store the caller opened, instead of a new one of `dialect` (close() closes it all the same). */
  store?: Store;
  /** The DNS the domains' records live in; the engine's in-memory zone when absent. */
  dns?: P;
  /** The provider name domains are enrolled with; the DNS's own name when absent. */
  providerName?: string;
  /** Which provider the tick uses for a domain (it may throw, as the daemon's lookup does for a name it lacks); `dns` when absent. */
  providerFor?: (row: DomainRow) => DnsProvider;
  /** The plan `enrol` uses when not told another; the default plan when absent. */
  plan?: Plan;
  /** How the tick loads a domain's plan; the plan folders when absent. */
  loadPlan?: (name: string) => Plan;
  /** The daemon's report address enrolment adds to a record without a rua. */
  reportAddress?: string;
  /** UTC hours the daemon ticks at in runUntil/advanceDays, at `tickMinute`. */
  tickHours?: number[];
  tickMinute?: number;
}

export interface TickLogEntry {
  at: Date;
  result: DomainTickResult;
}

export interface World<P extends DnsProvider = MemoryDns> {
  store: Store;
  dns: P;
  plan: Plan;
  loadPlan: (name: string) => Plan;
  /** A folder of the world's own (rejected inputs are kept under it). */
  dir: string;
  /** Every ingest outcome, in the order the reports arrived. */
  ingested: IngestResult[];
  now(): Date;
  /** The instant `ms` after now. */
  later(ms: number): Date;
  /** Moves the clock forward to `at`, delivering the reports that arrive by then; no tick. */
  moveTo(at: Date): Promise<void>;
  /** Enrols domains now (after moving the clock to `at`, if given) as `enroll` does; fails the test on any refusal. */
  enrol(domains: string[], opts?: { at?: Date; plan?: Plan; records?: Record<string, string>; provider?: string; actor?: string }): Promise<EnrollResult>;
  /**
   * Sends reports: each is ingested when the clock reaches its arrival (at
   * once if that is now or past), through the real ingest, with that instant
   * as its arrival time. Each must be stored (a re-sent copy is stored too,
   * flagged).
   */
  send(deliveries: Delivery[]): Promise<IngestResult[]>;
  /** Sends generated reports, each arriving `delayHours` (default 6) after the end of its day. */
  sendReports(reports: GeneratedReport[], delayHours?: number): Promise<IngestResult[]>;
  /** Ingests one input now, whatever its outcome (for tests about ingest itself). */
  ingest(input: RawInput, source: string): Promise<IngestResult>;
  /** One tick now, as the daemon runs it; `at` moves the clock there first. */
  tick(at?: Date, extra?: Partial<TickOptions>): Promise<DomainTickResult[]>;
  /** The one domain's result of a tick (the world must have exactly one domain the tick works on). */
  tickOne(at?: Date, extra?: Partial<TickOptions>): Promise<DomainTickResult>;
  /** Ticks at the daemon's hours until `at`, delivering reports as they arrive; every result with its time. */
  runUntil(at: Date, onTick?: (now: Date, results: DomainTickResult[]) => Promise<void> | void): Promise<TickLogEntry[]>;
  /** runUntil `days` days from now. */
  advanceDays(days: number, onTick?: (now: Date, results: DomainTickResult[]) => Promise<void> | void): Promise<TickLogEntry[]>;
  /** The domain's row (the first enrolled when not named). */
  row(domain?: string): Promise<DomainRow>;
  audit(domain?: string): Promise<AuditEvent[]>;
  history(domain?: string): Promise<StageChange[]>;
  close(): Promise<void>;
}

export async function createWorld<P extends DnsProvider = MemoryDns>(opts: WorldOptions<P>): Promise<World<P>> {
  const store = opts.store ?? (await (opts.dialect ?? SQLITE).open());
  const { dir } = tempStore('dmarc-rollout-world-');
  const dns = opts.dns ?? (new MemoryDns() as unknown as P);
  const providerName = opts.providerName ?? dns.name;
  const plan = opts.plan ?? loadNamedPlan('default');
  const loadPlan = opts.loadPlan ?? ((name: string) => loadNamedPlan(name));
  const providerFor = opts.providerFor ?? (() => dns);
  const tickHours = [...(opts.tickHours ?? [12])].sort((a, b) => a - b);
  const tickMinute = opts.tickMinute ?? 0;
  let now = opts.start.getTime();
  const pending: Delivery[] = [];
  const ingested: IngestResult[] = [];
  const enrolled: string[] = [];

  const ingestAt = async (input: RawInput, source: string, at: number) => {
    const arrived = new Date(at);
    const result = await ingestInput(store.db, input, source, { rejectedDir: join(dir, 'rejected'), now: () => arrived });
    ingested.push(result);
    return result;
  };
  /** Ingests, in arrival order, every pending report that has arrived by now. */
  const deliverDue = async (): Promise<IngestResult[]> => {
    const due = pending.filter((d) => d.at <= now).sort((a, b) => a.at - b.at);
    if (due.length === 0) return [];
    const results: IngestResult[] = [];
    for (const d of due) {
      pending.splice(pending.indexOf(d), 1);
      const result = await ingestAt({ bytes: Buffer.from(d.xml) }, d.source, d.at);
      assert.equal(result.status, 'stored', `${d.source}: ${JSON.stringify(result)}`);
      results.push(result);
    }
    return results;
  };
  const moveTo = async (at: Date) => {
    assert.ok(at.getTime() >= now, `the world's clock only moves forward: at ${new Date(now).toISOString()}, asked for ${at.toISOString()}`);
    now = at.getTime();
    await deliverDue();
  };
  const tick = async (at?: Date, extra: Partial<TickOptions> = {}) => {
    if (at) await moveTo(at);
    return runTick({ store, now: new Date(now), providerFor, loadPlan, ...extra });
  };
  /** The daemon's tick instants after `from`, up to and including `to`. */
  const tickInstants = (from: number, to: number): number[] => {
    const out: number[] = [];
    for (let day = Math.floor(from / DAY_MS) * DAY_MS; day <= to; day += DAY_MS) {
      for (const hour of tickHours) {
        const t = day + hour * HOUR_MS + tickMinute * 60_000;
        if (t > from && t <= to) out.push(t);
      }
    }
    return out;
  };
  const runUntil = async (at: Date, onTick?: (now: Date, results: DomainTickResult[]) => Promise<void> | void) => {
    const log: TickLogEntry[] = [];
    for (const t of tickInstants(now, at.getTime())) {
      const results = await tick(new Date(t));
      for (const result of results) log.push({ at: new Date(t), result });
      await onTick?.(new Date(t), results);
    }
    await moveTo(at);
    return log;
  };
  const send = async (deliveries: Delivery[]) => {
    pending.push(...deliveries);
    return deliverDue();
  };
  const first = (domain?: string) => domain ?? enrolled[0] ?? assert.fail('no domain enrolled yet');

  return {
    store,
    dns,
    plan,
    loadPlan,
    dir,
    ingested,
    now: () => new Date(now),
    later: (ms) => new Date(now + ms),
    moveTo,
    async enrol(domains, o = {}) {
      if (o.at) await moveTo(o.at);
      for (const [domain, record] of Object.entries(o.records ?? {})) {
        assert.ok(dns instanceof MemoryDns, 'records: only for the in-memory zone; a real provider is set up through its own API');
        dns.set(`_dmarc.${domain}`, { txt: [record], ttl: 300 });
      }
      const result = await enrollDomains(store, {
        inputs: domains.map((text) => ({ text, origin: 'argv' as const })),
        plan: o.plan ?? plan,
        provider: o.provider ?? providerName,
        providers: { names: [...new Set([providerName, o.provider ?? providerName])], get: () => dns },
        reportAddress: opts.reportAddress ?? 'dmarc@reports.example',
        actor: o.actor ?? 'test',
        now: new Date(now),
      });
      assert.deepEqual(result.refused, [], `enrolment refused: ${result.refused.map((r) => r.reason).join('; ')}`);
      enrolled.push(...result.enrolled);
      return result;
    },
    send,
    sendReports(reports, delayHours = 6) {
      return send(
        reports.map((r) => ({
          at: (dayRange(r.day).end + 1) * 1000 + delayHours * HOUR_MS,
          xml: aggregateReportXml(r),
          source: `${r.reporter}/${r.domain}/${r.day}`,
        })),
      );
    },
    ingest: (input, source) => ingestAt(input, source, now),
    tick,
    async tickOne(at, extra) {
      const results = await tick(at, extra);
      assert.equal(results.length, 1, JSON.stringify(results));
      return results[0]!;
    },
    runUntil,
    advanceDays: (days, onTick) => runUntil(new Date(now + days * DAY_MS), onTick),
    async row(domain) {
      const row = await getDomain(store.db, first(domain));
      assert.ok(row, `${first(domain)} is not enrolled`);
      return row;
    },
    audit: (domain) => store.db.selectFrom('audit_events').selectAll().where('domain', '=', first(domain)).orderBy('id').execute(),
    history: (domain) => stageHistory(store.db, first(domain)),
    close: () => store.close(),
  };
}
