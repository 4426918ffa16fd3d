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
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'test-output'), { recursive: true });
const log24 = join(root, 'test-output', 'node24.log');
const out24 = openSync(log24, 'w');

/** Runs a command; resolves to its exit code and how long it took. */
function run(command, args, stdio) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio });
    child.on('error', (error) => resolve({ code: 1, seconds: 0, error }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), seconds: Math.round((Date.now() - started) / 1000) }));
  });
}

const minutes = (s) => `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;

const files = process.argv.slice(2);
const what = files.length > 0 ? files.join(' ') : 'the whole suite';
process.stdout.write(`test:ci: ${what} on node ${process.version} here, and on Node 24 at the same time (its output: test-output/node24.log, printed at the end)\n`);
const [here, node24] = await Promise.all([
  files.length > 0
    ? run('sh', ['-c', 'npm run build && node --import tsx --test "$@"', 'sh', ...files], 'inherit')
    : run('npm', ['test'], 'inherit'),
  run('bash', ['test/node24.sh', ...files], ['ignore', out24, out24]),
]);

process.stdout.write(`\n---------------- Node 24 (test/node24.sh) ----------------\n`);
process.stdout.write(readFileSync(log24, 'utf8'));
process.stdout.write(`\n---------------- test:ci ----------------\n`);
process.stdout.write(`node ${process.version}: ${here.code === 0 ? 'passed' : `FAILED (exit ${here.code})`} in ${minutes(here.seconds)}\n`);
process.stdout.write(`node 24: ${node24.code === 0 ? 'passed' : `FAILED (exit ${node24.code})`} in ${minutes(node24.seconds)}${node24.error ? ` (${node24.error.message})` : ''}\n`);
process.exit(here.code === 0 && node24.code === 0 ? 0 : 1);
