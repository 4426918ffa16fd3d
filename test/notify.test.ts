/**
 * Notifications end to end in one process: the real engine writes audit
 * events on a real store, the outbox turns them into one digest per channel
 * per tick, and the sender delivers to receivers on loopback (a webhook
 * receiver checking the HMAC signature, Slack- and Teams-style receivers, a
 * real SMTP server). The clock is passed in throughout. Every suite that
 * touches the store runs on SQLite and on Postgres (which several daemons
 * may share); the config's suite needs no store and runs once.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadDaemonConfig } from '../src/daemon/config.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { approve, classifySource, pause, resume } from '../src/fleet/actions.js';
import { tagDomain } from '../src/fleet/tags.js';
import { evaluateConditions, type DaemonHealth } from '../src/notify/conditions.js';
import { notificationsConfigSchema, resolveNotifications, type NotifySettings } from '../src/notify/config.js';
import { dispatchEvents, queueSummary, queueTestMessage } from '../src/notify/outbox.js';
import { NotificationSender } from '../src/notify/sender.js';
import { buildSummary, SUMMARY_LISTED } from '../src/notify/summary.js';
import { summaryText } from '../src/notify/render.js';
import { ingestInput } from '../src/reports/index.js';
import { pruneNotifications, requeueFailed } from '../src/store/notifications.js';
import type { Store } from '../src/store/open.js';
import { storeDialects, type StoreDialect } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { domainRow } from './helpers/domain-rows.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from './helpers/receivers.js';

const NOW = new Date('2026-03-10T12:17:00Z');
const HOUR = 3_600_000;
const SECRET = 'hmac-test-secret-0123456789';
const quietLogger = { info() {}, warn() {}, error() {} };

function settingsFor(channels: Record<string, unknown>, env: Record<string, string>, extra: Record<string, unknown> = {}): NotifySettings {
  const { settings, problems } = resolveNotifications(notificationsConfigSchema.parse({ channels, ...extra }), env);
  assert.deepEqual(problems, []);
  return settings;
}

async function fixtureStore(dialect: StoreDialect): Promise<{ store: Store; fleet: FleetFixture; dns: MemoryDns }> {
  const store = await dialect.open();
  const dns = new MemoryDns();
  const fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: dns });
  return { store, fleet, dns };
}

/** A tick of the fixture's world (the daemon's runTick on its store and zone) at `at`. */
const tick = (fleet: FleetFixture, at: Date) => fleet.world.tick(at);

const signed = (body: string, timestamp: string) => `v1=${createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex')}`;

describe('the notifications config', () => {
  it('names the file, the channel field and the reason; never a secret', () => {
    const file = join(tempDir('dmarc-rollout-notify-config-'), 'config.yaml');
    writeFileSync(
      file,
      [
        'notifications:',
        '  channels:',
        '    hook: { type: webhook, url_env: HOOK_URL }',
        '    chat: { type: slack, url_env: SLACK_URL, events: [halted, exploded] }',
        '    mail: { type: smtp, host: mail.example, security: none, user: bot, password_env: SMTP_PASS, from: a@example.com, to: [b@example.com] }',
        '    page: { type: pager }',
        '  summary: { channels: [nobody] }',
      ].join('\n'),
    );
    assert.throws(
      () => loadDaemonConfig(file, { SLACK_URL: 'https://hooks.slack.example/secret-path' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const lines = error.message.split('\n');
        assert.ok(lines.includes(`${file}: notifications.channels.hook: set exactly one of secret_env or secret_file (the HMAC key)`), error.message);
        assert.ok(lines.some((l) => l.startsWith(`${file}: notifications.channels.chat.events.1: `)), error.message);
        assert.ok(lines.includes(`${file}: notifications.channels.mail: refusing to send a password without TLS to a host that is not loopback; set security: starttls or tls`), error.message);
        assert.ok(lines.includes(`${file}: notifications.channels.page.type: must be one of webhook, slack, teams, smtp`), error.message);
        assert.ok(lines.includes(`${file}: notifications.summary.channels: no channel named "nobody"`), error.message);
        assert.doesNotMatch(error.message, /secret-path/);
        return true;
      },
    );
    writeFileSync(file, 'notifications:\n  channels:\n    chat: { type: slack, url_file: /nonexistent/slack-url }\n    hook: { type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET }\n');
    assert.throws(
      () => loadDaemonConfig(file, { HOOK_SECRET: 'x' }),
      new RegExp(
        `${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: notifications\\.channels\\.chat\\.url_file: the URL missing: cannot read file /nonexistent/slack-url: ENOENT\\n.*notifications\\.channels\\.hook\\.url_env: the URL missing: environment variable HOOK_URL is not set or empty$`,
      ),
    );
  });
});

for (const dialect of storeDialects()) {
  describe(`digests to every kind of channel, on ${dialect.name}`, () => {
    let store: Store;
    let fleet: FleetFixture;
    let dns: MemoryDns;
    let hook: HttpReceiver;
    let prodHook: HttpReceiver;
    let slack: HttpReceiver;
    let teams: HttpReceiver;
    let smtp: SmtpReceiver;
    let settings: NotifySettings;
    let sender: NotificationSender;

    before(async () => {
      ({ store, fleet, dns } = await fixtureStore(dialect));
      [hook, prodHook, slack, teams, smtp] = await Promise.all([startHttpReceiver(), startHttpReceiver(), startHttpReceiver(), startHttpReceiver(), startSmtpReceiver()]);
      settings = settingsFor(
        {
          hook: { type: 'webhook', url_env: 'HOOK_URL', secret_env: 'HOOK_SECRET' },
          prod: { type: 'webhook', url_env: 'PROD_URL', secret_env: 'HOOK_SECRET', tags: ['prod'] },
          slack: { type: 'slack', url_env: 'SLACK_URL', min_severity: 'warning' },
          teams: { type: 'teams', url_env: 'TEAMS_URL', events: ['approval-waiting', 'halted'] },
          mail: { type: 'smtp', host: '127.0.0.1', port: smtp.port, security: 'none', from: 'dmarc-rollout@ops.example', to: ['ops@ops.example'] },
        },
        {
          HOOK_URL: `${hook.url}/hook`,
          PROD_URL: `${prodHook.url}/prod`,
          HOOK_SECRET: SECRET,
          SLACK_URL: `${slack.url}/services/T000/B000/XXXX`,
          TEAMS_URL: `${teams.url}/workflows/abc`,
        },
        { base_url: 'https://dmarc.ops.example/' },
      );
      sender = new NotificationSender({ store, settings, logger: quietLogger, now: () => NOW });
      // What the fixture's setup did (enrolments, first records, a pause) is one digest of its own; start after it.
      await dispatchEvents(store, { channels: [], baseUrl: null }, NOW);
      await tagDomain(store, fleet.gated, { actor: 'cli:alice', now: NOW }, { set: ['prod', 'EU'] });
    });
    after(async () => {
      await Promise.all([hook.close(), prodHook.close(), slack.close(), teams.close(), smtp.close()]);
      await store.close();
    });

    it('sends one digest per channel for a tick, grouped by domain, each format as its receiver expects', async () => {
      await tick(fleet, NOW);
      const dispatched = await dispatchEvents(store, settings, NOW);
      // Two domains wait for approval of the gated stage; the tag change is an operator action.
      assert.equal(dispatched.messages.length, 5, JSON.stringify(dispatched));
      await sender.runOnce();
      assert.equal(hook.requests.length, 1);
      assert.equal(prodHook.requests.length, 1);
      assert.equal(slack.requests.length, 1);
      assert.equal(teams.requests.length, 1);
      assert.equal(smtp.mails.length, 1);

      // The generic webhook: signed over timestamp and body, versioned payload, idempotency key.
      const req = hook.requests[0]!;
      const timestamp = String(req.headers['x-dmarc-rollout-timestamp']);
      assert.equal(timestamp, String(NOW.getTime() / 1000));
      assert.equal(req.headers['x-dmarc-rollout-signature'], signed(req.body, timestamp));
      assert.notEqual(req.headers['x-dmarc-rollout-signature'], signed(`${req.body} `, timestamp), 'the signature covers the body');
      const payload = JSON.parse(req.body);
      assert.equal(payload.version, 1);
      assert.equal(payload.id, req.headers['idempotency-key']);
      assert.equal(payload.kind, 'digest');
      assert.deepEqual(
        payload.domains.map((d: { domain: string }) => d.domain),
        [fleet.gated, fleet.spoofed],
      );
      const gated = payload.domains[0];
      assert.deepEqual(gated.tags, ['eu', 'prod']);
      assert.deepEqual(
        gated.events.map((e: { type: string }) => e.type),
        ['operator-action', 'approval-waiting'],
      );
      assert.match(gated.events[1].detail, /waits for approval/);
      assert.equal(payload.severity, 'warning');

      // The tag filter: only the tagged domain's events.
      const prod = JSON.parse(prodHook.requests[0]!.body);
      assert.deepEqual(
        prod.domains.map((d: { domain: string }) => d.domain),
        [fleet.gated],
      );

      // Slack: Block Kit with a text fallback; warning and above only, so no operator action.
      const slackBody = JSON.parse(slack.requests[0]!.body);
      assert.equal(slack.requests[0]!.path, '/services/T000/B000/XXXX');
      assert.equal(typeof slackBody.text, 'string');
      assert.equal(slackBody.blocks[0].type, 'header');
      const sections = slackBody.blocks.filter((b: { type: string }) => b.type === 'section').map((b: { text: { text: string } }) => b.text.text);
      assert.equal(sections.length, 2);
      assert.match(sections[0], new RegExp(`<https://dmarc\\.ops\\.example/domains/${fleet.gated.replace(/\./g, '\\.')}\\|${fleet.gated.replace(/\./g, '\\.')}>`));
      assert.doesNotMatch(sections.join('\n'), /operator-action/);
      // Report-sourced text reaches Slack escaped: the hostile reporter name cannot inject links or mentions.
      assert.doesNotMatch(slack.requests[0]!.body, /<script>/);

      // Teams: an Adaptive Card in a message attachment, only the events it asked for.
      const teamsBody = JSON.parse(teams.requests[0]!.body);
      assert.equal(teamsBody.type, 'message');
      assert.equal(teamsBody.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
      const card = teamsBody.attachments[0].content;
      assert.equal(card.type, 'AdaptiveCard');
      const facts = card.body.filter((b: { type: string }) => b.type === 'FactSet').flatMap((b: { facts: Array<{ title: string }> }) => b.facts.map((f) => f.title));
      assert.deepEqual(facts, ['warning · approval-waiting', 'warning · approval-waiting']);

      // Mail: a text part and an HTML part with the same events, the key as Message-ID.
      const mail = smtp.mails[0]!;
      assert.deepEqual(mail.to, ['ops@ops.example']);
      assert.match(mail.parsed.subject ?? '', /dmarc-rollout/);
      assert.match(mail.parsed.text ?? '', new RegExp(`== ${fleet.gated.replace(/\./g, '\\.')} \\[eu, prod\\]`));
      assert.match(mail.parsed.text ?? '', /approval-waiting/);
      assert.match(String(mail.parsed.html), /<table/);
      assert.match(String(mail.parsed.html), new RegExp(`href="https://dmarc.ops.example/domains/${fleet.gated}"`));
      assert.match(mail.parsed.messageId ?? '', /@dmarc-rollout>$/);
    });

    it('does not announce an unchanged condition again on the next ticks', async () => {
      for (const hours of [1, 2, 3]) {
        await tick(fleet, new Date(NOW.getTime() + hours * HOUR));
        const dispatched = await dispatchEvents(store, settings, new Date(NOW.getTime() + hours * HOUR));
        assert.equal(dispatched.events, 0, `tick +${hours}h announced ${JSON.stringify(dispatched)}`);
      }
      await sender.runOnce();
      assert.equal(hook.requests.length, 1);
    });

    it('reminds of a waiting approval when the reminder is due, not before, and not twice', async () => {
      const health = (at: Date): DaemonHealth => ({ startedAt: NOW, lastTickOkAt: at, lastTickError: null, tickIntervalMs: HOUR });
      const at = (h: number) => new Date(NOW.getTime() + h * HOUR);
      assert.deepEqual(await evaluateConditions(store, settings, at(23.9), health(at(23.9))), []);
      const first = await evaluateConditions(store, settings, at(24), health(at(24)));
      assert.deepEqual(first.map((e) => [e.type, e.domain]).sort(), [
        ['approval-waiting', fleet.gated],
        ['approval-waiting', fleet.spoofed],
      ]);
      assert.match(first[0]!.title, /^reminder: .*waiting 24 h/);
      assert.deepEqual(await evaluateConditions(store, settings, at(30), health(at(30))), []);
      assert.equal((await evaluateConditions(store, settings, at(48), health(at(48)))).length, 2);
      assert.equal((await dispatchEvents(store, settings, at(48))).events, 4, 'reminders go out in the next digest');
    });

    it('settles the condition when the domain moves on: approved, then verified at the gated stage', async () => {
      await approve(store, fleet.gated, fleet.loadPlan, { actor: 'cli:alice', now: new Date(NOW.getTime() + 49 * HOUR) });
      await tick(fleet, new Date(NOW.getTime() + 50 * HOUR));
      const dispatched = await dispatchEvents(store, settings, new Date(NOW.getTime() + 50 * HOUR));
      const rows = await store.db.selectFrom('notification_events').select(['type', 'domain']).where('dispatched_at', '=', new Date(NOW.getTime() + 50 * HOUR).toISOString()).execute();
      assert.deepEqual(
        rows.map((r) => `${r.type} ${r.domain}`),
        [`operator-action ${fleet.gated}`, `stage-verified ${fleet.gated}`],
      );
      assert.equal(dispatched.messages.find((m) => m.channel === 'hook')?.events, 2);
      const condition = await store.db.selectFrom('notification_conditions').select('key').where('domain', '=', fleet.gated).execute();
      assert.deepEqual(condition, [], 'the approval condition is settled by the move');
    });

    it('sends the summary as mail with a text part and an HTML table chart', async () => {
      const at = new Date(NOW.getTime() + 51 * HOUR);
      const summary = await buildSummary(store, at, 7 * 24 * HOUR, { loadPlan: fleet.loadPlan });
      assert.equal(summary.totals.domains, 4);
      assert.deepEqual(
        summary.waiting.map((w) => w.domain),
        [fleet.paused, fleet.spoofed],
      );
      assert.deepEqual(
        summary.domains.find((d) => d.domain === fleet.gated)!.moves.map((m) => `${m.from} → ${m.to}`),
        ['none:100 → quarantine:100'],
      );
      await queueSummary(store, settings, ['mail'], summary, at);
      await new NotificationSender({ store, settings, logger: quietLogger, now: () => at }).runOnce();
      const mail = smtp.mails.at(-1)!;
      assert.match(mail.parsed.subject ?? '', /summary .* 4 domains, 2 waiting/);
      assert.match(mail.parsed.text ?? '', /Fleet by stage:\n {2}none:100 +█+ 3\n {2}quarantine:100 +█+ 1/);
      assert.match(mail.parsed.text ?? '', /Waiting for a person:\n.*paused: waiting for the new mail gateway/);
      const htmlPart = String(mail.parsed.html);
      assert.match(htmlPart, /bgcolor="#2e7d32"|bgcolor="#f9a825"/);
      assert.doesNotMatch(htmlPart, /<svg/);
      assert.doesNotMatch(htmlPart, /<script>alert/);
    });

    it('sends a test message to one channel', async () => {
      const before = slack.requests.length;
      const key = await queueTestMessage(store, settings, 'slack', NOW);
      await sender.runOnce();
      assert.equal(slack.requests.length, before + 1);
      assert.match(slack.requests.at(-1)!.body, /test message for channel slack/);
      assert.equal(slack.requests.at(-1)!.headers['idempotency-key'], key);
      await assert.rejects(queueTestMessage(store, settings, 'nope', NOW), /no notification channel named "nope"; the config has hook, prod, slack, teams, mail/);
    });
  });

  describe(`durable delivery, on ${dialect.name}`, () => {
    let store: Store;
    let fleet: FleetFixture;
    let flaky: HttpReceiver;
    let steady: HttpReceiver;

    before(async () => {
      ({ store, fleet } = await fixtureStore(dialect));
      [flaky, steady] = await Promise.all([startHttpReceiver(), startHttpReceiver()]);
      await dispatchEvents(store, { channels: [], baseUrl: null }, NOW);
    });
    after(async () => {
      await Promise.all([flaky.close(), steady.close()]);
      await store.close();
    });

    it('retries a failing receiver with growing backoff, delivers every message in order once it recovers, and never holds up another channel', async () => {
      const settings = settingsFor(
        { flaky: { type: 'webhook', url_env: 'FLAKY', secret_env: 'S' }, steady: { type: 'slack', url_env: 'STEADY' } },
        { FLAKY: flaky.url, STEADY: steady.url, S: SECRET },
        { retry: { max_backoff_minutes: 4 } },
      );
      let clock = NOW.getTime();
      const sender = new NotificationSender({ store, settings, logger: quietLogger, now: () => new Date(clock) });
      flaky.respond = ({ count }) => (count < 5 ? 503 : 200);
      // Three ticks' worth of operator actions, three digests per channel.
      const keys: string[] = [];
      for (const i of [1, 2, 3]) {
        await tagDomain(store, fleet.steady, { actor: 'cli:bob', now: new Date(clock) }, { set: [`round-${i}`] });
        const d = await dispatchEvents(store, settings, new Date(clock));
        keys.push(d.messages.find((m) => m.channel === 'flaky')!.key);
      }
      const waits: number[] = [];
      for (let round = 0; round < 20 && flaky.requests.filter((r) => r.status === 200).length < 3; round++) {
        await sender.runOnce();
        const head = await store.db.selectFrom('notification_messages').selectAll().where('channel', '=', 'flaky').where('status', '=', 'pending').orderBy('id').executeTakeFirst();
        if (head && head.attempts > 0) waits.push(Date.parse(head.next_attempt_at) - clock);
        // The other channel got everything on the first pass.
        assert.equal(steady.requests.length, 3);
        clock += 30_000;
        if (head) clock = Math.max(clock, Date.parse(head.next_attempt_at));
      }
      const delivered = flaky.requests.filter((r) => r.status === 200).map((r) => JSON.parse(r.body).id);
      assert.deepEqual(delivered, keys, 'every message, in order, once');
      assert.deepEqual(
        flaky.requests.filter((r) => r.status === 503).map((r) => JSON.parse(r.body).id),
        [keys[0], keys[0], keys[0], keys[0], keys[0]],
        'a failing head message holds back the ones after it, which are not sent out of order',
      );
      assert.deepEqual([...new Set(waits)], [30_000, 60_000, 120_000, 240_000], 'backoff doubles up to the cap');
      const rows = await store.db.selectFrom('notification_messages').select(['status', 'attempts', 'last_error']).where('channel', '=', 'flaky').orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => [r.status, r.attempts, r.last_error]),
        [
          ['delivered', 6, null],
          ['delivered', 1, null],
          ['delivered', 1, null],
        ],
      );
    });

    it('keeps an undeliverable message with its error after the give-up time, goes on with the next, and can queue it again', async () => {
      const dead = await startHttpReceiver();
      dead.respond = () => 410;
      const settings = settingsFor({ dead: { type: 'webhook', url_env: 'DEAD', secret_env: 'S' } }, { DEAD: dead.url, S: SECRET }, { retry: { give_up_after_hours: 1 } });
      let clock = NOW.getTime() + 10 * HOUR;
      const sender = new NotificationSender({ store, settings, logger: quietLogger, now: () => new Date(clock) });
      await resume(store, fleet.paused, { actor: 'cli:bob', now: new Date(clock) }, 'gateway is live');
      await dispatchEvents(store, settings, new Date(clock));
      await queueTestMessage(store, settings, 'dead', new Date(clock));
      await sender.runOnce();
      clock += 2 * HOUR;
      await sender.runOnce();
      const rows = await store.db.selectFrom('notification_messages').select(['kind', 'status', 'attempts', 'last_error']).where('channel', '=', 'dead').orderBy('id').execute();
      assert.equal(rows[0]!.status, 'failed');
      assert.equal(rows[0]!.attempts, 2);
      assert.match(rows[0]!.last_error!, /^webhook channel dead \(127\.0\.0\.1:\d+\): HTTP 410: receiver says no$/);
      assert.equal(rows[1]!.status, 'failed', 'the next message was tried after the first was given up, and given up too');
      assert.equal(await requeueFailed(store.db, { channel: 'dead', at: new Date(clock).toISOString() }), 2);
      dead.respond = () => 200;
      await sender.runOnce();
      const after = await store.db.selectFrom('notification_messages').select('status').where('channel', '=', 'dead').execute();
      assert.deepEqual(
        after.map((r) => r.status),
        ['delivered', 'delivered'],
      );
      await dead.close();
    });
  });

  describe(`retention, on ${dialect.name}`, () => {
    it('forgets dispatched events and delivered messages past the cut-off, and keeps undeliverable and pending ones', async () => {
      const { store, fleet } = await fixtureStore(dialect);
      const ok = await startHttpReceiver();
      const settings = settingsFor({ ok: { type: 'slack', url_env: 'OK' }, dead: { type: 'slack', url_env: 'DEAD' } }, { OK: ok.url, DEAD: 'http://127.0.0.1:9/' }, { retry: { give_up_after_hours: 1 } });
      const at = (h: number) => new Date(NOW.getTime() + h * HOUR);
      await dispatchEvents(store, settings, at(0));
      await new NotificationSender({ store, settings, logger: quietLogger, now: () => at(2) }).runOnce();
      await tagDomain(store, fleet.gated, { actor: 'cli:erin', now: at(3) }, { set: ['later'] });
      await dispatchEvents(store, settings, at(3));
      const pruned = await pruneNotifications(store.db, at(2.5).toISOString());
      assert.ok(pruned.events > 0);
      assert.equal(pruned.messages, 1);
      const left = await store.db.selectFrom('notification_messages').select(['channel', 'status']).orderBy('id').execute();
      assert.deepEqual(
        left.map((m) => `${m.channel} ${m.status}`),
        ['dead failed', 'ok pending', 'dead pending'],
      );
      assert.equal((await store.db.selectFrom('notification_events').select('id').execute()).length, 1, 'the later event stays');
      await ok.close();
      await store.close();
    });
  });

  describe(`a change stuck in flight, on ${dialect.name}`, () => {
    it('is announced once after change_stuck_hours, and forgotten once the change is verified', async () => {
      const { store, fleet, dns } = await fixtureStore(dialect);
      const settings = settingsFor({}, {}, { change_stuck_hours: 6 });
      const at = (h: number) => new Date(NOW.getTime() + h * HOUR);
      const health = (d: Date): DaemonHealth => ({ startedAt: d, lastTickOkAt: d, lastTickError: null, tickIntervalMs: HOUR });
      await approve(store, fleet.gated, fleet.loadPlan, { actor: 'cli:alice', now: NOW });
      dns.failWrites = new Error('SERVFAIL from the provider');
      await tick(fleet, at(0));
      const retrying = await store.db.selectFrom('notification_events').select(['type', 'detail']).where('type', '=', 'change-retrying').execute();
      assert.equal(retrying.length, 1);
      assert.match(retrying[0]!.detail, /SERVFAIL from the provider/);
      assert.deepEqual(await evaluateConditions(store, settings, at(5.9), health(at(5.9))), []);
      const stuck = await evaluateConditions(store, settings, at(6), health(at(6)));
      assert.deepEqual(
        stuck.map((e) => [e.type, e.domain]),
        [['change-stuck', fleet.gated]],
      );
      assert.match(stuck[0]!.detail, /still (pending|requested) after \d+ attempt\(s\); last error: .*SERVFAIL/);
      assert.deepEqual(await evaluateConditions(store, settings, at(7), health(at(7))), []);
      dns.failWrites = null;
      await tick(fleet, at(8));
      assert.equal((await store.db.selectFrom('intents').selectAll().execute()).length, 0, 'the change went through');
      await evaluateConditions(store, settings, at(9), health(at(9)));
      assert.deepEqual(await store.db.selectFrom('notification_conditions').select('key').where('type', 'like', 'change-%').execute(), []);
      await store.close();
    });
  });

  describe(`large digests and hostile text, on ${dialect.name}`, () => {
    it('splits a digest over 500 events into numbered parts, and breaks Markdown links in Teams cards', async () => {
      const { store, fleet } = await fixtureStore(dialect);
      const [hook, teams] = await Promise.all([startHttpReceiver(), startHttpReceiver()]);
      const settings = settingsFor(
        { hook: { type: 'webhook', url_env: 'H', secret_env: 'S' }, teams: { type: 'teams', url_env: 'T', events: ['operator-action'] } },
        { H: hook.url, T: teams.url, S: SECRET },
      );
      await dispatchEvents(store, { channels: [], baseUrl: null }, NOW);
      for (let i = 0; i < 1100; i++) {
        await classifySource(store, null, `10.${Math.floor(i / 250)}.${i % 250}.1`, 'authorised', { actor: 'cli:dave', now: NOW }, null);
      }
      await pause(store, fleet.steady, { actor: 'cli:dave', now: NOW }, 'see [the runbook](https://evil.example/phish)');
      const dispatched = await dispatchEvents(store, settings, NOW);
      assert.deepEqual(
        dispatched.messages.filter((m) => m.channel === 'hook').map((m) => m.events),
        [500, 500, 101],
      );
      await new NotificationSender({ store, settings, logger: quietLogger, now: () => NOW }).runOnce();
      assert.deepEqual(
        hook.requests.map((r) => JSON.parse(r.body).part),
        [
          { index: 1, of: 3 },
          { index: 2, of: 3 },
          { index: 3, of: 3 },
        ],
      );
      const seen = hook.requests.flatMap((r) => JSON.parse(r.body).domains.flatMap((d: { events: Array<{ id: number }> }) => d.events.map((e) => e.id)));
      assert.equal(new Set(seen).size, 1101, 'every event once across the parts');
      const card = teams.requests.map((r) => r.body).join('\n');
      assert.doesNotMatch(card, /\[the runbook\]\(https/);
      assert.match(card, /the runbook/);
      await Promise.all([hook.close(), teams.close()]);
      await store.close();
    });
  });

  describe(`the daemon's own conditions, on ${dialect.name}`, () => {
    it('announces a failing tick once, a stale tick once, and each one resolved once it is over', async () => {
      const dir = tempDir('dmarc-rollout-notify-');
      const store = await dialect.open();
      const settings = settingsFor({}, {});
      const at = (h: number) => new Date(NOW.getTime() + h * HOUR);
      const health: DaemonHealth = { startedAt: NOW, lastTickOkAt: NOW, lastTickError: 'database is locked', tickIntervalMs: HOUR };
      assert.deepEqual((await evaluateConditions(store, settings, at(1), health)).map((e) => e.type), ['tick-failing']);
      assert.deepEqual(await evaluateConditions(store, settings, at(2), health), []);
      assert.deepEqual((await evaluateConditions(store, settings, at(3.5), health)).map((e) => e.type), ['tick-stale']);
      health.lastTickError = null;
      health.lastTickOkAt = at(4);
      const over = await evaluateConditions(store, settings, at(4), health);
      assert.deepEqual(
        over.map((e) => e.title),
        ['resolved: the tick runs again', 'resolved: ticks finish again'],
      );

      // Ingest rejecting more than usual: five unreadable inputs in a day against none before.
      for (let i = 0; i < 5; i++) {
        const result = await ingestInput(store.db, { bytes: Buffer.from(`not a report ${i}`) }, `test:${i}`, { rejectedDir: join(dir, 'rejected'), now: () => at(5) });
        assert.equal(result.status, 'rejected');
      }
      const rejecting = await evaluateConditions(store, settings, at(5), health);
      assert.deepEqual(rejecting.map((e) => e.type), ['ingest-rejecting']);
      assert.match(rejecting[0]!.detail, /rejected 5 input\(s\) in the last 24 hours against 0\.0 a day/);
      assert.deepEqual(await evaluateConditions(store, settings, at(6), health), []);
      await store.close();
    });
  });

  describe(`the summary of a large fleet, on ${dialect.name}`, () => {
    it('counts every domain but lists at most SUMMARY_LISTED by name, those waiting and those that moved first, and says how many it left out', async () => {
      const store = await dialect.open();
      try {
        const total = SUMMARY_LISTED + 40;
        // Named so that the ones that need reading sort last: a list cut by name alone would drop them.
        const names = Array.from({ length: total }, (_, i) => `d${String(i).padStart(4, '0')}.fleet.example`);
        const paused = names.slice(-3);
        const moved = names.at(-4)!;
        const at = NOW.toISOString();
        const RECORD = 'v=DMARC1; p=none; rua=mailto:dmarc@reports.example';
        for (let i = 0; i < names.length; i += 100) {
          await store.db
            .insertInto('domains')
            .values(
              names.slice(i, i + 100).map((domain) =>
                domainRow(domain, NOW, paused.includes(domain) ? { state: 'paused', state_reason: 'a gateway migration', last_record: RECORD } : { last_record: RECORD }),
              ),
            )
            .execute();
        }
        await store.db.insertInto('stage_history').values({ domain: moved, at, from_stage: 'none:100', to_stage: 'quarantine:1', action: 'advance', actor: 'engine', reason: 'clean', record: null }).execute();

        const summary = await buildSummary(store, new Date(NOW.getTime() + HOUR), 7 * 24 * HOUR);
        assert.equal(summary.totals.domains, total);
        assert.equal(summary.totals.by_state.paused, 3);
        assert.equal(summary.stages.reduce((n, s) => n + s.domains, 0), total, 'the chart counts every domain');
        assert.equal(summary.domains.length, SUMMARY_LISTED);
        assert.deepEqual(summary.omitted, { domains: 40, waiting: 0 });
        const listed = summary.domains.map((d) => d.domain);
        for (const d of [...paused, moved]) assert.ok(listed.includes(d), `${d} is listed`);
        assert.deepEqual(listed, [...listed].sort(), 'listed by name');
        assert.deepEqual(summary.waiting.map((w) => w.domain), paused);
        assert.match(summaryText(summary), /\n {2}…and 40 more; every domain is on the page and in the API\.$/m);
      } finally {
        await store.close();
      }
    });
  });
}
