// `npm run test:ci`, what CI runs (.ci/run) and the quick start's test
// command: the whole suite (`npm test`) on the machine's Node and on Node 24
// LTS (test/node24.sh, in a copy of the tree with its own native modules),
// the two runtimes package.json's `engines` names, at the same time.
//
// Why at once: a run of the suite keeps a two-core machine less than half
// busy (most tests wait on the servers they start: PowerDNS, Postgres,
// Dovecot, Chromium, the daemon), so the second runtime mostly fills time
// the first leaves idle; one after the other they would not fit CI's
// 15 minutes. The machine's Node reports as it goes; Node 24's output goes
// to test-output/node24.log and is printed when both are done. The exit code
// is 0 only when both passed.
//
// `npm run test:ci -- test/a.test.ts ...` runs only those files, on both.
//
// A run that is still going after DEADLINE_MINUTES is stopped: the test files
// it was still running are named, its whole process group is killed, and it
// counts as failed. A test that waits for ever (a child left running, a
// server that never answers) then fails CI in minutes, with its file named,
// instead of holding CI until its own limit with nothing printed.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'test-output'), { recursive: true });
const log24 = join(root, 'test-output', 'node24.log');
const out24 = openSync(log24, 'w');

/** Both runs together take 10 to 12 minutes on a two-core machine; three times that is a hang. */
const DEADLINE_MINUTES = Number(process.env.TEST_CI_DEADLINE_MINUTES ?? 40);

/** Every process group started here, to kill when this process is told to stop. */
const groups = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const pid of groups) killGroup(pid);
    process.exit(1);
  });
}

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group has already ended.
  }
}

/** The test files the processes under `pid` are running (Linux /proc; empty elsewhere). */
function testFilesUnder(pid) {
  const children = new Map();
  const commands = new Map();
  let entries = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  for (const name of entries) {
    try {
      // The parent pid is the 4th field, after the command in parentheses (which may hold spaces).
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(Number(name));
      commands.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0'));
    } catch {
      // The process ended while it was being read.
    }
  }
  const files = new Set();
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop();
    for (const arg of commands.get(next) ?? []) if (/\.test\.[cm]?[jt]s$/.test(arg)) files.add(arg.slice(arg.lastIndexOf('/test/') + 1));
    pending.push(...(children.get(next) ?? []));
  }
  return [...files].sort();
}

/**
 * Runs a command in its own process group; resolves to its exit code, how
 * long it took, and, when it outlived the deadline, the test files it was
 * still running.
 */
function run(command, args, stdio) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio, detached: true });
    groups.add(child.pid);
    const seconds = () => Math.round((Date.now() - started) / 1000);
    let stuck;
    const deadline = setTimeout(() => {
      stuck = testFilesUnder(child.pid);
      killGroup(child.pid);
    }, DEADLINE_MINUTES * 60_000);
    child.on('error', (error) => {
      clearTimeout(deadline);
      resolve({ code: 1, seconds: 0, error });
    });
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      groups.delete(child.pid);
      killGroup(child.pid); // whatever its tests left running in the group
      resolve({ code: stuck ? 1 : (code ?? (signal ? 1 : 0)), seconds: seconds(), stuck });
    });
  });
}

const outcome = (result) =>
  result.stuck
    ? `STOPPED at its ${DEADLINE_MINUTES}-minute deadline (still running: ${result.stuck.length > 0 ? result.stuck.join(', ') : 'no test file, so npm or the build'}),`
    : result.code === 0
      ? 'passed'
      : `FAILED (exit ${result.code})`;

const minutes = (s) => `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;

const files = process.argv.slice(2);
const what = files.length > 0 ? files.join(' ') : 'the whole suite';
process.stdout.write(`test:ci: ${what} on node ${process.version} here, and on Node 24 at the same time (its output: test-output/node24.log, printed at the end)\n`);
const [here, node24] = await Promise.all([
  files.length > 0
    ? run('sh', ['-c', 'npm run build && node --import tsx --test --test-timeout=900000 "$@"', 'sh', ...files], 'inherit')
    : run('npm', ['test'], 'inherit'),
  run('bash', ['test/node24.sh', ...files], ['ignore', out24, out24]),
]);

process.stdout.write(`\n---------------- Node 24 (test/node24.sh) ----------------\n`);
process.stdout.write(readFileSync(log24, 'utf8'));
process.stdout.write(`\n---------------- test:ci ----------------\n`);
process.stdout.write(`node ${process.version}: ${outcome(here)} in ${minutes(here.seconds)}\n`);
process.stdout.write(`node 24: ${outcome(node24)} in ${minutes(node24.seconds)}${node24.error ? ` (${node24.error.message})` : ''}\n`);
process.exit(here.code === 0 && node24.code === 0 ? 0 : 1);
