/**
 * The limits on hostile input are counted in the store, so every instance on
 * one database shares them (src/store/counters.ts): two stores opened on the
 * same database stand for two daemons. Their attempts add up to one limit;
 * the window slides and forgets; many takes fired at once from both never let
 * more through than the limit; past windows are pruned. At the doors: sign-in
 * limited across two API servers, an SMTP client's hourly messages across two
 * listeners, a reporter's hourly records across two budgets.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { startApiServer } from '../src/api/server.js';
import { loadDaemonConfig } from '../src/daemon/config.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { SIGN_IN_LIMIT } from '../src/api/web.js';
import { createSmtpSource, type SmtpSource } from '../src/daemon/sources/smtp.js';
import { ReporterBudget } from '../src/reports/budget.js';
import { ReportError } from '../src/reports/errors.js';
import { clearLimit, pruneLimitCounters, takeFromLimit, usedOfLimit, type SharedLimit } from '../src/store/counters.js';
import { openStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { freePort } from './helpers/daemon-process.js';
import { storeDialects } from './helpers/dialects.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';
import { formSignIn } from './helpers/web.js';

const T0 = new Date('2026-07-01T10:00:00Z');
const MINUTE = 60_000;
const at = (ms: number) => new Date(T0.getTime() + ms);
const tenPerTenMinutes: SharedLimit = { name: 'test-attempts', limit: 10, windowMs: 10 * MINUTE };

for (const dialect of storeDialects()) {
  describe(`limits shared by two instances on ${dialect.name}`, () => {
    let a: Store;
    let b: Store;
    before(async () => {
      const location = await dialect.location();
      a = await openStore(location);
      b = await openStore(location);
    });
    after(async () => {
      await a?.close();
      await b?.close();
    });

    it('the attempts of both instances add up to one limit: the eleventh is refused on either, and told when to come back', async () => {
      const limit = { ...tenPerTenMinutes, name: 'sum' };
      for (let i = 0; i < 10; i++) {
        const taken = await takeFromLimit(i % 2 ? b.db : a.db, limit, '192.0.2.1', 1, at(i * 1000));
        assert.equal(taken.allowed, true, `attempt ${i + 1}`);
        assert.equal(taken.used, i + 1);
      }
      for (const store of [a, b]) {
        const refused = await takeFromLimit(store.db, limit, '192.0.2.1', 1, at(20_000));
        assert.equal(refused.allowed, false);
        assert.equal(refused.used, 10, 'a refused attempt is not counted');
        // The first attempts were in the first minute-long slice: it leaves the window a slice after ten minutes.
        assert.ok(refused.retryAfterMs > 9 * MINUTE && refused.retryAfterMs <= 11 * MINUTE, String(refused.retryAfterMs));
      }
      // Another client is not touched.
      assert.equal((await takeFromLimit(b.db, limit, '192.0.2.2', 1, at(20_000))).allowed, true);
      assert.equal(await usedOfLimit(a.db, limit, '192.0.2.1', at(20_000)), 10);
    });

    it('the window slides: nothing is forgotten early, all of it once the window has passed, and a cleared subject starts again', async () => {
      const limit = { ...tenPerTenMinutes, name: 'slide' };
      for (let i = 0; i < 5; i++) assert.equal((await takeFromLimit(a.db, limit, 'r.example', 1, at(0))).allowed, true);
      for (let i = 0; i < 5; i++) assert.equal((await takeFromLimit(b.db, limit, 'r.example', 1, at(5 * MINUTE))).allowed, true);
      // Ten minutes after the first five they still count (never early); a slice later they are gone, the second five not.
      assert.equal((await takeFromLimit(a.db, limit, 'r.example', 1, at(10 * MINUTE))).allowed, false);
      const later = await takeFromLimit(b.db, limit, 'r.example', 5, at(11 * MINUTE));
      assert.deepEqual([later.allowed, later.used], [true, 10]);
      assert.equal((await takeFromLimit(a.db, limit, 'r.example', 1, at(11 * MINUTE))).allowed, false);
      // Everything has left the window: the full limit again, in one take.
      assert.equal((await takeFromLimit(a.db, limit, 'r.example', 10, at(23 * MINUTE))).allowed, true);
      await clearLimit(b.db, limit, 'r.example');
      assert.equal(await usedOfLimit(a.db, limit, 'r.example', at(23 * MINUTE)), 0);
      // More than the limit at once never fits.
      const tooMuch = await takeFromLimit(a.db, limit, 'r.example', 11, at(23 * MINUTE));
      assert.deepEqual([tooMuch.allowed, tooMuch.used], [false, 0]);
    });

    it('takes fired at once from both instances never let more than the limit through', async () => {
      const limit: SharedLimit = { name: 'race', limit: 25, windowMs: 60 * MINUTE };
      const attempts = Array.from({ length: 120 }, (_, i) => takeFromLimit(i % 2 ? a.db : b.db, limit, '198.51.100.7', 1 + (i % 3), at(1000)));
      const results = await Promise.all(attempts);
      const granted = results.flatMap((r, i) => (r.allowed ? [1 + (i % 3)] : [])).reduce((n, x) => n + x, 0);
      assert.ok(granted <= 25, `granted ${granted}`);
      assert.ok(granted >= 23, `granted ${granted}: the limit was reached, not starved`);
      assert.equal(await usedOfLimit(b.db, limit, '198.51.100.7', at(1000)), granted);
    });

    it('a long subject is stored as its hash; past windows are pruned in bounded batches, live ones kept', async () => {
      const limit: SharedLimit = { name: 'prune', limit: 100, windowMs: 10 * MINUTE };
      // Ten days before the other tests' windows, so only these slices are past when pruning.
      const at = (ms: number) => new Date(T0.getTime() - 10 * 24 * 60 * MINUTE + ms);
      const long = `${'x'.repeat(300)}.example`;
      assert.equal((await takeFromLimit(a.db, limit, long, 1, at(0))).allowed, true);
      const keys = await a.db.selectFrom('limit_counters').select('subject').where('name', '=', 'prune').execute();
      assert.deepEqual(keys.map((k) => k.subject.startsWith('sha256:') && k.subject.length), [71]);
      for (let i = 0; i < 30; i++) await takeFromLimit(b.db, limit, `203.0.113.${i}`, 1, at(0));
      await takeFromLimit(b.db, limit, 'live', 1, at(30 * MINUTE));
      const count = async () => Number((await a.db.selectFrom('limit_counters').select((eb) => eb.fn.countAll().as('n')).where('name', '=', 'prune').executeTakeFirstOrThrow()).n);
      assert.equal(await count(), 32);
      assert.equal(await pruneLimitCounters(a.db, at(30 * MINUTE), 20), 20);
      assert.equal(await pruneLimitCounters(b.db, at(30 * MINUTE), 20), 11);
      assert.equal(await count(), 1);
      assert.equal(await usedOfLimit(a.db, limit, 'live', at(30 * MINUTE)), 1);
    });

    it("a reporter's hourly records are one budget across instances: the report that would pass it is refused and not counted", async () => {
      const now = () => at(0).getTime();
      const budgets = [new ReporterBudget(300, now, a.db), new ReporterBudget(300, now, b.db)];
      await budgets[0]!.refresh('isp.example');
      budgets[0]!.check('isp.example', 200);
      await budgets[0]!.spend('isp.example', 200);
      // The second instance reads what the first spent when the next report begins.
      await budgets[1]!.refresh('isp.example');
      assert.equal(budgets[1]!.used('isp.example'), 200);
      assert.throws(() => budgets[1]!.check('isp.example', 101), /isp\.example sent more than 300 report records in the last hour \(200 stored before this report\)/);
      // Two reports read at once on both instances, each within the budget alone: one is taken, the other refused.
      const raced = await Promise.allSettled([budgets[0]!.spend('isp.example', 80), budgets[1]!.spend('isp.example', 80)]);
      assert.deepEqual(raced.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const refusal = raced.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refusal.reason instanceof ReportError && refusal.reason.kind === 'budget', String(refusal.reason));
      assert.equal(await usedOfLimit(a.db, { name: 'reporter-records', limit: 300, windowMs: 60 * MINUTE }, 'isp.example', at(0)), 280);
    });

    it('sign-in is limited across two API servers on the store: failures on one count on the other, and even the right token waits', async () => {
      const viewer = generateToken();
      const context = { store: a, now: () => T0, loadPlan: () => assert.fail('no plans here'), sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) };
      const config = { listen: { host: '127.0.0.1', port: 0 }, tokens: [], session: { max_age_hours: 1, secure_cookie: false }, upload_max_bytes: 64 * 1024, trust_proxy: false };
      const tokens = () => new TokenSet([{ name: 'vera', role: 'viewer', sha256: viewer.sha256 }]);
      const one = await startApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context });
      const two = await startApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context: { ...context, store: b } });
      try {
        for (let i = 0; i < SIGN_IN_LIMIT.attempts; i++) {
          assert.equal((await formSignIn(i % 2 ? two.url : one.url, generateToken().token)).res.status, 401, `failure ${i + 1}`);
        }
        for (const server of [one, two]) {
          const { res } = await formSignIn(server.url, viewer.token);
          assert.equal(res.status, 429);
          assert.ok(Number(res.headers.get('retry-after')) > 0);
          assert.match(await res.text(), /Too many failed sign-ins/);
        }
      } finally {
        await one.close();
        await two.close();
        await clearLimit(a.db, { name: 'sign-in', limit: SIGN_IN_LIMIT.attempts, windowMs: SIGN_IN_LIMIT.windowMs }, '127.0.0.1');
      }
      // A sign-in clears the client's count on every server.
      const three = await startApiServer({ config, tokens: tokens(), logger: pino({ level: 'silent' }), context: { ...context, store: b } });
      try {
        for (let i = 0; i < SIGN_IN_LIMIT.attempts - 1; i++) assert.equal((await formSignIn(three.url, generateToken().token)).res.status, 401);
        assert.equal((await formSignIn(three.url, viewer.token)).res.status, 303);
        assert.equal(await usedOfLimit(a.db, { name: 'sign-in', limit: SIGN_IN_LIMIT.attempts, windowMs: SIGN_IN_LIMIT.windowMs }, '127.0.0.1', new Date()), 0);
      } finally {
        await three.close();
      }
    });

    it("an SMTP client's messages per hour are counted across two listeners on the store", async () => {
      const sources: SmtpSource[] = [a, b].map((store) => createSmtpSource({ type: 'smtp', port: 0, recipients: ['dmarc@example.com'], messages_per_hour_per_address: 3 }, { store: store.db }));
      const deliver = async () => ({ source: 'x', status: 'rejected' as const, reason: 'not a report', field: null, kind: 'invalid', kept_at: '/dev/null' });
      for (const s of sources) await s.start(deliver as never);
      const send = (port: number) =>
        nodemailer
          .createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true })
          .sendMail({ from: 'reporter@isp.example', to: 'dmarc@example.com', subject: 'x', text: 'not a report' })
          .then(
            () => 'sent',
            (e: { responseCode?: number }) => String(e.responseCode),
          );
      try {
        const outcomes: string[] = [];
        for (let i = 0; i < 5; i++) outcomes.push(await send(sources[i % 2]!.port!));
        assert.deepEqual(outcomes, ['sent', 'sent', 'sent', '451', '451']);
      } finally {
        for (const s of sources) await s.stop();
      }
    });

    if (dialect.name === 'postgres') {
      it("two daemons on one Postgres (pools of two) share a reporter's budget: six report mails at once, four stored, two kept as refused, none left waiting", async () => {
        const server = await dialect.server!();
        const database = await server.createDatabase('budget_daemons');
        const { dir } = tempStore();
        const ports = [await freePort(), await freePort()];
        const daemons = [];
        for (const [i, port] of ports.entries()) {
          const file = join(dir, `config-${i}.yaml`);
          writeFileSync(
            file,
            [
              `store: { postgres: { host: 127.0.0.1, port: ${server.port}, database: ${database}, user: ${server.user}, password_env: PG_TEST_PASSWORD, pool_size: 2 } }`,
              `rejected_dir: ${join(dir, 'rejected')}`,
              "schedule: { ingest: '0 0 1 1 *', tick: '0 0 1 1 *' }",
              'budget: { records_per_reporter_per_hour: 8 }',
              'sources:',
              `  - { type: smtp, host: 127.0.0.1, port: ${port}, recipients: ['dmarc@example.com'], trusted: true }`,
              'providers: { hand: { type: manual } }',
            ].join('\n'),
          );
          daemons.push(await startDaemon(loadDaemonConfig(file, { PG_TEST_PASSWORD: server.password }), { logger: pino({ level: 'silent' }), serve: false }));
        }
        try {
          // Six reports of two records each from one reporter, three to each daemon, all at once: 12 records against a budget of 8.
          const sent = await Promise.all(
            Array.from({ length: 6 }, (_, i) => {
              const xml = aggregateReportXml({ reporter: 'isp.example', domain: 'a.example', day: `2026-06-${10 + i}`, rows: [cleanRow('a.example', '192.0.2.1', 3), cleanRow('a.example', '192.0.2.2', 4)] });
              return nodemailer
                .createTransport({ host: '127.0.0.1', port: ports[i % 2]!, secure: false, ignoreTLS: true })
                .sendMail({ from: 'noreply@isp.example', to: 'dmarc@example.com', subject: `Report ${i}`, text: 'report attached', attachments: [{ filename: `report-${i}.xml`, content: xml, contentType: 'text/xml' }] })
                .then((info) => info.response, (e: Error) => e.message);
            }),
          );
          // Every mail was answered 250 (stored, or kept as refused); no 451 from a store that ran out of connections.
          assert.ok(sent.every((r) => r.startsWith('250')), sent.join('\n'));
          const stored = await server.query<{ n: string }>(database, 'select count(*) as n from reports');
          const refused = await server.query<{ reason: string }>(database, 'select reason from rejected_inputs');
          assert.equal(Number(stored[0]!.n), 4);
          assert.equal(refused.length, 2);
          for (const r of refused) assert.match(r.reason, /isp\.example sent more than 8 report records in the last hour/);
        } finally {
          for (const d of daemons) await d.stop();
        }
      });
    }
  });
}
