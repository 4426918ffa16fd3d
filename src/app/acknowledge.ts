/**
 * A person's answer to a quiet reporter: "go on without it". A regular
 * reporter that stops sending holds its domain (engine/reporters.ts) rather than be
 * silently dropped; acknowledging it lets the days it missed count, until it
 * reports again (then it is awaited as before). Audited with who and why.
 */
import { ActionError, enrolledDomain, type Actor } from '../fleet/actions.js';
import { appendAudit } from '../store/audit.js';
import type { Store } from '../store/open.js';
import { insertReporterAcknowledgement, loadReportArrivals } from '../store/report-arrivals.js';
import { REPORTER_HISTORY_DAYS } from '../engine/reporters.js';
import { DAY_SECONDS } from '../engine/window.js';

export async function acknowledgeReporter(store: Store, domainInput: string, reporter: string, who: Actor, reason: string): Promise<string> {
  if (reason.trim() === '') throw new ActionError('acknowledging a quiet reporter needs a reason (--reason)', 'invalid', 'reason');
  const row = await enrolledDomain(store, domainInput);
  const nowSeconds = Math.floor(who.now.getTime() / 1000);
  const known = [...new Set((await loadReportArrivals(store.db, row.domain, { fromEpoch: nowSeconds - REPORTER_HISTORY_DAYS * DAY_SECONDS, toEpoch: nowSeconds })).map((a) => a.reporter))].sort();
  if (!known.includes(reporter)) {
    throw new ActionError(
      `${reporter} has sent no report for ${row.domain} in the last ${REPORTER_HISTORY_DAYS} days (reporters: ${known.join(', ') || 'none'})`,
      'not-found',
      'reporter',
    );
  }
  await store.db.transaction().execute(async (trx) => {
    await insertReporterAcknowledgement(trx, { domain: row.domain, reporter, at: who.now, actor: who.actor, reason });
    await appendAudit(trx, {
      at: who.now,
      actor: who.actor,
      domain: row.domain,
      action: 'acknowledge-reporter',
      reason: `${reporter}'s silence acknowledged: days it missed count without it until it reports again: ${reason}`,
    });
  });
  return `${row.domain}: ${reporter}'s silence acknowledged; the days it missed count without it until it reports again`;
}
