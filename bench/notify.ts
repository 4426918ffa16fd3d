/**
 * What the notification outbox costs the tick: appending audit entries with
 * their notification events (the hook in appendAudit) against inserting the
 * same audit rows alone, on the same SQLite file, in the same process; and
 * how long one dispatch of a large tick's events takes. Prints ratios, not
 * verdicts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveNotifications, notificationsConfigSchema } from '../src/notify/config.js';
import { dispatchEvents } from '../src/notify/outbox.js';
import { appendAudit } from '../src/store/audit.js';
import { openSqliteStore } from '../src/store/open.js';

const N = 3000;
const store = await openSqliteStore(join(mkdtempSync(join(tmpdir(), 'bench-notify-')), 'store.sqlite'));
const at = new Date('2026-03-10T12:00:00Z');
const entry = (i: number) => ({
  at,
  actor: 'engine',
  domain: `d${i}.example`,
  action: i % 3 === 0 ? 'await-approval' : 'hold',
  reason: i % 3 === 0 ? 'quarantine:100 is clean; reject:1 waits for approval (dmarc-rollout approve x).' : `holding at none:100: google.com went quiet (${i})`,
  details: {
    checks: [
      { rule: 'quiet-reporter', outcome: i % 3 === 0 ? 'passed' : 'inconclusive', measured: i % 3 === 0 ? 'none' : 'google.com', threshold: '3 days', detail: 'google.com went quiet' },
      { rule: 'min-days', outcome: 'passed', measured: 7, threshold: 7, detail: '7 days' },
    ],
  },
});

async function time(label: string, fn: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${label}: ${ms.toFixed(0)} ms`);
  return ms;
}

const baseline = await time(`${N} audit rows alone, one transaction each`, async () => {
  for (let i = 0; i < N; i++) {
    const e = entry(i);
    await store.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('audit_events')
        .values({ at: e.at.toISOString(), actor: e.actor, domain: e.domain, action: e.action, reason: e.reason, details: JSON.stringify(e.details) })
        .execute();
    });
  }
});
const hooked = await time(`${N} audit entries with their notification events (appendAudit)`, async () => {
  for (let i = 0; i < N; i++) await store.db.transaction().execute((trx) => appendAudit(trx, entry(N + i)));
});
const events = Number((await store.db.selectFrom('notification_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
console.log(`events written: ${events}`);
console.log(`ratio appendAudit with outbox / audit row alone: ${(hooked / baseline).toFixed(2)}`);

const { settings } = resolveNotifications(
  notificationsConfigSchema.parse({
    channels: {
      hook: { type: 'webhook', url_env: 'U', secret_env: 'S' },
      slack: { type: 'slack', url_env: 'U', min_severity: 'warning' },
      teams: { type: 'teams', url_env: 'U', events: ['approval-waiting'] },
      mail: { type: 'smtp', host: '127.0.0.1', security: 'none', from: 'a@example.com', to: ['b@example.com'] },
    },
  }),
  { U: 'http://127.0.0.1:9/', S: 'x' },
);
const dispatch = await time(`one dispatch of ${events} events to 4 channels`, async () => {
  await dispatchEvents(store, settings, at);
});
console.log(`ratio dispatch / ${N} audit rows alone: ${(dispatch / baseline).toFixed(2)}`);
await store.close();
