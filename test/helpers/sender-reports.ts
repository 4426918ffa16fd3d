/**
 * Aggregate reports with the details that tell senders apart: DKIM selectors,
 * the receiver's override reasons (forwarded, mailing_list, ...), alignment
 * modes, chosen report ids, and the record order and layout a reporter uses.
 * Plus a sender world: the test world (test/helpers/world.ts) with a domain
 * enrolled on the default plan and moved to a quarantine stage through the
 * real tick, reports delivered through the real ingest at the time they
 * would arrive, and judged as explain and the page judge it.
 */
import assert from 'node:assert/strict';
import { assessDomain, type DomainAssessment } from '../../src/engine/tick.js';
import { decide } from '../../src/engine/decide.js';
import type { Decision } from '../../src/engine/types.js';
import { force } from '../../src/fleet/actions.js';
import { loadPlan } from '../../src/plans/index.js';
import type { StoreDialect } from './dialects.js';
import { createWorld, HOUR_MS, type World } from './world.js';

export interface SenderRow {
  ip: string;
  count: number;
  headerFrom: string;
  /** policy_evaluated: pass means aligned and authenticated, as the receiver judged. */
  dkim: 'pass' | 'fail';
  spf: 'pass' | 'fail';
  /** auth_results DKIM signatures. */
  signatures?: Array<{ domain: string; selector: string; result: 'pass' | 'fail' | 'permerror' }>;
  /** auth_results SPF (the envelope domain). */
  spfDomain: string;
  spfResult: 'pass' | 'fail' | 'softfail' | 'none';
  /** policy_evaluated reasons. */
  reasons?: Array<{ type: string; comment?: string }>;
}

export interface SenderReport {
  org: string;
  reportId: string;
  domain: string;
  day: string;
  rows: SenderRow[];
  /** Pretty-printed with indentation and newlines, as some reporters write it, or all on one line. */
  layout?: 'pretty' | 'compact';
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

export const dayStart = (day: string) => Date.parse(`${day}T00:00:00Z`) / 1000;

export function senderReportXml(r: SenderReport): string {
  const nl = r.layout === 'compact' ? '' : '\n';
  const ind = (n: number) => (r.layout === 'compact' ? '' : '  '.repeat(n));
  const begin = dayStart(r.day);
  const records = r.rows.map((row) =>
    [
      `${ind(1)}<record>`,
      `${ind(2)}<row><source_ip>${row.ip}</source_ip><count>${row.count}</count>`,
      `${ind(3)}<policy_evaluated><disposition>none</disposition><dkim>${row.dkim}</dkim><spf>${row.spf}</spf>${(row.reasons ?? [])
        .map((x) => `<reason><type>${x.type}</type>${x.comment ? `<comment>${esc(x.comment)}</comment>` : ''}</reason>`)
        .join('')}</policy_evaluated></row>`,
      `${ind(2)}<identifiers><header_from>${esc(row.headerFrom)}</header_from></identifiers>`,
      `${ind(2)}<auth_results>${(row.signatures ?? [])
        .map((s) => `<dkim><domain>${s.domain}</domain><selector>${s.selector}</selector><result>${s.result}</result></dkim>`)
        .join('')}<spf><domain>${row.spfDomain}</domain><result>${row.spfResult}</result></spf></auth_results>`,
      `${ind(1)}</record>`,
    ].join(nl),
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<feedback>',
    `${ind(1)}<report_metadata><org_name>${esc(r.org)}</org_name><email>noreply-dmarc@${esc(r.org)}</email><report_id>${esc(r.reportId)}</report_id><date_range><begin>${begin}</begin><end>${begin + 86_399}</end></date_range></report_metadata>`,
    `${ind(1)}<policy_published><domain>${r.domain}</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><pct>5</pct></policy_published>`,
    ...records,
    '</feedback>',
    '',
  ].join(nl || '');
}

/** The domain's own mail through an ESP that signs with the domain's key (custom DKIM) and bounces to its own domain. */
export const ownViaEsp = (domain: string, ip: string, count: number, selector = 'esp1'): SenderRow => ({
  ip,
  count,
  headerFrom: domain,
  dkim: 'pass',
  spf: 'fail',
  signatures: [{ domain, selector, result: 'pass' }],
  spfDomain: 'bounce.esp.example',
  spfResult: 'pass',
});

/** The same ESP after a key rotation went wrong: signed with a selector whose key is not published. */
export const rotatedBadly = (domain: string, ip: string, count: number, selector = 'esp2'): SenderRow => ({
  ...ownViaEsp(domain, ip, count, selector),
  dkim: 'fail',
  signatures: [{ domain, selector, result: 'fail' }],
});

/** Mail the domain's own server sends: aligned DKIM and SPF. */
export const ownServer = (domain: string, ip: string, count: number): SenderRow => ({
  ip,
  count,
  headerFrom: domain,
  dkim: 'pass',
  spf: 'pass',
  signatures: [{ domain, selector: 's1', result: 'pass' }],
  spfDomain: domain,
  spfResult: 'pass',
});

export const ENROLLED = new Date('2026-03-01T09:00:00Z');

export interface SenderWorld extends World {
  domain: string;
  /** Sends each report to arrive `delayHours` after its day ends; ingested when the world's clock gets there. */
  deliver(reports: SenderReport[], delayHours?: number): Promise<void>;
  /** What explain and the page show at `now` (the clock moves there first): the figures and the next tick's decision. */
  judge(now: Date): Promise<{ assessment: DomainAssessment; decision: Decision }>;
}

/**
 * A domain enrolled on the default plan, its first record written, then
 * forced to quarantine:5 (a stage with halt and rollback rates) on
 * 2026-03-01: the stage window opens on 2026-03-02. On `dialect`'s store
 * (SQLite when absent).
 */
export async function senderWorld(domain: string, dialect?: StoreDialect): Promise<SenderWorld> {
  const w = await createWorld({ start: ENROLLED, ...(dialect ? { dialect } : {}) });
  const res = await w.enrol([domain]);
  assert.deepEqual(res.enrolled, [domain]);
  await w.tick(new Date('2026-03-01T10:00:00Z'));
  await force(w.store, domain, loadPlan, { actor: 'test', now: new Date('2026-03-01T11:00:00Z') }, { to: 'quarantine:5', reason: 'test starts at a stage with halt rates' });
  await w.tick(new Date('2026-03-01T12:00:00Z'));
  const row = await w.row(domain);
  assert.equal(row.window_start, '2026-03-02T00:00:00.000Z', 'quarantine:5 in effect from 2026-03-02');
  return Object.assign(w, {
    domain,
    async deliver(reports: SenderReport[], delayHours = 6) {
      await w.send(
        reports.map((r) => ({
          at: (dayStart(r.day) + 86_400) * 1000 + delayHours * HOUR_MS,
          xml: senderReportXml(r),
          source: `${r.org}/${r.reportId}`,
        })),
      );
    },
    async judge(now: Date) {
      await w.moveTo(now);
      const assessment = await assessDomain(w.store, await w.row(domain), w.plan, now);
      return { assessment, decision: decide(assessment.snapshot, w.plan, assessment.metrics, now) };
    },
  });
}

/** The days from `first`, `n` of them, as YYYY-MM-DD. */
export function daysFrom(first: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => new Date((dayStart(first) + i * 86_400) * 1000).toISOString().slice(0, 10));
}
