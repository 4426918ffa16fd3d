/**
 * The deployment examples under deploy/: every YAML file parses cleanly, the
 * Kubernetes manifests hang together (names referenced exist, one replica
 * with Recreate on a PVC, non-root, read-only root), compose declares its
 * volume, the Dockerfile is multi-stage and non-root with the state on a
 * volume, and the systemd unit is hardened and passes `systemd-analyze
 * verify` where that tool exists. Docker cannot run here, so nothing is built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ConfigError, loadDaemonConfig } from '../src/daemon/config.js';
import type { DaemonConfig } from '../src/daemon/config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(ROOT, 'deploy');
const STATE_DIR = '/var/lib/dmarc-rollout';

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

function metaName(doc: Obj, what: string): string {
  return str(obj(doc.metadata, `${what}.metadata`).name, `${what}.metadata.name`);
}

/** The environment variables a daemon config names for its secrets (`*_env` in providers and sources). */
function secretVariables(config: DaemonConfig): string[] {
  const blocks = [...Object.values(config.providers), ...config.sources];
  return blocks.flatMap((block) =>
    isObj(block)
      ? Object.entries(block)
          .filter(([key]) => key.endsWith('_env'))
          .map(([, value]) => str(value, 'a *_env setting'))
      : [],
  );
}

const DB_ENV = { DMARC_ROLLOUT_DB: `${STATE_DIR}/dmarc-rollout.sqlite` };

/** A config example through the daemon's own loader (zod, strict keys, provider schemas); throws ConfigError naming each problem. */
function loadExample(text: string, name: string): DaemonConfig {
  const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-config-'));
  try {
    const file = join(dir, name);
    writeFileSync(file, text);
    return loadDaemonConfig(file, DB_ENV);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The config.yaml that the ConfigMap holds. */
function configMapConfig(): string {
  return str(obj(manifest('configmap.yaml').data, 'ConfigMap data')['config.yaml'], 'ConfigMap config.yaml');
}

const CONFIG_EXAMPLES: Array<[string, () => string]> = [
  ['deploy/config/config.yaml', () => readFileSync(join(DEPLOY, 'config/config.yaml'), 'utf8')],
  ['deploy/compose/config.yaml', () => readFileSync(join(DEPLOY, 'compose/config.yaml'), 'utf8')],
  ['deploy/kubernetes/configmap.yaml config.yaml', configMapConfig],
];

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

  test('every daemon config example passes the daemon\'s own loader (strict keys, sources, provider schemas)', () => {
    for (const [what, text] of CONFIG_EXAMPLES) {
      yamlDocuments(text(), what);
      let config: DaemonConfig | undefined;
      assert.doesNotThrow(() => {
        config = loadExample(text(), 'config.yaml');
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
    assert.throws(() => loadExample(`${CONFIG_EXAMPLES[0]![1]()}\nhttp:\n  listen: 0.0.0.0:8080\n`, 'extra.yaml'), ConfigError);
    assert.throws(() => loadExample('providers:\n  broken:\n    type: powerdns\n', 'broken.yaml'), /providers\.broken/);
  });

  test('the config examples differ only in where the SMTP listener binds', () => {
    const [host, compose, k8s] = CONFIG_EXAMPLES.map(([what, text]) => [what, loadExample(text(), 'config.yaml')] as const);
    assert.equal(smtpSource(host![1], host![0]).host, '127.0.0.1', 'on a host the listener stays on loopback');
    // In a container, a loopback listener cannot be reached through a published port or a Service.
    for (const [what, config] of [compose!, k8s!]) {
      assert.equal(smtpSource(config, what).host, '0.0.0.0', what);
      assert.equal(smtpSource(config, what).port, smtpSource(host![1], host![0]).port, what);
      assert.deepEqual(config.sources.map((s) => s.type), host![1].sources.map((s) => s.type), what);
      assert.deepEqual(config.schedule, host![1].schedule, what);
      assert.deepEqual(config.report_addresses, host![1].report_addresses, what);
      for (const address of config.report_addresses) {
        assert.ok(smtpSource(config, what).recipients.includes(address), `${what}: ${address} does not reach the SMTP source`);
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
      const doc = manifest(file);
      str(doc.apiVersion, `${file} apiVersion`);
      str(doc.kind, `${file} kind`);
      assert.ok(metaName(doc, file).length > 0, `${file}: empty metadata.name`);
      assert.equal(obj(doc.metadata, file).namespace, undefined, `${file}: manifests are namespace-less`);
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

    // A read-only root needs a writable /tmp: tsx keeps its compile cache there.
    assert.ok(isObj(mountAt('/tmp').volume.emptyDir), '/tmp is not an emptyDir');

    // Settings from the ConfigMap that configmap.yaml declares, holding the files the container is pointed at.
    const configMount = mountAt('/etc/dmarc-rollout');
    assert.equal(configMount.mount.readOnly, true);
    const configMap = manifest('configmap.yaml');
    assert.equal(configMap.kind, 'ConfigMap');
    assert.equal(obj(configMount.volume.configMap, 'config volume').name, metaName(configMap, 'configmap.yaml'));
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
    const config = loadExample(configMapConfig(), 'config.yaml');

    // Secrets from the Secret that secret.example.yaml declares, holding every variable the ConfigMap's config names.
    const secret = manifest('secret.example.yaml');
    assert.equal(secret.kind, 'Secret');
    const secretRefs = arr(container.envFrom, 'envFrom').map((e, i) => str(obj(obj(e, `envFrom ${i}`).secretRef, 'secretRef').name, 'secretRef name'));
    assert.deepEqual(secretRefs, [metaName(secret, 'secret.example.yaml')]);
    const secretKeys = Object.keys(obj(secret.stringData, 'Secret stringData'));
    const variables = secretVariables(config);
    assert.ok(variables.length > 0);
    for (const variable of variables) {
      assert.ok(secretKeys.includes(variable), `the ConfigMap's config names ${variable}, which the Secret does not hold`);
    }

    // The image's user is the pod's user.
    assert.equal(String(podSecurity.runAsUser), dockerfileUser().split(':')[0]);
    // The container port (and so the probes and the Service) is the SMTP source's port.
    const ports = arr(container.ports, 'ports').map((p, i) => obj(p, `port ${i}`));
    assert.deepEqual(ports.map((p) => [p.name, p.containerPort]), [['smtp', smtpSource(config, 'configmap').port]]);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      assert.equal(obj(obj(container[probe], probe).tcpSocket, `${probe}.tcpSocket`).port, 'smtp', probe);
    }
    assert.equal(pod.terminationGracePeriodSeconds, 60);
  });

  test('the service is a ClusterIP that selects the pod and targets its smtp port', () => {
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
    const portNames = arr(container.ports, 'ports').map((p) => obj(p, 'port').name);
    for (const port of arr(spec.ports, 'service ports').map((p) => obj(p, 'service port'))) {
      assert.ok(portNames.includes(port.targetPort), `service targetPort ${String(port.targetPort)} is not a container port`);
    }
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
    assert.deepEqual(kinds, ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Service']);
  });
});

describe('deploy/compose', () => {
  const COMPOSE = join(DEPLOY, 'compose');

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
    assert.ok(binds.some((b) => b.target === '/etc/dmarc-rollout/config.yaml'), 'config.yaml is not mounted');
    for (const bind of binds) {
      assert.equal(bind.read_only, true, `${String(bind.target)} is writable`);
      assert.ok(existsSync(resolve(COMPOSE, str(bind.source, 'bind source'))), `bind source ${String(bind.source)} does not exist`);
    }

    const config = loadExample(readFileSync(join(COMPOSE, 'config.yaml'), 'utf8'), 'config.yaml');
    const smtpPort = smtpSource(config, 'compose config').port;
    const ports = arr(service.ports, 'ports').map((p) => str(p, 'port'));
    assert.deepEqual(ports, [`127.0.0.1:${smtpPort}:${smtpPort}`], 'publish the SMTP port on loopback only');
    const healthcheck = arr(obj(service.healthcheck, 'healthcheck').test, 'healthcheck test').map((a) => str(a, 'healthcheck arg'));
    assert.match(healthcheck.join(' '), new RegExp(`connect\\(${smtpPort}, '127\\.0\\.0\\.1'\\)`));

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

    // A read-only container still needs a writable /tmp (tsx's cache).
    assert.equal(service.read_only, true);
    assert.ok(arr(service.tmpfs, 'tmpfs').includes('/tmp'));
    assert.deepEqual(service.cap_drop, ['ALL']);
  });

  test('the env example holds every variable the compose config names', () => {
    const example = readFileSync(join(COMPOSE, 'dmarc-rollout.env.example'), 'utf8');
    const names = example.split('\n').filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l)).map((l) => l.slice(0, l.indexOf('=')));
    const wanted = secretVariables(loadExample(readFileSync(join(COMPOSE, 'config.yaml'), 'utf8'), 'config.yaml'));
    assert.ok(wanted.length > 0);
    for (const variable of wanted) assert.ok(names.includes(variable), `${variable} is missing from dmarc-rollout.env.example`);
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
    assert.ok(froms.every((f) => /node:20-bookworm-slim/.test(f.args) || f.args.startsWith('${NODE_IMAGE}')));
    assert.ok(instructions.some((i) => i.keyword === 'ARG' && i.args === 'NODE_IMAGE=node:20-bookworm-slim'));
    // The final stage copies from an earlier one, by name.
    const lastFrom = instructions.lastIndexOf(froms[froms.length - 1]!);
    const final = instructions.slice(lastFrom);
    const build = instructions.slice(0, lastFrom);
    assert.ok(build.some((i) => i.keyword === 'RUN' && /python3/.test(i.args) && /\bmake\b/.test(i.args) && /g\+\+/.test(i.args)), 'the build stage installs python3 make g++');
    assert.ok(build.some((i) => i.keyword === 'RUN' && /npm ci --omit=dev/.test(i.args)));
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
    for (const needed of ['bin', 'src', 'providers', 'data/plans', 'package.json']) {
      assert.ok(final.some((i) => i.keyword === 'COPY' && i.args.split(/\s+/).includes(needed)), `the image lacks ${needed}`);
    }

    const one = (keyword: string) => {
      const found = final.filter((i) => i.keyword === keyword);
      assert.equal(found.length, 1, `expected one ${keyword}`);
      return found[0]!.args;
    };
    assert.deepEqual(JSON.parse(one('ENTRYPOINT')), ['node', '/app/bin/dmarc-rollout.js']);
    assert.deepEqual(JSON.parse(one('CMD')), ['daemon', '--config', '/etc/dmarc-rollout/config.yaml']);
    assert.equal(one('STOPSIGNAL'), 'SIGTERM');
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
    const environment = (service.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string]);
    const db = environment.find(([k]) => k === 'DMARC_ROLLOUT_DB')?.[1];
    assert.equal(dirname(db ?? ''), `/var/lib/${last('StateDirectory')}`, 'the SQLite file must be in the state directory');
    assert.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target');
  });

  test('systemd-analyze verify finds nothing to complain about (where systemd-analyze is installed)', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('systemd-analyze is not installed; the unit was checked by the INI parse above');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'dmarc-rollout-unit-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
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
