/**
 * The command line's contract, as README.md states it: it runs the compiled
 * build and loads only what a command uses; --json on every command, one
 * shape for errors; exit codes; quiet when the reader goes away; doctor on a
 * first install; tick and plan reading the daemon's config. Where a process
 * boundary is what is tested (start-up, EPIPE) the real executable runs as a
 * child; everything else goes through main() in this process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { COMMAND_GROUPS, buildProgram, groupsFor } from '../src/cli/main.js';
import { createContext } from '../src/cli/context.js';
import { ERROR_CODES } from '../src/errors.js';
import { BIN, REPO_ROOT, runCli, runMain, tempStore, withOwnEnvironment } from './helpers/cli.js';
import { CORPUS_DIR } from './helpers/corpus.js';
import { freePort, startDaemonProcess, waitFor } from './helpers/daemon-process.js';
import { killedAtExit } from './helpers/children.js';

/** Packages no light command may load: DNS SDKs, the HTTP server, mail and IMAP libraries, the TypeScript loader. */
const HEAVY = ['@aws-sdk', 'cloudflare', 'fastify', '@fastify', 'imapflow', 'mailparser', 'smtp-server', 'nodemailer', 'mailauth', 'tsx', 'esbuild'];

function corpusXml(): string {
  const dir = join(CORPUS_DIR, 'aggregate/dmarcgo');
  const file = readdirSync(dir).find((f) => f.endsWith('.xml'));
  assert.ok(file, 'the corpus has an XML report');
  return join(dir, file);
}

/** Runs the executable with a loader hook that records every module URL it resolves. */
async function modulesLoadedBy(args: string[], env: Record<string, string> = {}): Promise<{ code: number; urls: string[] }> {
  const { dir, db } = tempStore('dmarc-rollout-trace-');
  const trace = join(dir, 'modules.txt');
  writeFileSync(trace, '');
  const code = await new Promise<number>((resolve) => {
    const child = killedAtExit(spawn(process.execPath, ['--import', './test/helpers/module-trace.mjs', BIN, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, DMARC_ROLLOUT_DB: db, MODULE_TRACE_FILE: trace, ...env },
      stdio: 'ignore',
    }));
    child.on('close', (c) => resolve(c ?? -1));
  });
  const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  rmSync(dir, { recursive: true, force: true });
  return { code, urls };
}

function packagesIn(urls: string[]): string[] {
  const names = new Set<string>();
  for (const url of urls) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

for (const [name, args] of [
  ['--version', ['--version']],
  ['record check', ['record', 'check', 'v=DMARC1; p=none; rua=mailto:d@example.com']],
  ['report parse', ['report', 'parse', '--json', corpusXml()]],
] as const) {
  test(`${name} runs the compiled build and loads no DNS SDK, HTTP server, mail library or TypeScript loader`, async () => {
    const { code, urls } = await modulesLoadedBy([...args]);
    assert.equal(code, 0);
    assert.ok(urls.some((u) => u.includes('/dist/cli/run.js')), 'the executable runs the build in dist/cli/');
    assert.ok(!urls.some((u) => /\/src\/.*\.ts$/.test(u)), 'no TypeScript source is loaded');
    const packages = packagesIn(urls);
    const heavy = packages.filter((p) => HEAVY.some((h) => p === h || p.startsWith(`${h}/`)));
    assert.deepEqual(heavy, [], `loaded: ${packages.join(', ')}`);
  });
}

test('commands need no writable temporary or cache folder (no compile cache of a TypeScript loader)', async () => {
  // Under a regular file nothing can be created, not even by root.
  const { dir, db } = tempStore();
  const blocker = join(dir, 'a-file');
  writeFileSync(blocker, '');
  const env = { TMPDIR: join(blocker, 'tmp'), XDG_CACHE_HOME: join(blocker, 'cache'), HOME: join(blocker, 'home'), DMARC_ROLLOUT_DB: db };
  for (const args of [['--version'], ['record', 'check', 'v=DMARC1; p=none'], ['status', '--json']]) {
    const run = await runCli(args, env);
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(run.stderr, '');
  }
  rmSync(dir, { recursive: true, force: true });
});

test('the lazy loader picks one group per command, none for --version, all for help; each group registers exactly the commands it names', async () => {
  assert.deepEqual(groupsFor(['--version']), []);
  assert.deepEqual(groupsFor(['record', 'check', 'x']).map((g) => g.commands), [['record']]);
  const forStatus = groupsFor(['--json', 'status']);
  assert.equal(forStatus.length, 1);
  assert.ok(forStatus[0]!.commands.includes('status'));
  assert.equal(groupsFor([]).length, COMMAND_GROUPS.length);
  assert.equal(groupsFor(['no-such-command']).length, COMMAND_GROUPS.length, 'an unknown word loads all, so commander can suggest');
  const ctx = createContext({});
  const seen = new Set<string>();
  for (const group of COMMAND_GROUPS) {
    const program = new Command();
    (await group.load())(program, ctx);
    const registered = program.commands.map((c) => c.name());
    assert.deepEqual(registered.sort(), [...group.commands].sort(), `the group that loads ${group.commands[0]} registers ${registered.join(', ')}`);
    for (const c of registered) {
      assert.ok(!seen.has(c), `${c} is registered by two groups`);
      seen.add(c);
    }
  }
});

test('every command takes --json', async () => {
  const program = await buildProgram(createContext({}));
  const missing: string[] = [];
  const visit = (cmd: Command, path: string[]) => {
    for (const sub of cmd.commands) {
      const at = [...path, sub.name()];
      if (sub.commands.length > 0) visit(sub, at);
      else if (!sub.options.some((o) => o.long === '--json')) missing.push(at.join(' '));
    }
  };
  visit(program, []);
  assert.deepEqual(missing, []);
});

test('--json errors are one {error:{code,message,field?}} document on stdout; usage errors exit 2, refusals 1', async () => {
  const unknown = await runMain(['no-such-command', '--json']);
  assert.equal(unknown.code, 2);
  assert.deepEqual(JSON.parse(unknown.stdout), { error: { code: 'usage', message: "unknown command 'no-such-command'" } });

  const badStage = await runMain(['record', 'render', '--stage', 'reject:250', '--json']);
  assert.equal(badStage.code, 2);
  const error = JSON.parse(badStage.stdout).error;
  assert.equal(error.code, 'usage');
  assert.match(error.message, /--stage/);

  const noConfig = await runMain(['doctor', '--json'], { DMARC_ROLLOUT_CONFIG: '' });
  assert.equal(noConfig.code, 2);
  assert.deepEqual(JSON.parse(noConfig.stdout).error.field, '--config');

  const { dir, db } = tempStore();
  const notEnrolled = await runMain(['explain', 'nowhere.example', '--json'], { DMARC_ROLLOUT_DB: db });
  assert.equal(notEnrolled.code, 1);
  assert.equal(notEnrolled.stderr + notEnrolled.stdout !== '', true);
  rmSync(dir, { recursive: true, force: true });

  // Without --json the same failure is one line on stderr, nothing on stdout.
  const text = await runMain(['no-such-command']);
  assert.equal(text.code, 2);
  assert.equal(text.stdout, '');
  assert.match(text.stderr, /unknown command 'no-such-command'/);
});

test('record check --json is one compact document', async () => {
  const run = await runMain(['record', 'check', '--json', 'v=DMARC1; p=none']);
  assert.equal(run.code, 0);
  assert.equal(run.stdout.trim().split('\n').length, 1);
  assert.equal(JSON.parse(run.stdout).valid, true);
});

test('the exit codes README.md documents are the ones the error table gives', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Exit codes'));
  for (const exit of new Set(Object.values(ERROR_CODES).map((c) => c.exit))) assert.match(section, new RegExp(`\\| \`${exit}\` \\|`), `exit ${exit} is documented`);
  for (const code of Object.keys(ERROR_CODES)) assert.match(section, new RegExp(`\`${code}\``), `error code ${code} is documented`);
});

test('a reader that goes away early ends the command quietly (dmarc-rollout … | head -1)', async () => {
  // report parse over the whole corpus prints a line per file, more than one pipe buffer's worth.
  const files = readdirSync(join(CORPUS_DIR, 'aggregate/dmarcgo')).map((f) => join(CORPUS_DIR, 'aggregate/dmarcgo', f));
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = killedAtExit(spawn(process.execPath, [BIN, 'report', 'parse', '--json', ...files, ...files, ...files], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout.once('data', () => child.stdout.destroy());
    child.on('close', (c) => resolve({ code: c, stderr: err }));
  });
  assert.equal(stderr, '', 'no EPIPE stack trace');
  assert.equal(code, 0);
});

test('doctor on a first install: no store yet is fine, and doctor creates none', async () => {
  // The state folder exists (systemd's StateDirectory, the image's volume); the store file does not yet.
  const { dir } = tempStore();
  const storePath = join(dir, 'store.sqlite');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `store: { sqlite: ${storePath} }\nproviders:\n  hand: { type: manual }\n`);
  const run = await runMain(['doctor', '--config', config, '--json']);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const report = JSON.parse(run.stdout);
  assert.equal(report.ok, true);
  const store = report.checks.find((c: { subject: string }) => c.subject === 'store');
  assert.equal(store.status, 'ok');
  assert.match(store.detail, /does not exist yet/);
  assert.ok(report.checks.some((c: { subject: string }) => c.subject === 'provider hand'), 'providers are still checked');
  assert.deepEqual(readdirSync(dir), ['config.yaml'], 'doctor wrote nothing: no store, no lock');
  rmSync(dir, { recursive: true, force: true });
});

test("tick and plan with --config use the daemon config's store; a bad config is a JSON error naming the file", async () => {
  const { dir } = tempStore();
  const storePath = join(dir, 'from-config.sqlite');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `store: { sqlite: ${storePath} }\nproviders:\n  hand: { type: manual }\n`);
  const plan = await runMain(['plan', '--config', config, '--json'], { DMARC_ROLLOUT_DB: join(dir, 'not-this.sqlite') });
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.ok(existsSync(storePath), "the config's store was opened");
  assert.equal(existsSync(join(dir, 'not-this.sqlite')), false);

  writeFileSync(config, 'providers:\n  hand: { type: nonsense }\n');
  const bad = await runMain(['tick', '--config', config, '--json']);
  assert.equal(bad.code, 1);
  const error = JSON.parse(bad.stdout).error;
  assert.equal(error.code, 'config');
  assert.ok(error.message.includes(config), error.message);
  rmSync(dir, { recursive: true, force: true });
});

test('the executable says how to build when dist/ is missing, instead of a stack trace', { skip: !existsSync(join(REPO_ROOT, 'dist')) }, async () => {
  // Run a copy of bin/ beside an empty folder: the same file, no dist/ next to it.
  const { dir } = tempStore();
  const bin = join(dir, 'bin', 'dmarc-rollout.js');
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'bin')).then(() => fs.copyFile(BIN, bin)));
  const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = killedAtExit(spawn(process.execPath, [bin, '--version'], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (c) => resolve({ code: c, stderr: err }));
  });
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /npm run build/);
  rmSync(dir, { recursive: true, force: true });
});

test('in process, a command sees only the environment main() is given; reading process.env instead fails the test', async () => {
  // The guard runMain() runs every command under: a module reading process.env where the CLI passes ctx.env
  // would see nothing of what the test set, where the started executable would see it.
  await assert.rejects(
    withOwnEnvironment({ DMARC_ROLLOUT_PLANS: '/plans' }, async () => process.env.DMARC_ROLLOUT_PLANS),
    /read process\.env\.DMARC_ROLLOUT_PLANS instead of the environment main\(\) was given/,
  );
  await assert.rejects(withOwnEnvironment({ SOME_SECRET: 'x' }, async () => 'SOME_SECRET' in process.env), /process\.env\.SOME_SECRET/);
  assert.equal(await withOwnEnvironment({ SOME_SECRET: 'x' }, async () => process.env.PATH), process.env.PATH, 'other variables read as usual');
  assert.equal(process.env.SOME_SECRET, undefined, 'process.env is itself again afterwards');

  // A plan folder given only to main() is found.
  const { dir } = tempStore();
  writeFileSync(join(dir, 'quick.yaml'), readFileSync(join(REPO_ROOT, 'data/plans/default.yaml'), 'utf8'));
  const listed = await runMain(['plans', 'list', '--json'], { DMARC_ROLLOUT_PLANS: dir });
  assert.ok(JSON.parse(listed.stdout).plans.some((p: { name: string }) => p.name === 'quick'), listed.stdout);
  rmSync(dir, { recursive: true, force: true });
});

test('every command group runs from the built executable (one command each; the other command tests call main() in process)', async () => {
  const { dir, db } = tempStore();
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `store: { sqlite: ${join(dir, 'from-config.sqlite')} }\nproviders:\n  hand: { type: manual }\n`);
  // One command of each group, keyed by the group's first command; a group added without one here fails.
  const oneEach: Record<string, { args: string[]; check(out: Record<string, unknown>): void }> = {
    record: { args: ['record', 'check', '--json', 'v=DMARC1; p=none'], check: (o) => assert.equal(o.valid, true) },
    plans: { args: ['plans', 'list', '--json'], check: (o) => assert.ok((o.plans as Array<{ name: string }>).some((p) => p.name === 'default')) },
    enroll: { args: ['status', '--json'], check: (o) => assert.deepEqual(o.domains, []) },
    ingest: { args: ['report', 'parse', '--json', corpusXml()], check: (o) => assert.equal(typeof o.org, 'string') },
    tick: { args: ['approvals', '--json'], check: (o) => assert.deepEqual(o.approvals, []) },
    doctor: { args: ['doctor', '--config', config, '--json'], check: (o) => assert.equal(o.ok, true) },
    token: { args: ['token', 'create', 'ci', '--role', 'viewer', '--json'], check: (o) => assert.equal(o.role, 'viewer') },
    notify: { args: ['summary', '--json'], check: (o) => assert.equal(typeof o, 'object') },
  };
  assert.deepEqual(COMMAND_GROUPS.map((g) => g.commands[0]).sort(), Object.keys(oneEach).sort());
  // The store is made first: commands started together on a store no one has opened yet race to migrate it.
  assert.equal((await runMain(['status'], { DMARC_ROLLOUT_DB: db })).code, 0);
  await Promise.all(
    Object.values(oneEach).map(async ({ args, check }) => {
      const run = await runCli(args, { DMARC_ROLLOUT_DB: db });
      assert.equal(run.code, 0, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
      check(JSON.parse(run.stdout));
    }),
  );
  rmSync(dir, { recursive: true, force: true });
});

test('runCli runs the built executable', async () => {
  const run = await runCli(['--version']);
  assert.equal(run.code, 0);
  assert.equal(run.stdout.trim(), JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version);
});

test("the daemon's log is JSON lines only: no deprecation or other warnings from the runtime or a library", async () => {
  const { dir } = tempStore();
  const config = join(dir, 'config.yaml');
  const [apiPort, smtpPort] = [await freePort(), await freePort()];
  writeFileSync(
    config,
    [
      `store: { sqlite: ${join(dir, 'store.sqlite')} }`,
      `sources: [{ type: folder, path: ${join(dir, 'inbox')} }, { type: smtp, host: 127.0.0.1, port: ${smtpPort}, recipients: [dmarc@example.com] }]`,
      'providers:',
      '  hand: { type: manual }',
      'api:',
      `  listen: { host: 127.0.0.1, port: ${apiPort} }`,
      '  tokens: []',
      '',
    ].join('\n'),
  );
  const daemon = startDaemonProcess(config, {});
  try {
    await waitFor('the API', async () => (await fetch(`http://127.0.0.1:${apiPort}/healthz`).catch(() => null))?.ok);
    // A request, so the HTTP layer logs too.
    await fetch(`http://127.0.0.1:${apiPort}/api/v1/domains`);
  } finally {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    rmSync(dir, { recursive: true, force: true });
  }
  const lines = daemon.output().split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length > 0);
  const notJson = lines.filter((l) => {
    try {
      return typeof JSON.parse(l) !== 'object';
    } catch {
      return true;
    }
  });
  assert.deepEqual(notJson, []);
});
