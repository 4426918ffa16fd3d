import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { it } from 'node:test';
import { acquireInstanceLock, LockHeldError } from '../src/daemon/lock.js';
import { REPO_ROOT, tempStore } from './helpers/cli.js';
import { killedAtExit } from './helpers/children.js';

it('one daemon per store, and a holder killed with SIGKILL leaves nothing to clean up', async () => {
  const { db } = tempStore();
  // The holder lets go of the lock's handle and collects garbage before it says so: a lock must last until it is
  // released, not until the next collection (better-sqlite3 closes a collected connection, and with it the lock).
  const holder = killedAtExit(spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', '-e', `import('./src/daemon/lock.ts').then((m) => { m.acquireInstanceLock(${JSON.stringify(db)}); globalThis.gc(); console.log('locked'); setInterval(() => {}, 1000); })`],
    { cwd: REPO_ROOT },
  ));
  let output = '';
  holder.stdout.on('data', (b) => (output += b));
  holder.stderr.on('data', (b) => (output += b));
  try {
    // A loaded machine can take many seconds to start a child through tsx; a failed wait must not leave it running
    // (the test process would wait on it for ever).
    for (let i = 0; i < 600 && !output.includes('locked') && holder.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(output, /locked/);
  } catch (error) {
    holder.kill('SIGKILL');
    throw error;
  }

  assert.throws(() => acquireInstanceLock(db), (error: unknown) => {
    assert.ok(error instanceof LockHeldError);
    assert.match(error.message, new RegExp(`another daemon holds .*store\\.sqlite\\.lock \\(pid ${holder.pid} on `));
    return true;
  });

  holder.kill('SIGKILL');
  await once(holder, 'exit');
  const lock = acquireInstanceLock(db);
  assert.throws(() => acquireInstanceLock(db), LockHeldError, 'a second taker in the same process is refused too');
  lock.release();
  acquireInstanceLock(db).release();
});
