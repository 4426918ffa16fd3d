/**
 * The doors onto notifications: the real executable (`notify test`,
 * `notify list`, `summary`, `tag`), the HTTP API and the page, and
 * /metrics, on a fleet built by the real engine and receivers on loopback.
 * On SQLite and on Postgres: the config's `store:` names the suite's store
 * either way, so the commands open the store the daemon would.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { generateToken } from '../src/api/tokens.js';
import { loadDaemonConfig } from '../src/daemon/config.js';
import { createDaemonMetrics } from '../src/daemon/metrics.js';
import { runTick } from '../src/engine/tick.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { dispatchEvents } from '../src/notify/outbox.js';
import { NotificationSender } from '../src/notify/sender.js';
import { ingestInput } from '../src/reports/index.js';
import type { Store } from '../src/store/open.js';
import { runMain } from './helpers/cli.js';
import { storeConfig, storeDialects } from './helpers/dialects.js';
import { tempDir } from './helpers/temp-dirs.js';
import { buildFleetFixture, type FleetFixture } from './helpers/fleet-fixture.js';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver } from './helpers/receivers.js';
import { formSignIn, postForm } from './helpers/web.js';
import { loopbackApiAccess } from './helpers/api-server.js';

// The command line runs on the real clock, so the fleet is built as of now.
const NOW = new Date(Date.now() - 60_000);

for (const dialect of storeDialects()) describe(`notification doors, on ${dialect.name}`, () => {
  let store: Store;
  let fleet: FleetFixture;
  let slack: HttpReceiver;
  let broken: HttpReceiver;
  let server: RunningApiServer;
  let config: string;
  let env: Record<string, string>;
  let storeLine: string;
  let storeEnv: Record<string, string>;
  let notify: ReturnType<typeof loadDaemonConfig>['notify'];
  const viewer = generateToken();
  const operator = generateToken();
  const dns = new MemoryDns();

  before(async () => {
    const dir = tempDir('dmarc-rollout-notify-doors-');
    store = await dialect.open();
    ({ line: storeLine, env: storeEnv } = storeConfig(dialect, store, dir));
    fleet = await buildFleetFixture(store, { now: NOW, providerName: 'memory', provider: dns });
    [slack, broken] = await Promise.all([startHttpReceiver(), startHttpReceiver()]);
    broken.respond = () => 404;
    config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      [
        storeLine,
        'notifications:',
        '  channels:',
        '    chat: { type: slack, url_env: SLACK_URL }',
        '    gone: { type: slack, url_env: GONE_URL }',
        '  retry: { give_up_after_hours: 1 }',
        '  summary: { channels: [chat] }',
      ].join('\n'),
    );
    env = { SLACK_URL: `${slack.url}/services/T/B/X`, GONE_URL: `${broken.url}/services/T/B/gone`, ...storeEnv, DMARC_ROLLOUT_PLANS: fleet.plansDir };
    ({ notify } = loadDaemonConfig(config, env));
    // The fixture's own setup (enrolments, first records, a pause) is not what this test looks at.
    await dispatchEvents(store, { channels: [], baseUrl: null }, NOW);
    await runTick({ store, now: NOW, providerFor: () => dns, loadPlan: fleet.loadPlan });
    await dispatchEvents(store, notify, NOW);
    const later = new Date(NOW.getTime() + 2 * 3_600_000);
    const sender = new NotificationSender({ store, settings: notify, logger: { info() {}, warn() {}, error() {} }, now: () => later });
    await sender.runOnce();
    const metrics = createDaemonMetrics({ store, loadPlan: fleet.loadPlan });
    server = await startApiServer({
      ...loopbackApiAccess(viewer, operator),
      context: {
        store,
        now: () => later,
        loadPlan: fleet.loadPlan,
        sourceRules: [],
        metrics,
        notify,
        ingest: (bytes, source) => ingestInput(store.db, { bytes }, source, { rejectedDir: `${dir}/rejected`, now: () => later }),
      },
    });
  });
  after(async () => {
    await server?.close();
    await store?.close();
    await Promise.all([slack?.close(), broken?.close()]);
  });

  const get = async (path: string, token: string) => {
    const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, text: await res.text() };
  };

  it('lists messages and their delivery state over the API, undeliverable ones with their error', async () => {
    const res = await get('/api/v1/notifications', viewer.token);
    assert.equal(res.status, 200, res.text);
    const view = JSON.parse(res.text);
    assert.deepEqual(
      view.channels.map((c: { name: string; delivered: number; failed: number }) => [c.name, c.delivered, c.failed]),
      [
        ['chat', 1, 0],
        ['gone', 0, 1],
      ],
    );
    const failed = view.messages.find((m: { channel: string }) => m.channel === 'gone');
    assert.equal(failed.status, 'failed');
    assert.match(failed.last_error, /HTTP 404/);
    assert.deepEqual(failed.domains, [fleet.gated, fleet.spoofed]);
    assert.doesNotMatch(res.text, /services\/T\/B/, 'no webhook URL (a secret) in the answer');

    const onlyFailed = JSON.parse((await get('/api/v1/notifications?status=failed', viewer.token)).text);
    assert.deepEqual(
      onlyFailed.messages.map((m: { channel: string }) => m.channel),
      ['gone'],
    );
    const summary = JSON.parse((await get('/api/v1/summary?since=7d', viewer.token)).text);
    assert.equal(summary.totals.domains, 4);
    assert.equal((await get('/api/v1/summary?since=soon', viewer.token)).status, 400);
  });

  it('lets only an operator queue undeliverable messages again', async () => {
    const post = (token: string) =>
      fetch(`${server.url}/api/v1/notifications/retry`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ channel: 'gone' }) });
    assert.equal((await post(viewer.token)).status, 403);
    const res = await post(operator.token);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { requeued: 1 });
  });

  it('lets an operator queue undeliverable messages again from the page, with the form’s CSRF token', async () => {
    // The message queued again by the API test above fails once more (the give-up time has long passed).
    await new NotificationSender({ store, settings: notify, logger: { info() {}, warn() {}, error() {} }, now: () => new Date(NOW.getTime() + 3 * 3_600_000) }).runOnce();
    const failed = () => store.db.selectFrom('notification_messages').select('status').where('channel', '=', 'gone').execute();
    assert.deepEqual((await failed()).map((m) => m.status), ['failed']);
    const { session } = await formSignIn(server.url, operator.token, '/notifications');
    const page = await (await fetch(`${server.url}/notifications`, { headers: { cookie: session! } })).text();
    const form = /<form class="inline" method="post" action="\/ui\/notifications\/retry"><input type="hidden" name="_csrf" value="([^"]+)"><input type="hidden" name="channel" value="gone">/.exec(page);
    assert.ok(form, 'a Retry button beside the undeliverable count');
    const forged = await postForm(server.url, '/ui/notifications/retry', session!, { channel: 'gone', _csrf: 'forged' });
    assert.equal(forged.status, 403);
    const res = await postForm(server.url, '/ui/notifications/retry', session!, { channel: 'gone', _csrf: form[1]! });
    assert.equal(res.status, 303);
    assert.deepEqual((await failed()).map((m) => m.status), ['pending']);
    const after = await (await fetch(`${server.url}/notifications`, { headers: { cookie: session! } })).text();
    assert.match(after, /1 undeliverable message\(s\) queued again for gone/);
  });

  it('shows channels, messages and the summary on the page', async () => {
    const { session } = await formSignIn(server.url, viewer.token, '/notifications');
    const res = await fetch(`${server.url}/notifications`, { headers: { cookie: session! } });
    assert.equal(res.status, 200);
    const page = await res.text();
    assert.match(page, /<a href="\/notifications" aria-current="page">Notifications<\/a>/);
    assert.match(page, /<tr data-channel="chat">/);
    assert.match(page, /data-status="(delivered|pending)"/);
    assert.match(page, /id="summary-stages"/);
    assert.match(page, /<progress max="\d+" value="\d+">/);
    assert.doesNotMatch(page, /style="/, 'nothing the CSP would block');
  });

  it('reports the channels in /metrics', async () => {
    const res = await get('/metrics', viewer.token);
    assert.match(res.text, /dmarc_rollout_notifications\{channel="chat",status="delivered"\} 1/);
    assert.match(res.text, /dmarc_rollout_notifications_events_waiting 0/);
  });

  it('sends a test message from the command line, and says why one is not delivered', async () => {
    const ok = await runMain(['notify', 'test', 'chat', '--config', config], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^delivered a test message to chat \(message [0-9a-f-]{36}\)/);
    assert.match(slack.requests.at(-1)!.body, /test message for channel chat/);
    const refused = await runMain(['notify', 'test', 'gone', '--config', config], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^not delivered to gone: slack channel gone \(127\.0\.0\.1:\d+\): HTTP 404: receiver says no/);
    const unknown = await runMain(['notify', 'test', 'pager', '--config', config], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no notification channel named "pager"; the config has chat, gone/);
    const list = await runMain(['notify', 'list', '--config', config, '--status', 'failed'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /gone +failed +1x +dmarc-rollout: test message for channel gone\n {4}last error: .*HTTP 404/);
  });

  it('has doctor ask each mail server and flag a webhook sent in clear, sending nothing', async () => {
    const smtp = await startSmtpReceiver();
    const file = join(tempDir('dmarc-rollout-doctor-'), 'doctor.yaml');
    writeFileSync(
      file,
      [
        storeLine,
        'notifications:',
        '  timeout_seconds: 5',
        '  channels:',
        `    mail: { type: smtp, host: 127.0.0.1, port: ${smtp.port}, security: none, from: bot@ops.example, to: [ops@ops.example] }`,
        '    nomail: { type: smtp, host: 127.0.0.1, port: 9, security: none, from: bot@ops.example, to: [ops@ops.example] }',
        '    clear: { type: webhook, url_env: CLEAR_URL, secret_env: CLEAR_SECRET }',
      ].join('\n'),
    );
    const res = await runMain(['doctor', '--config', file, '--json'], { ...storeEnv, CLEAR_URL: 'http://hooks.ops.example/dmarc', CLEAR_SECRET: 's' });
    const { checks } = JSON.parse(res.stdout) as { checks: Array<{ subject: string; status: string; detail: string }> };
    const of = (subject: string) => checks.find((c) => c.subject === subject);
    assert.equal(of('notifications mail (smtp)')?.status, 'ok', JSON.stringify(checks));
    assert.equal(of('notifications nomail (smtp)')?.status, 'fail');
    assert.match(of('notifications nomail (smtp)')!.detail, /127\.0\.0\.1:9: connect ECONNREFUSED 127\.0\.0\.1:9/);
    assert.equal(of('notifications clear (webhook)')?.status, 'warn');
    assert.match(of('notifications clear (webhook)')!.detail, /in clear text/);
    assert.equal(smtp.mails.length, 0, 'doctor sends nothing');
    await smtp.close();
  });

  it('prints the summary and sets tags from the command line', async () => {
    const tagged = await runMain(['tag', fleet.steady, 'Prod', 'team-a'], env);
    assert.equal(tagged.code, 0, tagged.stderr);
    assert.equal(tagged.stdout.trim(), `${fleet.steady}: prod, team-a`);
    const bad = await runMain(['tag', fleet.steady, 'no spaces'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /tag "no spaces": a tag is 1 to 63 letters/);
    const summary = await runMain(['summary', '--since', '7d'], env);
    assert.equal(summary.code, 0, summary.stderr);
    assert.match(summary.stdout, /^4 domains: /);
    assert.match(summary.stdout, /Waiting for a person:\n/);
    assert.match(summary.stdout, new RegExp(`${fleet.gated.replace('.', '\\.')}: quarantine:100 waits for approval`));
    const json = JSON.parse((await runMain(['summary', '--since', '2w', '--json'], env)).stdout);
    assert.deepEqual(json.domains.find((d: { domain: string }) => d.domain === fleet.steady).tags, ['prod', 'team-a']);
    const wrong = await runMain(['summary', '--since', 'a while'], env);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /--since: "a while" is not a period; use e\.g\. 36h, 7d or 2w/);
  });
});
