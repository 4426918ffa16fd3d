/**
 * The deployment examples under deploy/: every YAML file parses cleanly, the
 * Kubernetes manifests hang together (names referenced exist, one replica
 * with Recreate on a PVC, non-root, read-only root), compose declares its
 * volume, the Dockerfile is multi-stage and non-root with the state on a
 * volume, and the systemd unit is hardened and passes `systemd-analyze
 * verify` where that tool exists. Each example config's `api` block loads
 * with the tokens file its deployment mounts beside it, and the real HTTP
 * server built from it answers /healthz (what the probes ask), signs a
 * person in the way that deployment is reached (through a TLS proxy, or
 * plain http on loopback) and serves /metrics to a viewer token. Docker
 * cannot run here, so nothing is built.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import pino from 'pino';
import { parseAllDocuments, stringify } from 'yaml';
import { buildApiServer, sessionSecret } from '../src/api/server.js';
import { generateToken, TokenSet } from '../src/api/tokens.js';
import { ConfigError, loadDaemonConfig } from '../src/daemon/config.js';
import type { DaemonConfig } from '../src/daemon/config.js';
import { createDaemonMetrics } from '../src/daemon/metrics.js';
import { loadPlan } from '../src/plans/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempDir } from './helpers/temp-dirs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(ROOT, 'deploy');
const STATE_DIR = '/var/lib/dmarc-rollout';
/** Where every variant has config.yaml: `daemon --config /etc/dmarc-rollout/config.yaml`. */
const CONFIG_DIR = '/etc/dmarc-rollout';

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): Obj {
  assert.ok(isObj(value), `${what} is not a map`);
  return value;
}

function arr(value: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(value), `${what} is not a list`);
  return value;
}

function str(value: unknown, what: string): string {
  assert.equal(typeof value, 'string', `${what} is not a string`);
  return value as string;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** Every document of a YAML text; fails on any error or warning (duplicate keys included). */
function yamlDocuments(text: string, where: string): unknown[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true });
  assert.ok(Array.isArray(docs), `${where}: not a YAML stream`);
  assert.ok(docs.length > 0, `${where}: no YAML document`);
  return docs.map((doc, i) => {
    assert.deepEqual(
      doc.errors.map((e) => e.message),
      [],
      `${where}: document ${i + 1} has YAML errors`,
    );
    assert.deepEqual(
      doc.warnings.map((w) => w.message),
      [],
      `${where}: document ${i + 1} has YAML warnings`,
    );
    return doc.toJS();
  });
}

function yamlFile(path: string): unknown {
  const docs = yamlDocuments(readFileSync(path, 'utf8'), relative(ROOT, path));
  assert.equal(docs.length, 1, `${relative(ROOT, path)}: expected one document`);
  return docs[0];
}

const K8S = join(DEPLOY, 'kubernetes');

function manifest(file: string): Obj {
  return obj(yamlFile(join(K8S, file)), `deploy/kubernetes/${file}`);
}

/** Every document of a manifest file (secret.example.yaml holds two). */
function manifests(file: string): Obj[] {
  return yamlDocuments(readFileSync(join(K8S, file), 'utf8'), `deploy/kubernetes/${file}`).map((doc, i) => obj(doc, `deploy/kubernetes/${file} document ${i + 1}`));
}

function metaName(doc: Obj, what: string): string {
  return str(obj(doc.metadata, `${what}.metadata`).name, `${what}.metadata.name`);
}

/** The environment variables a daemon config names for its secrets (`*_env` in providers, sources and the API session). */
function secretVariables(config: DaemonConfig): string[] {
  const blocks = [...Object.values(config.providers), ...config.sources, ...(config.api ? [config.api.session] : [])];
  return blocks.flatMap((block) =>
    isObj(block)
      ? Object.entries(block)
          .filter(([key]) => key.endsWith('_env'))
          .map(([, value]) => str(value, 'a *_env setting'))
      : [],
  );
}

const DB_ENV = { DMARC_ROLLOUT_DB: `${STATE_DIR}/dmarc-rollout.sqlite` };

/**
 * A config example through the daemon's own loader (zod, strict keys,
 * provider schemas, the tokens file read); throws ConfigError naming each
 * problem. `beside` are the files the deployment puts next to the config
 * (tokens.yaml), written into the same temporary folder; the loader resolves
 * relative paths from the config's folder, as it does in the deployment.
 */
function loadExample(text: string, name: string, beside: Record<string, string> = {}): DaemonConfig {
  const dir = tempDir('dmarc-rollout-config-');
  for (const [file, content] of Object.entries(beside)) writeFileSync(join(dir, file), content);
  const file = join(dir, name);
  writeFileSync(file, text);
  return loadDaemonConfig(file, DB_ENV);
}

/** The config.yaml that the ConfigMap holds. */
function configMapConfig(): string {
  return str(obj(manifest('configmap.yaml').data, 'ConfigMap data')['config.yaml'], 'ConfigMap config.yaml');
}

/** The Secret of secret.example.yaml named `name`. */
function exampleSecret(name: string): Obj {
  const secret = manifests('secret.example.yaml').find((doc) => metaName(doc, 'secret.example.yaml') === name);
  assert.ok(secret, `secret.example.yaml has no Secret named ${name}`);
  assert.equal(secret.kind, 'Secret');
  return secret;
}

/** The tokens.yaml the Kubernetes example mounts beside config.yaml (from its Secret). */
function k8sTokensFile(): string {
  return str(obj(exampleSecret('dmarc-rollout-api-tokens').stringData, 'api tokens stringData')['tokens.yaml'], 'tokens.yaml in the Secret');
}

interface ConfigExample {
  what: string;
  text(): string;
  /** The tokens file that deployment starts with, mounted beside config.yaml. */
  tokens(): string;
  /**
   * How a person's browser reaches the page in this deployment: the peer
   * address the daemon sees, and whether the request came through TLS
   * (a proxy in front that adds X-Forwarded-Proto: https).
   */
  reachedFrom: { remoteAddress: string; https: boolean };
}

const CONFIG_EXAMPLES: ConfigExample[] = [
  {
    what: 'deploy/config/config.yaml',
    text: () => readFileSync(join(DEPLOY, 'config/config.yaml'), 'utf8'),
    // deploy/systemd/README.md starts the file as an empty list.
    tokens: () => '[]\n',
    // nginx or Caddy on the same host, terminating TLS.
    reachedFrom: { remoteAddress: '127.0.0.1', https: true },
  },
  {
    what: 'deploy/compose/config.yaml',
    text: () => readFileSync(join(DEPLOY, 'compose/config.yaml'), 'utf8'),
    tokens: () => readFileSync(join(DEPLOY, 'compose/tokens.yaml.example'), 'utf8'),
    // http://127.0.0.1:8080 on the host, through the published port: the container sees the compose network's gateway.
    reachedFrom: { remoteAddress: '172.18.0.1', https: false },
  },
  {
    what: 'deploy/kubernetes/configmap.yaml config.yaml',
    text: configMapConfig,
    tokens: k8sTokensFile,
    // An Ingress controller pod terminating TLS.
    reachedFrom: { remoteAddress: '10.244.3.17', https: true },
  },
];

/** An example loaded with the tokens file it ships with (or `tokens`, when given). */
function loadConfigExample(example: ConfigExample, tokens: string = example.tokens()): DaemonConfig {
  return loadExample(example.text(), 'config.yaml', { 'tokens.yaml': tokens });
}

/** The config's api block, which every example has. */
function apiOf(config: DaemonConfig, what: string) {
  assert.ok(config.api, `${what}: no api block`);
  return config.api;
}

/** Where the daemon in the deployment reads the tokens file: api.tokens_file resolved against the deployment's config folder. */
function deployedTokensPath(config: DaemonConfig, example: ConfigExample): string {
  const tokensFile = apiOf(config, example.what).tokens_file;
  assert.ok(tokensFile, `${example.what}: no api.tokens_file`);
  return posix.join(CONFIG_DIR, relative(dirname(config.file), tokensFile));
}

function smtpSource(config: DaemonConfig, what: string) {
  const smtp = config.sources.filter((s) => s.type === 'smtp');
  assert.equal(smtp.length, 1, `${what}: expected one smtp source`);
  return smtp[0]!;
}

describe('deploy/: YAML', () => {
  test('every YAML file under deploy/ parses with no errors or warnings', () => {
    const files = walk(DEPLOY).filter((path) => /\.ya?ml$/.test(path));
    const names = files.map((path) => relative(DEPLOY, path)).sort();
    // The files the rest of this suite relies on are all there.
    for (const expected of [
      'compose/compose.yaml',
      'compose/config.yaml',
      'config/config.yaml',
      'kubernetes/configmap.yaml',
      'kubernetes/deployment.yaml',
      'kubernetes/kustomization.yaml',
      'kubernetes/pvc.yaml',
      'kubernetes/secret.example.yaml',
      'kubernetes/service.yaml',
    ]) {
      assert.ok(names.includes(expected), `deploy/${expected} is missing (have: ${names.join(', ')})`);
    }
    for (const path of files) {
      for (const doc of yamlDocuments(readFileSync(path, 'utf8'), relative(ROOT, path))) {
        assert.ok(isObj(doc), `${relative(ROOT, path)}: expected a map at the top`);
      }
    }
  });

  test('the YAML a parser would reject is reported (the check above can fail)', () => {
    assert.throws(() => yamlDocuments('a: 1\na: 2\n', 'duplicate'), /YAML errors/);
    assert.throws(() => yamlDocuments('a: [1, 2\n', 'unclosed'), /YAML errors/);
    assert.throws(() => yamlDocuments('%FOO bar\n---\na: 1\n', 'unknown directive'), /YAML (errors|warnings)/);
  });

  test('every daemon config example passes the daemon\'s own loader (strict keys, sources, provider schemas, the tokens file it ships)', () => {
    for (const example of CONFIG_EXAMPLES) {
      const { what } = example;
      yamlDocuments(example.text(), what);
      let config: DaemonConfig | undefined;
      assert.doesNotThrow(() => {
        config = loadConfigExample(example);
      }, what);
      assert.ok(config);
      assert.ok(Object.keys(config.providers).length > 0, `${what}: no providers`);
      assert.equal(config.storePath, DB_ENV.DMARC_ROLLOUT_DB, `${what}: the store must be DMARC_ROLLOUT_DB, shared with the CLI`);
      // Everything a source writes is in the state directory: the rest is read-only.
      for (const source of config.sources) {
        if (source.type === 'folder') assert.ok(source.path.startsWith(`${STATE_DIR}/`), `${what}: folder ${source.path} is outside ${STATE_DIR}`);
      }
      assert.equal(config.rejected_dir, undefined, `${what}: rejected inputs go beside the store`);
    }
    // The loader does refuse what it should: the check above can fail.
    assert.throws(() => loadExample(`${CONFIG_EXAMPLES[0]!.text()}\nhttp:\n  listen: 0.0.0.0:8080\n`, 'extra.yaml', { 'tokens.yaml': '[]\n' }), ConfigError);
    assert.throws(() => loadExample('providers:\n  broken:\n    type: powerdns\n', 'broken.yaml'), /providers\.broken/);
  });

  test('the config examples differ only in where the SMTP listener and the API bind, and in how the page is reached', () => {
    const [host, compose, k8s] = CONFIG_EXAMPLES.map((example) => [example.what, loadConfigExample(example)] as const);
    assert.equal(smtpSource(host![1], host![0]).host, '127.0.0.1', 'on a host the listener stays on loopback');
    assert.equal(apiOf(host![1], host![0]).listen.host, '127.0.0.1', 'on a host the API stays on loopback, behind a TLS proxy');
    // In a container, a loopback listener cannot be reached through a published port or a Service.
    for (const [what, config] of [compose!, k8s!]) {
      assert.equal(smtpSource(config, what).host, '0.0.0.0', what);
      assert.equal(smtpSource(config, what).port, smtpSource(host![1], host![0]).port, what);
      assert.equal(apiOf(config, what).listen.host, '0.0.0.0', what);
      assert.equal(apiOf(config, what).listen.port, apiOf(host![1], host![0]).listen.port, what);
      assert.equal(apiOf(config, what).session.secret_env, apiOf(host![1], host![0]).session.secret_env, what);
      assert.deepEqual(config.sources.map((s) => s.type), host![1].sources.map((s) => s.type), what);
      assert.deepEqual(config.schedule, host![1].schedule, what);
      assert.deepEqual(config.report_addresses, host![1].report_addresses, what);
      for (const address of config.report_addresses) {
        assert.ok(smtpSource(config, what).recipients.includes(address), `${what}: ${address} does not reach the SMTP source`);
      }
    }
  });
});

/** A `{ name, role, sha256 }` entry as `dmarc-rollout token create` prints it, and the token itself. */
function tokenEntry(name: string, role: 'viewer' | 'operator') {
  const { token, sha256 } = generateToken();
  return { token, entry: { name, role, sha256 } };
}

describe('deploy/: the API in each example config', () => {
  test('listens on port 8080; token hashes only in tokens.yaml beside the config, which must exist; the session secret from the environment', () => {
    for (const example of CONFIG_EXAMPLES) {
      const { what } = example;
      const config = loadConfigExample(example);
      const api = apiOf(config, what);
      assert.equal(api.listen.port, 8080, what);
      assert.deepEqual(api.tokens, [], `${what}: tokens belong in the tokens file, kept apart from the config`);
      assert.equal(deployedTokensPath(config, example), `${CONFIG_DIR}/tokens.yaml`, what);
      // The starting tokens file holds no token: every holder gets one of their own from token create.
      assert.deepEqual(config.apiTokens, [], `${what}: the shipped tokens file must be empty`);
      assert.ok(api.session.secret_env, `${what}: the session secret comes from the environment`);
      assert.equal(api.session.secret_file, undefined, what);
      // Secure cookies are only set on requests known to be https, which behind a proxy needs trust_proxy.
      assert.equal(api.session.secure_cookie, example.reachedFrom.https, `${what}: secure_cookie must match how the page is reached`);
      if (api.session.secure_cookie) assert.notEqual(api.trust_proxy, false, `${what}: secure_cookie without trust_proxy never sets a cookie behind a proxy`);
      assert.notEqual(api.trust_proxy, true, `${what}: trust the proxy's addresses, not everyone's X-Forwarded-*`);

      // The entries token create prints, put in the tokens file, are what the daemon accepts.
      const alice = tokenEntry('alice', 'operator').entry;
      const prometheus = tokenEntry('prometheus', 'viewer').entry;
      assert.deepEqual(loadConfigExample(example, stringify([alice, prometheus])).apiTokens, [alice, prometheus], what);
      // Without the tokens file the daemon does not start: the deployment must provide it.
      assert.throws(() => loadExample(example.text(), 'config.yaml'), (error: Error) => error instanceof ConfigError && /api\.tokens_file/.test(error.message), what);
      assert.throws(() => loadConfigExample(example, '- name: alice\n  role: admin\n  sha256: nope\n'), /api\.tokens_file/, `${what}: a bad tokens file refuses the start`);
    }
  });

  test('the server each config builds: /healthz without a token, sign-in the way that deployment is reached, /metrics for a viewer token', async (t) => {
    const store = await openSqliteStore(':memory:');
    t.after(() => store.close());
    const metrics = createDaemonMetrics({ store });
    const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
    const readmeMetrics = [...new Set(readme.match(/\bdmarc_rollout_[a-z_]+/g) ?? [])];
    assert.ok(readmeMetrics.includes('dmarc_rollout_domains_by_state'), 'deploy/README.md: the halted-domains alert');

    for (const example of CONFIG_EXAMPLES) {
      const { what, reachedFrom } = example;
      const operator = tokenEntry('alice', 'operator');
      const viewer = tokenEntry('prometheus', 'viewer');
      const config = loadConfigExample(example, stringify([operator.entry, viewer.entry]));
      const api = apiOf(config, what);
      const app = await buildApiServer({
        config: api,
        tokens: new TokenSet(config.apiTokens),
        logger: pino({ level: 'silent' }),
        env: { [api.session.secret_env!]: generateToken().token },
        context: {
          store,
          now: () => new Date(),
          loadPlan: (name) => loadPlan(name),
          sourceRules: [],
          metrics,
          ingest: () => Promise.reject(new Error('no uploads here')),
        },
      });
      try {
        const from = (https: boolean, remoteAddress = reachedFrom.remoteAddress) => ({
          remoteAddress,
          headers: https ? { 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.7' } : {},
        });
        const browser = from(reachedFrom.https);

        // What the compose healthcheck and the Kubernetes probes ask.
        const health = await app.inject({ method: 'GET', url: '/healthz', remoteAddress: '127.0.0.1' });
        assert.equal(health.statusCode, 200, what);
        assert.deepEqual(health.json(), { ok: true }, what);

        // Sign in through the page's form, as a browser does through this deployment's front door.
        const login = await app.inject({ method: 'GET', url: '/login', ...browser });
        assert.equal(login.statusCode, 200, what);
        // The form's CSRF cookie; the session cookie comes only with sign-in (anonymous visitors leave no session).
        const formCookie = login.cookies.find((c) => c.name === 'dmarc_rollout_sign_in');
        assert.ok(formCookie, `${what}: no session cookie on the sign-in page: sign-in would fail`);
        assert.equal(Boolean(formCookie.secure), api.session.secure_cookie, what);
        const csrf = /name="_csrf" value="([^"]+)"/.exec(login.body)?.[1];
        assert.ok(csrf, `${what}: no CSRF field on the sign-in page`);
        const signIn = await app.inject({
          method: 'POST',
          url: '/ui/login',
          ...browser,
          headers: { ...browser.headers, cookie: `${formCookie.name}=${formCookie.value}`, 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ token: operator.token, _csrf: csrf, next: '/' }).toString(),
        });
        assert.equal(signIn.statusCode, 303, `${what}: sign-in refused: ${signIn.body.slice(0, 200)}`);
        const session = signIn.cookies.find((c) => c.name === 'dmarc_rollout_session');
        assert.ok(session, `${what}: signed in but no session cookie`);
        const read = await app.inject({ method: 'GET', url: '/api/v1/domains', ...browser, headers: { ...browser.headers, cookie: `${session.name}=${session.value}` } });
        assert.equal(read.statusCode, 200, `${what}: the signed-in session cannot read`);

        if (api.session.secure_cookie) {
          // Why the config names trust_proxy: plain http, or a peer that is not the proxy claiming https, gets no Secure cookie.
          const plain = await app.inject({ method: 'GET', url: '/login', ...from(false) });
          assert.equal(plain.cookies.length, 0, `${what}: a Secure cookie over plain http`);
          const stranger = await app.inject({ method: 'GET', url: '/login', ...from(true, '203.0.113.9') });
          assert.equal(stranger.cookies.length, 0, `${what}: a peer outside trust_proxy was believed`);
        }

        // The Prometheus scrape in deploy/README.md: a viewer token on /metrics, and every metric it names exists.
        assert.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401, what);
        const scrape = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${viewer.token}` } });
        assert.equal(scrape.statusCode, 200, what);
        assert.match(scrape.body, /^dmarc_rollout_domains_by_state\{state="halted"\} 0$/m, what);
        for (const name of readmeMetrics) {
          // Declared, even where no series exists yet (a labelled counter before its first count).
          const family = name.replace(/_(bucket|sum|count)$/, '');
          assert.match(scrape.body, new RegExp(`^# TYPE ${family} `, 'm'), `deploy/README.md names ${name}, which /metrics does not serve`);
        }
      } finally {
        await app.close();
      }
    }
  });
});

describe('deploy/kubernetes', () => {
  const kustomization = () => obj(yamlFile(join(K8S, 'kustomization.yaml')), 'kustomization.yaml');

  test('kustomization lists every manifest, and each has apiVersion, kind and metadata.name', () => {
    const resources = arr(kustomization().resources, 'kustomization resources').map((r) => str(r, 'resource'));
    const onDisk = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...resources].sort(), onDisk.sort(), 'kustomization.yaml resources and the manifests on disk differ');
    for (const file of resources) {
      for (const doc of manifests(file)) {
        str(doc.apiVersion, `${file} apiVersion`);
        str(doc.kind, `${file} kind`);
        assert.ok(metaName(doc, file).length > 0, `${file}: empty metadata.name`);
        assert.equal(obj(doc.metadata, file).namespace, undefined, `${file}: manifests are namespace-less`);
      }
    }
  });

  test('the deployment: one replica, Recreate, non-root, read-only root, no capabilities, and every name it references exists', () => {
    const deployment = manifest('deployment.yaml');
    assert.equal(deployment.kind, 'Deployment');
    assert.equal(deployment.apiVersion, 'apps/v1');
    const spec = obj(deployment.spec, 'spec');
    assert.equal(spec.replicas, 1, 'two pods must never share one SQLite file');
    assert.equal(obj(spec.strategy, 'strategy').type, 'Recreate', 'a rolling update would run two pods on the file');

    const template = obj(spec.template, 'template');
    const podLabels = obj(obj(template.metadata, 'template.metadata').labels, 'template labels');
    assert.deepEqual(obj(spec.selector, 'selector').matchLabels, podLabels);
    const pod = obj(template.spec, 'pod spec');
    const podSecurity = obj(pod.securityContext, 'pod securityContext');
    assert.equal(podSecurity.runAsNonRoot, true);
    assert.equal(typeof podSecurity.runAsUser, 'number');
    assert.notEqual(podSecurity.runAsUser, 0);
    assert.equal(podSecurity.fsGroup, podSecurity.runAsGroup, 'the volume must be writable by the pod user');

    const containers = arr(pod.containers, 'containers').map((c, i) => obj(c, `container ${i}`));
    assert.equal(containers.length, 1);
    const container = containers[0]!;
    const security = obj(container.securityContext, 'container securityContext');
    assert.equal(security.readOnlyRootFilesystem, true);
    assert.equal(security.allowPrivilegeEscalation, false);
    assert.deepEqual(obj(security.capabilities, 'capabilities').drop, ['ALL']);
    assert.notEqual(security.runAsUser, 0);

    const volumes = new Map(arr(pod.volumes, 'volumes').map((v, i) => {
      const volume = obj(v, `volume ${i}`);
      return [str(volume.name, 'volume name'), volume] as const;
    }));
    const mounts = arr(container.volumeMounts, 'volumeMounts').map((m, i) => obj(m, `volumeMount ${i}`));
    const mountAt = (path: string) => {
      const mount = mounts.find((m) => m.mountPath === path);
      assert.ok(mount, `nothing is mounted at ${path}`);
      const volume = volumes.get(str(mount.name, 'mount name'));
      assert.ok(volume, `volumeMount ${String(mount.name)} names no volume`);
      return { mount, volume };
    };

    // The store on the PVC that pvc.yaml declares.
    const state = mountAt(STATE_DIR);
    const pvc = manifest('pvc.yaml');
    assert.equal(pvc.kind, 'PersistentVolumeClaim');
    assert.equal(obj(state.volume.persistentVolumeClaim, 'state volume PVC').claimName, metaName(pvc, 'pvc.yaml'));
    assert.deepEqual(obj(pvc.spec, 'pvc spec').accessModes, ['ReadWriteOnce']);

    // A read-only root still needs a writable /tmp: SQLite's temporary files go there.
    assert.ok(isObj(mountAt('/tmp').volume.emptyDir), '/tmp is not an emptyDir');

    // Settings from the ConfigMap that configmap.yaml declares, holding the files the container is pointed at,
    // and beside them the API's tokens file from its Secret: one projected volume.
    const configMount = mountAt(CONFIG_DIR);
    assert.equal(configMount.mount.readOnly, true);
    const configMap = manifest('configmap.yaml');
    assert.equal(configMap.kind, 'ConfigMap');
    const projected = arr(obj(configMount.volume.projected, 'config volume projected').sources, 'projected sources').map((p, i) => obj(p, `projected source ${i}`));
    const fromConfigMap = projected.filter((p) => p.configMap !== undefined).map((p) => obj(p.configMap, 'projected configMap'));
    assert.deepEqual(fromConfigMap.map((c) => c.name), [metaName(configMap, 'configmap.yaml')]);
    assert.equal(fromConfigMap[0]!.items, undefined, 'every key of the ConfigMap is a file');
    const configKeys = Object.keys(obj(configMap.data, 'ConfigMap data'));
    const args = arr(container.args, 'args').map((a) => str(a, 'arg'));
    assert.equal(args[0], 'daemon');
    const configPath = str(args[args.indexOf('--config') + 1], '--config value');
    assert.ok(configPath.startsWith('/etc/dmarc-rollout/'), `--config ${configPath} is not in the ConfigMap mount`);
    assert.ok(configKeys.includes(configPath.slice('/etc/dmarc-rollout/'.length)), `${configPath} is not a key of the ConfigMap`);

    const env = new Map(arr(container.env, 'env').map((e, i) => {
      const entry = obj(e, `env ${i}`);
      return [str(entry.name, 'env name'), entry.value] as const;
    }));
    const db = str(env.get('DMARC_ROLLOUT_DB'), 'DMARC_ROLLOUT_DB');
    assert.equal(dirname(db), STATE_DIR, 'the SQLite file must be on the PVC');
    const k8sExample = CONFIG_EXAMPLES.find((e) => e.text === configMapConfig)!;
    const config = loadConfigExample(k8sExample);

    // Secrets from the Secret that secret.example.yaml declares, holding every variable the ConfigMap's config names.
    const secretRefs = arr(container.envFrom, 'envFrom').map((e, i) => str(obj(obj(e, `envFrom ${i}`).secretRef, 'secretRef').name, 'secretRef name'));
    assert.equal(secretRefs.length, 1);
    const secret = exampleSecret(secretRefs[0]!);
    const secretData = obj(secret.stringData, 'Secret stringData');
    const secretKeys = Object.keys(secretData);
    const variables = secretVariables(config);
    assert.ok(variables.includes(apiOf(config, 'configmap').session.secret_env!), 'the session secret is one of the variables');
    for (const variable of variables) {
      assert.ok(secretKeys.includes(variable), `the ConfigMap's config names ${variable}, which the Secret does not hold`);
    }
    // Every key becomes an environment variable, so it must be a name one can be.
    for (const key of secretKeys) assert.match(key, /^[A-Z_][A-Z0-9_]*$/, `${key} in the envFrom Secret`);
    // The shipped placeholder is too short to sign sessions with: the daemon refuses it until it is replaced.
    assert.throws(() => sessionSecret(apiOf(config, 'configmap'), { DMARC_ROLLOUT_SESSION_SECRET: str(secretData.DMARC_ROLLOUT_SESSION_SECRET, 'session secret') }), /at least 32/);

    // The tokens file the config names is the key of the tokens Secret projected at that path, and what it holds loads.
    const tokensPath = deployedTokensPath(config, k8sExample);
    const fromSecret = projected.filter((p) => p.secret !== undefined).map((p) => obj(p.secret, 'projected secret'));
    assert.equal(fromSecret.length, 1, 'one Secret projected beside config.yaml');
    const tokensSecret = exampleSecret(str(fromSecret[0]!.name, 'projected secret name'));
    const items = arr(fromSecret[0]!.items, 'projected secret items').map((it, i) => obj(it, `item ${i}`));
    const tokensItem = items.find((it) => posix.join(CONFIG_DIR, str(it.path, 'item path')) === tokensPath);
    assert.ok(tokensItem, `nothing is projected at ${tokensPath}, which api.tokens_file names`);
    assert.ok(str(tokensItem.key, 'item key') in obj(tokensSecret.stringData, 'tokens Secret stringData'), `the tokens Secret has no key ${String(tokensItem.key)}`);
    assert.ok(!secretRefs.includes(metaName(tokensSecret, 'tokens Secret')), 'the tokens Secret is a file, not environment variables');
    assert.ok(!configKeys.includes(basename(tokensPath)), 'the ConfigMap and the Secret would both write tokens.yaml');

    // The image's user is the pod's user.
    assert.equal(String(podSecurity.runAsUser), dockerfileUser().split(':')[0]);
    // The container ports are the SMTP source's and the API's; the probes ask the API's /healthz.
    const ports = arr(container.ports, 'ports').map((p, i) => obj(p, `port ${i}`));
    assert.deepEqual(ports.map((p) => [p.name, p.containerPort]), [
      ['smtp', smtpSource(config, 'configmap').port],
      ['http', apiOf(config, 'configmap').listen.port],
    ]);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const httpGet = obj(obj(container[probe], probe).httpGet, `${probe}.httpGet`);
      assert.equal(httpGet.path, '/healthz', probe);
      assert.equal(httpGet.port, 'http', probe);
      assert.equal(httpGet.scheme ?? 'HTTP', 'HTTP', probe);
    }
    assert.equal(pod.terminationGracePeriodSeconds, 60);
  });

  test('the service is a ClusterIP that selects the pod and targets its smtp and http ports', () => {
    const service = manifest('service.yaml');
    assert.equal(service.kind, 'Service');
    const spec = obj(service.spec, 'service spec');
    assert.equal(spec.type, 'ClusterIP');
    const deployment = manifest('deployment.yaml');
    const template = obj(obj(deployment.spec, 'spec').template, 'template');
    const podLabels = obj(obj(template.metadata, 'metadata').labels, 'labels');
    for (const [key, value] of Object.entries(obj(spec.selector, 'selector'))) {
      assert.equal(podLabels[key], value, `service selector ${key} does not match the pod`);
    }
    const container = obj(arr(obj(template.spec, 'pod').containers, 'containers')[0], 'container');
    const containerPorts = arr(container.ports, 'ports').map((p) => obj(p, 'port'));
    const servicePorts = arr(spec.ports, 'service ports').map((p) => obj(p, 'service port'));
    for (const port of servicePorts) {
      const target = containerPorts.find((p) => p.name === port.targetPort);
      assert.ok(target, `service targetPort ${String(port.targetPort)} is not a container port`);
      assert.equal(port.port, target.containerPort, `service port ${String(port.name)} is the container's port number`);
    }
    assert.deepEqual(servicePorts.map((p) => p.targetPort).sort(), ['http', 'smtp']);
  });

  test('kubectl kustomize builds the set (where kubectl is installed)', (t) => {
    const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('kubectl is not installed; the manifests were checked by the YAML parse above');
      return;
    }
    const run = spawnSync('kubectl', ['kustomize', K8S], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `kubectl kustomize failed: ${run.stderr}`);
    const kinds = yamlDocuments(run.stdout, 'kustomize output').map((d) => obj(d, 'kustomize output').kind).sort();
    assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Secret', 'Service']);
  });
});

const K8S_PG = join(DEPLOY, 'kubernetes-postgres');

/** Every document of a file of the Postgres (several replicas) variant. */
function pgManifests(file: string): Obj[] {
  return yamlDocuments(readFileSync(join(K8S_PG, file), 'utf8'), `deploy/kubernetes-postgres/${file}`).map((doc, i) => obj(doc, `deploy/kubernetes-postgres/${file} document ${i + 1}`));
}

function pgManifest(file: string, kind: string, name?: string): Obj {
  const found = pgManifests(file).filter((d) => d.kind === kind && (name === undefined || metaName(d, file) === name));
  assert.equal(found.length, 1, `deploy/kubernetes-postgres/${file}: expected one ${kind}${name ? ` named ${name}` : ''}`);
  return found[0]!;
}

describe('deploy/kubernetes-postgres: several replicas on one Postgres', () => {
  const deployment = () => pgManifest('deployment.yaml', 'Deployment');
  const podSpec = () => obj(obj(obj(deployment().spec, 'spec').template, 'template').spec, 'pod spec');
  const container = () => obj(arr(podSpec().containers, 'containers')[0], 'container');
  const secretData = (name: string) => obj(pgManifest('secret.example.yaml', 'Secret', name).stringData, `${name} stringData`);
  const databaseUrlRef = () => {
    const entry = arr(container().env, 'env').map((e, i) => obj(e, `env ${i}`)).find((e) => e.name === 'DMARC_ROLLOUT_DATABASE_URL');
    assert.ok(entry, 'the pods get DMARC_ROLLOUT_DATABASE_URL');
    assert.equal(entry.value, undefined, 'the database URL (with its password) comes from a Secret, not the manifest');
    return obj(obj(entry.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef');
  };
  /** The ConfigMap's config through the daemon's own loader, with what the pod's environment would hold. */
  const loaded = () => {
    const text = str(obj(pgManifest('configmap.yaml', 'ConfigMap').data, 'data')['config.yaml'], 'config.yaml');
    const ref = databaseUrlRef();
    const url = str(secretData(str(ref.name, 'secret name'))[str(ref.key, 'secret key')], 'the database URL');
    const dir = tempDir('dmarc-rollout-config-');
    writeFileSync(join(dir, 'tokens.yaml'), str(secretData('dmarc-rollout-api-tokens')['tokens.yaml'], 'tokens.yaml'));
    writeFileSync(join(dir, 'config.yaml'), text);
    return loadDaemonConfig(join(dir, 'config.yaml'), { DMARC_ROLLOUT_DATABASE_URL: url });
  };

  test('kustomization lists every manifest; each has apiVersion, kind and a name, and no namespace', () => {
    const kustomization = obj(yamlFile(join(K8S_PG, 'kustomization.yaml')), 'kustomization.yaml');
    const resources = arr(kustomization.resources, 'resources').map((r) => str(r, 'resource'));
    const onDisk = readdirSync(K8S_PG).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...resources].sort(), onDisk.sort());
    for (const file of resources) {
      for (const doc of pgManifests(file)) {
        str(doc.apiVersion, `${file} apiVersion`);
        str(doc.kind, `${file} kind`);
        assert.ok(metaName(doc, file).length > 0);
        assert.equal(obj(doc.metadata, file).namespace, undefined, `${file}: manifests are namespace-less`);
      }
    }
  });

  test('the config loads as a Postgres store from the Secret\'s URL, verified TLS, leases renewed well within their time, rejected inputs on the shared volume, no folder source', () => {
    const config = loaded();
    assert.equal(config.storeLocation.kind, 'postgres');
    assert.equal(config.storePath, null);
    if (config.storeLocation.kind === 'postgres') assert.deepEqual(config.storeLocation.connection.ssl, { rejectUnauthorized: true }, 'a managed database is reached over verified TLS');
    assert.ok(config.instances.lease_seconds >= 3 * config.instances.heartbeat_seconds);
    // A folder is only on one node's disk: replicas read reports from a mailbox (leased) and the SMTP listener (on every replica).
    assert.deepEqual(config.sources.map((s) => s.type).sort(), ['imap', 'smtp']);
    assert.equal(smtpSource(config, 'kubernetes-postgres').host, '0.0.0.0');
    const rejected = str(config.rejected_dir, 'rejected_dir');
    const mount = arr(container().volumeMounts, 'mounts').map((m) => obj(m, 'mount')).find((m) => rejected === m.mountPath || rejected.startsWith(`${String(m.mountPath)}/`));
    assert.ok(mount, `nothing is mounted at ${rejected}`);
    const volume = arr(podSpec().volumes, 'volumes').map((v) => obj(v, 'volume')).find((v) => v.name === mount.name);
    const claim = str(obj(volume?.persistentVolumeClaim, 'rejected volume PVC').claimName, 'claimName');
    const pvc = pgManifest('pvc.yaml', 'PersistentVolumeClaim', claim);
    assert.deepEqual(obj(pvc.spec, 'pvc spec').accessModes, ['ReadWriteMany'], 'every replica may reject an input and keep it there');
    // Every secret the config names is in the envFrom Secret, and the shipped session secret is refused until replaced.
    const envFrom = arr(container().envFrom, 'envFrom').map((e) => str(obj(obj(e, 'envFrom').secretRef, 'secretRef').name, 'name'));
    assert.deepEqual(envFrom, ['dmarc-rollout-secrets']);
    for (const variable of secretVariables(config)) assert.ok(variable in secretData('dmarc-rollout-secrets'), `the config names ${variable}, which the Secret does not hold`);
    assert.throws(() => sessionSecret(apiOf(config, 'kubernetes-postgres'), { DMARC_ROLLOUT_SESSION_SECRET: str(secretData('dmarc-rollout-secrets').DMARC_ROLLOUT_SESSION_SECRET, 'secret') }), /at least 32/);
    // The loader does refuse a lease a heartbeat could not keep alive: the check above can fail.
    assert.throws(() => loadExample('instances: { heartbeat_seconds: 30, lease_seconds: 60 }\n', 'short.yaml'), /instances\.lease_seconds: lease_seconds must be at least three heartbeats/);
  });

  test('the deployment: three replicas rolled one at a time, no lock file or SQLite volume, the database URL and its CA from a Secret, probes on /healthz, non-root and read-only', () => {
    const spec = obj(deployment().spec, 'spec');
    assert.equal(spec.replicas, 3);
    const strategy = obj(spec.strategy, 'strategy');
    assert.equal(strategy.type, 'RollingUpdate', 'replicas coordinate through the database: overlapping during a rollout is fine');
    assert.equal(obj(strategy.rollingUpdate, 'rollingUpdate').maxUnavailable, 0);
    const c = container();
    const env = arr(c.env, 'env').map((e) => obj(e, 'env'));
    assert.ok(!env.some((e) => e.name === 'DMARC_ROLLOUT_DB'), 'no SQLite file with several replicas');
    const ref = databaseUrlRef();
    assert.ok(str(secretData(str(ref.name, 'name'))[str(ref.key, 'key')], 'url').startsWith('postgres://'));
    // The CA for verify-full is the Secret's ca.pem, projected where NODE_EXTRA_CA_CERTS points.
    const caPath = str(env.find((e) => e.name === 'NODE_EXTRA_CA_CERTS')?.value, 'NODE_EXTRA_CA_CERTS');
    const configMount = arr(c.volumeMounts, 'mounts').map((m) => obj(m, 'mount')).find((m) => m.mountPath === CONFIG_DIR)!;
    const projected = arr(obj(arr(podSpec().volumes, 'volumes').map((v) => obj(v, 'volume')).find((v) => v.name === configMount.name)!.projected, 'projected').sources, 'sources').map((p) => obj(p, 'source'));
    const caItem = projected
      .filter((p) => p.secret !== undefined && obj(p.secret, 'secret').name === ref.name)
      .flatMap((p) => arr(obj(p.secret, 'secret').items, 'items').map((i) => obj(i, 'item')))
      .find((i) => posix.join(CONFIG_DIR, str(i.path, 'path')) === caPath);
    assert.ok(caItem, `nothing from the database Secret is projected at ${caPath}`);
    assert.ok(str(caItem.key, 'key') in secretData(str(ref.name, 'name')));
    assert.ok(!projected.some((p) => p.secret !== undefined && arr(obj(p.secret, 'secret').items, 'items').some((i) => obj(i, 'item').key === ref.key)), 'the URL is not written as a file');
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const httpGet = obj(obj(c[probe], probe).httpGet, `${probe}.httpGet`);
      assert.equal(httpGet.path, '/healthz', probe);
      assert.equal(httpGet.port, 'http', probe);
    }
    const security = obj(c.securityContext, 'securityContext');
    assert.equal(security.readOnlyRootFilesystem, true);
    assert.equal(obj(podSpec().securityContext, 'pod securityContext').runAsNonRoot, true);
    assert.equal(String(obj(podSpec().securityContext, 'pod securityContext').runAsUser), dockerfileUser().split(':')[0]);
    assert.ok(Number(podSpec().terminationGracePeriodSeconds) >= 60, 'time to finish the change in flight and deregister');
  });

  test('the disruption budget and the service select the replicas; a drain leaves two of three running', () => {
    const labels = obj(obj(obj(obj(deployment().spec, 'spec').template, 'template').metadata, 'metadata').labels, 'labels');
    const pdb = pgManifest('pdb.yaml', 'PodDisruptionBudget');
    assert.equal(pdb.apiVersion, 'policy/v1');
    const pdbSpec = obj(pdb.spec, 'pdb spec');
    assert.deepEqual(obj(pdbSpec.selector, 'selector').matchLabels, labels);
    const replicas = Number(obj(deployment().spec, 'spec').replicas);
    const allowed = pdbSpec.maxUnavailable !== undefined ? Number(pdbSpec.maxUnavailable) : replicas - Number(pdbSpec.minAvailable);
    assert.ok(allowed >= 1 && replicas - allowed >= 2, `a drain may take ${allowed} of ${replicas}`);
    const service = pgManifest('service.yaml', 'Service');
    const spec = obj(service.spec, 'service spec');
    assert.equal(spec.type, 'ClusterIP');
    assert.deepEqual(spec.selector, labels);
    const ports = arr(container().ports, 'ports').map((p) => obj(p, 'port'));
    for (const port of arr(spec.ports, 'ports').map((p) => obj(p, 'service port'))) {
      assert.equal(ports.find((p) => p.name === port.targetPort)?.containerPort, port.port, `service port ${String(port.name)}`);
    }
  });

  test('kubectl kustomize builds the set (where kubectl is installed)', (t) => {
    const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('kubectl is not installed; the manifests were checked by the YAML parse above');
      return;
    }
    const run = spawnSync('kubectl', ['kustomize', K8S_PG], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `kubectl kustomize failed: ${run.stderr}`);
    const kinds = yamlDocuments(run.stdout, 'kustomize output').map((d) => obj(d, 'kustomize output').kind).sort();
    assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Secret', 'Secret', 'Secret', 'Service']);
  });
});

describe('deploy/compose', () => {
  const COMPOSE = join(DEPLOY, 'compose');

  const composeExample = () => CONFIG_EXAMPLES.find((e) => e.what === 'deploy/compose/config.yaml')!;

  test('the service keeps its state on a declared volume, mounts settings read-only and publishes on loopback only', () => {
    const compose = obj(yamlFile(join(COMPOSE, 'compose.yaml')), 'compose.yaml');
    const declared = obj(compose.volumes, 'top-level volumes');
    const service = obj(obj(compose.services, 'services')['dmarc-rollout'], 'services.dmarc-rollout');

    const volumes = arr(service.volumes, 'service volumes').map((v, i) => obj(v, `volume ${i}`));
    const state = volumes.find((v) => v.target === STATE_DIR);
    assert.ok(state, `nothing is mounted at ${STATE_DIR}`);
    assert.equal(state.type, 'volume');
    assert.ok(str(state.source, 'state source') in declared, `volume ${String(state.source)} is not declared under volumes:`);

    const binds = volumes.filter((v) => v.type === 'bind');
    assert.ok(binds.some((b) => b.target === `${CONFIG_DIR}/config.yaml`), 'config.yaml is not mounted');
    const config = loadConfigExample(composeExample());
    assert.ok(binds.some((b) => b.target === deployedTokensPath(config, composeExample())), 'the tokens file api.tokens_file names is not mounted');
    for (const bind of binds) {
      assert.equal(bind.read_only, true, `${String(bind.target)} is writable`);
      // A file you make from its example (tokens.yaml from tokens.yaml.example), or one shipped as it is.
      const source = resolve(COMPOSE, str(bind.source, 'bind source'));
      assert.ok(existsSync(source) || existsSync(`${source}.example`), `bind source ${String(bind.source)} does not exist, nor an .example of it`);
    }
    // The one made from its example is the one the compose config was loaded with above.
    assert.equal(readFileSync(join(COMPOSE, 'tokens.yaml.example'), 'utf8'), composeExample().tokens());

    // Every port is published on the host's loopback only: the SMTP listener and the API (plain HTTP) alike.
    const smtpPort = smtpSource(config, 'compose config').port;
    const apiPort = apiOf(config, 'compose config').listen.port;
    const ports = arr(service.ports, 'ports').map((p) => str(p, 'port'));
    for (const port of ports) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${port} is published beyond the host's loopback`);
    assert.deepEqual(ports, [`127.0.0.1:${smtpPort}:${smtpPort}`, `127.0.0.1:${apiPort}:${apiPort}`]);
    const healthcheck = arr(obj(service.healthcheck, 'healthcheck').test, 'healthcheck test').map((a) => str(a, 'healthcheck arg'));
    assert.deepEqual(healthcheck.slice(0, 3), ['CMD', 'node', '-e'], 'the image has no curl or wget: node asks');
    assert.ok(healthcheck[3]!.includes(`'http://127.0.0.1:${apiPort}/healthz'`), `the healthcheck does not ask /healthz on the API port ${apiPort}`);

    assert.match(str(service.restart, 'restart'), /^(always|unless-stopped|on-failure)/);
    const envFiles = arr(service.env_file, 'env_file').map((e, i) => str(obj(e, `env_file ${i}`).path, 'env_file path'));
    for (const file of envFiles) {
      assert.ok(existsSync(resolve(COMPOSE, `${file}.example`)), `${file} has no .example beside it`);
    }
    const environment = obj(service.environment, 'environment');
    assert.equal(dirname(str(environment.DMARC_ROLLOUT_DB, 'DMARC_ROLLOUT_DB')), STATE_DIR);

    // The build points at the real Dockerfile, with the repository root as context.
    const build = obj(service.build, 'build');
    const context = resolve(COMPOSE, str(build.context, 'build context'));
    assert.equal(context, ROOT);
    assert.ok(existsSync(join(context, str(build.dockerfile, 'dockerfile'))));

    // A read-only container still needs a writable /tmp (SQLite's temporary files).
    assert.equal(service.read_only, true);
    assert.ok(arr(service.tmpfs, 'tmpfs').includes('/tmp'));
    assert.deepEqual(service.cap_drop, ['ALL']);
  });

  test('the healthcheck command exits 0 while /healthz answers and 1 when nothing listens', async (t) => {
    const compose = obj(yamlFile(join(COMPOSE, 'compose.yaml')), 'compose.yaml');
    const service = obj(obj(compose.services, 'services')['dmarc-rollout'], 'services.dmarc-rollout');
    const [, node, flag, script] = arr(obj(service.healthcheck, 'healthcheck').test, 'healthcheck test').map((a) => str(a, 'healthcheck arg'));
    assert.equal(node, 'node');
    const url = `http://127.0.0.1:${apiOf(loadConfigExample(composeExample()), 'compose config').listen.port}/healthz`;
    assert.ok(script!.includes(url));
    const app = Fastify();
    app.get('/healthz', async () => ({ ok: true }));
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => app.close());
    const run = (target: string) =>
      new Promise<number>((done) => {
        execFile(process.execPath, [flag!, script!.replace(url, target)], { timeout: 30_000 }, (error) => done(error ? (typeof error.code === 'number' ? error.code : -1) : 0));
      });
    assert.equal(await run(`${address}/healthz`), 0, 'healthy while /healthz answers 200');
    assert.equal(await run(`${address}/nothing-here`), 1, 'unhealthy on a 404');
    await app.close();
    assert.equal(await run(`${address}/healthz`), 1, 'unhealthy when nothing listens');
  });

  test('the env example holds every variable the compose config names, the session secret a placeholder the daemon refuses', () => {
    const example = readFileSync(join(COMPOSE, 'dmarc-rollout.env.example'), 'utf8');
    const lines = example.split('\n').filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l));
    const values = new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
    const config = loadConfigExample(composeExample());
    const wanted = secretVariables(config);
    const sessionVariable = apiOf(config, 'compose config').session.secret_env!;
    assert.ok(wanted.includes(sessionVariable));
    for (const variable of wanted) assert.ok(values.has(variable), `${variable} is missing from dmarc-rollout.env.example`);
    assert.throws(() => sessionSecret(apiOf(config, 'compose config'), { [sessionVariable]: values.get(sessionVariable) }), /at least 32/);
  });

  test('the files you fill in with secrets and token hashes are git-ignored here', () => {
    const ignored = readFileSync(join(COMPOSE, '.gitignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const file of ['dmarc-rollout.env', 'tokens.yaml']) assert.ok(ignored.includes(file), `${file} is not in deploy/compose/.gitignore`);
  });
});

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Dockerfile instructions, with comments dropped and `\` continuations joined. */
function dockerfile(): Instruction[] {
  const lines = readFileSync(join(DEPLOY, 'docker/Dockerfile'), 'utf8').split('\n');
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return;
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = pending + line;
    pending = '';
    const match = /^([A-Za-z]+)\s+(.*)$/.exec(full);
    assert.ok(match, `Dockerfile line ${start}: cannot read "${full}"`);
    out.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
  });
  assert.equal(pending, '', 'Dockerfile ends inside a continued line');
  return out;
}

/** The USER of the final stage. */
function dockerfileUser(): string {
  const instructions = dockerfile();
  const lastFrom = instructions.map((i) => i.keyword).lastIndexOf('FROM');
  const users = instructions.slice(lastFrom).filter((i) => i.keyword === 'USER');
  assert.equal(users.length, 1, 'the final stage must set USER exactly once');
  return users[0]!.args;
}

describe('deploy/docker/Dockerfile', () => {
  test('multi-stage, non-root, the state directory a volume, the daemon as entrypoint', () => {
    const instructions = dockerfile();
    const known = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);
    for (const i of instructions) assert.ok(known.has(i.keyword), `line ${i.line}: unknown instruction ${i.keyword}`);

    const froms = instructions.filter((i) => i.keyword === 'FROM');
    assert.ok(froms.length >= 2, 'not multi-stage');
    const stages = froms.map((f) => {
      const match = /^(\S+)\s+AS\s+(\S+)$/i.exec(f.args);
      assert.ok(match, `line ${f.line}: FROM without "AS <stage>"`);
      return match[2]!;
    });
    assert.ok(froms.every((f) => /node:24-bookworm-slim/.test(f.args) || f.args.startsWith('${NODE_IMAGE}')));
    assert.ok(instructions.some((i) => i.keyword === 'ARG' && i.args === 'NODE_IMAGE=node:24-bookworm-slim'), 'Node 24 LTS, a runtime the suite runs on');
    // The final stage copies from an earlier one, by name.
    const lastFrom = instructions.lastIndexOf(froms[froms.length - 1]!);
    const final = instructions.slice(lastFrom);
    const build = instructions.slice(0, lastFrom);
    assert.ok(build.some((i) => i.keyword === 'RUN' && /python3/.test(i.args) && /\bmake\b/.test(i.args) && /g\+\+/.test(i.args)), 'the build stage installs python3 make g++');
    // npm ci builds dist/ (prepare needs the compiler, a dev package); the prune then drops the dev packages.
    assert.ok(build.some((i) => i.keyword === 'RUN' && /npm ci\b/.test(i.args) && /npm prune --omit=dev/.test(i.args)));
    const fromStage = final.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from='));
    assert.ok(fromStage.length > 0 && fromStage.every((i) => stages.slice(0, -1).includes(i.args.slice('--from='.length).split(/\s/)[0]!)));
    assert.ok(!final.some((i) => i.keyword === 'RUN' && /apt-get install/.test(i.args)), 'no compiler in the runtime stage');

    const user = dockerfileUser();
    const [uid] = user.split(':');
    assert.match(uid ?? '', /^\d+$/, 'USER must be numeric for Kubernetes runAsNonRoot');
    assert.notEqual(Number(uid), 0, 'USER is root');
    // USER comes after everything that needs root.
    const userAt = final.findIndex((i) => i.keyword === 'USER');
    assert.ok(!final.slice(userAt).some((i) => i.keyword === 'RUN'), 'RUN after USER');

    const volumes = final.filter((i) => i.keyword === 'VOLUME').flatMap((i) =>
      i.args.startsWith('[') ? (JSON.parse(i.args) as string[]) : i.args.split(/\s+/));
    assert.ok(volumes.includes(STATE_DIR), `no VOLUME ${STATE_DIR}`);
    const env = final.filter((i) => i.keyword === 'ENV').map((i) => i.args).join(' ');
    assert.match(env, new RegExp(`DMARC_ROLLOUT_DB=${STATE_DIR}/[^\\s/]+\\.sqlite`));

    // Every COPY from the context names something that exists in the repository.
    for (const copy of instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))) {
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, source)), `line ${copy.line}: COPY ${source} does not exist in the repository`);
      }
    }
    for (const needed of ['bin', 'data/plans', 'package.json']) {
      assert.ok(final.some((i) => i.keyword === 'COPY' && i.args.split(/\s+/).includes(needed)), `the image lacks ${needed}`);
    }
    // The compiled program, from the build stage; no TypeScript sources in the image.
    assert.ok(fromStage.some((i) => /\/app\/dist\s+\.\/dist$/.test(i.args)), 'the image lacks the compiled dist/');
    assert.ok(!final.some((i) => i.keyword === 'COPY' && /(^|\s)(src|providers)(\s|$)/.test(i.args)), 'the runtime stage copies TypeScript sources');
    const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.ok(!('tsx' in packageJson.dependencies), 'tsx is for development only');

    const one = (keyword: string) => {
      const found = final.filter((i) => i.keyword === keyword);
      assert.equal(found.length, 1, `expected one ${keyword}`);
      return found[0]!.args;
    };
    assert.deepEqual(JSON.parse(one('ENTRYPOINT')), ['node', '/app/bin/dmarc-rollout.js']);
    assert.deepEqual(JSON.parse(one('CMD')), ['daemon', '--config', '/etc/dmarc-rollout/config.yaml']);
    assert.equal(one('STOPSIGNAL'), 'SIGTERM');

    // EXPOSE documents the ports the container configs listen on: the SMTP source and the API.
    const exposed = final.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    for (const example of CONFIG_EXAMPLES.filter((e) => e.what !== 'deploy/config/config.yaml')) {
      const config = loadConfigExample(example);
      for (const port of [smtpSource(config, example.what).port, apiOf(config, example.what).listen.port]) {
        assert.ok(exposed.includes(String(port)) || exposed.includes(`${port}/tcp`), `${example.what} listens on ${port}, which the Dockerfile does not EXPOSE`);
      }
    }
    assert.ok(existsSync(join(ROOT, 'bin/dmarc-rollout.js')));
  });
});

type Ini = Map<string, Map<string, string[]>>;

/** A systemd unit file: sections of keys, each with every value it was given. */
function parseUnit(text: string): Ini {
  const sections: Ini = new Map();
  let current: Map<string, string[]> | undefined;
  let pending = '';
  for (const [i, raw] of text.split('\n').entries()) {
    const line = (pending + raw.trim()).trim();
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    pending = '';
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      assert.ok(!sections.has(section[1]!), `line ${i + 1}: section [${section[1]}] repeated`);
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current, `line ${i + 1}: a key outside any section`);
    assert.ok(eq > 0, `line ${i + 1}: not key=value: ${line}`);
    const key = line.slice(0, eq).trim();
    assert.match(key, /^[A-Za-z][A-Za-z0-9]*$/, `line ${i + 1}: bad key ${key}`);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const UNIT = join(DEPLOY, 'systemd/dmarc-rollout.service');

describe('deploy/systemd', () => {
  test('the unit is hardened: own user, ProtectSystem=strict, state directory, no W^X lock for V8', () => {
    const unit = parseUnit(readFileSync(UNIT, 'utf8'));
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
    const service = unit.get('Service')!;
    const last = (key: string) => service.get(key)?.at(-1);

    const user = last('User');
    const dynamic = last('DynamicUser');
    assert.ok(dynamic === 'yes' || (user !== undefined && user !== 'root' && user !== '0'), 'the service must not run as root');
    if (user !== undefined) {
      // The user the unit names is the one the sysusers file creates.
      const sysusers = readFileSync(join(DEPLOY, 'systemd/dmarc-rollout.sysusers.conf'), 'utf8')
        .split('\n').filter((l) => /^u\s/.test(l)).map((l) => l.split(/\s+/)[1]);
      assert.deepEqual(sysusers, [user]);
    }

    const expected: Record<string, string> = {
      Type: 'simple',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      NoNewPrivileges: 'yes',
      ProtectKernelTunables: 'yes',
      ProtectKernelModules: 'yes',
      ProtectKernelLogs: 'yes',
      StateDirectory: 'dmarc-rollout',
      ConfigurationDirectory: 'dmarc-rollout',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      Restart: 'on-failure',
      KillSignal: 'SIGTERM',
      TimeoutStopSec: '60',
      EnvironmentFile: '-/etc/dmarc-rollout/env',
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(last(key), value, `${key}=`);
    assert.equal(service.get('SystemCallFilter')?.[0], '@system-service');
    assert.ok(!['yes', 'true', '1', 'on'].includes(last('MemoryDenyWriteExecute') ?? 'no'), "MemoryDenyWriteExecute breaks V8's JIT");
    assert.ok((service.get('LoadCredential') ?? []).some((v) => /^[\w.-]+:\/etc\/dmarc-rollout\//.test(v)));

    const exec = last('ExecStart') ?? '';
    assert.equal(exec, '/usr/bin/node /opt/dmarc-rollout/bin/dmarc-rollout.js daemon --config ${CONFIGURATION_DIRECTORY}/config.yaml');
    // That executable runs the compiled build (dist/, made by npm ci through prepare), never the TypeScript sources.
    const bin = readFileSync(join(ROOT, 'bin/dmarc-rollout.js'), 'utf8');
    assert.match(bin, /\.\.\/dist\/cli\/run\.js/);
    assert.doesNotMatch(bin, /['"]tsx(\/[^'"]*)?['"]/);
    const environment = (service.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string]);
    const db = environment.find(([k]) => k === 'DMARC_ROLLOUT_DB')?.[1];
    assert.equal(dirname(db ?? ''), `/var/lib/${last('StateDirectory')}`, 'the SQLite file must be in the state directory');
    assert.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target');

    // Nothing in the hardening stops the host config's listeners: IP sockets are allowed, no address or
    // port filter is set, and with no capabilities both ports are unprivileged.
    assert.ok(['IPAddressDeny', 'IPAddressAllow', 'SocketBindDeny', 'SocketBindAllow', 'PrivateNetwork'].every((key) => !service.has(key)), 'a network filter would stop the listeners');
    assert.deepEqual(service.get('CapabilityBoundingSet'), [''], 'no capabilities, so no port below 1024');
    const host = loadConfigExample(CONFIG_EXAMPLES[0]!);
    for (const port of [smtpSource(host, 'host config').port, apiOf(host, 'host config').listen.port]) assert.ok(port >= 1024, `port ${port} needs CAP_NET_BIND_SERVICE`);
  });

  test('the install steps make the tokens file and the session secret the host config needs', () => {
    const readme = readFileSync(join(DEPLOY, 'systemd/README.md'), 'utf8');
    const example = CONFIG_EXAMPLES[0]!;
    const config = loadConfigExample(example);
    assert.ok(readme.includes(deployedTokensPath(config, example)), `deploy/systemd/README.md does not make ${deployedTokensPath(config, example)}`);
    assert.ok(readme.includes(`${apiOf(config, example.what).session.secret_env!}=`), 'deploy/systemd/README.md does not set the session secret');
    assert.match(readme, /token create/);
  });

  test('systemd-analyze verify finds nothing to complain about (where systemd-analyze is installed)', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('systemd-analyze is not installed; the unit was checked by the INI parse above');
      return;
    }
    const dir = tempDir('dmarc-rollout-unit-');
    const original = readFileSync(UNIT, 'utf8');
    // verify also checks that ExecStart's program exists and is executable. The
    // unit names /usr/bin/node; the copy names the node running this test, so
    // the check is about the unit, not about where node is installed here.
    assert.match(original, /^ExecStart=\/usr\/bin\/node /m);
    const text = original.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `);

    /** The unit's diagnostics: every line naming the copy (syntax and value errors), or a failing exit. */
    const verify = (name: string, body: string) => {
      const path = join(dir, name);
      writeFileSync(path, body);
      const run = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.error, undefined);
      const output = `${run.stdout}\n${run.stderr}`;
      const complaints = output.split('\n').filter((l) => l.includes(name));
      return { status: run.status, complaints, output };
    };

    const clean = verify('dmarc-rollout.service', text);
    assert.deepEqual(clean.complaints, [], clean.output);
    assert.equal(clean.status, 0, clean.output);

    // The same check reports a broken unit: an unknown key, a bad value, a missing program.
    const broken = verify(
      'broken.service',
      text
        .replace('ProtectSystem=strict', 'ProtectSystem=strictest')
        .replace('[Service]', '[Service]\nProtectEverything=yes')
        .replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node'),
    );
    assert.ok(broken.complaints.some((l) => /ProtectEverything/.test(l)), broken.output);
    assert.ok(broken.complaints.some((l) => /strictest/.test(l)), broken.output);
    assert.notEqual(broken.status, 0, broken.output);
  });
});
