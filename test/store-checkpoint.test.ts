/**
 * Checkpoints paused around a big write and made in a worker thread
 * (src/store/checkpoint.ts): while paused, commits leave their pages in the
 * WAL, and a worker thread copies them into the database file every so often
 * and once more at resume(), which gives the connection back its automatic
 * checkpoints; two reports stored at once share the pause, which ends with
 * the last. On Postgres there is nothing to pause.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import { pauseCheckpoints } from '../src/store/checkpoint.js';
import { domainRow as row } from './helpers/domain-rows.js';
import { storeDialects } from './helpers/dialects.js';

const AT = new Date('2026-06-15T12:00:00Z');

for (const dialect of storeDialects()) {
  describe(`pauseCheckpoints (${dialect.name})`, () => {
    it(dialect.name === 'sqlite' ? 'leaves commits in the WAL until resumed, then checkpoints them elsewhere and resumes the automatic ones' : 'has nothing to pause', async () => {
      const store = await dialect.open();
      after(() => store.close());
      // The worker's own round far off: only resume() checkpoints in this test.
      const paused = await pauseCheckpoints(store.db, { everyMs: 3_600_000 });
      if (dialect.name === 'postgres') {
        assert.equal(paused, null);
        return;
      }
      assert.ok(paused);
      const setting = async () => Number((await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(store.db)).rows[0]!.wal_autocheckpoint);
      const file = (await sql<{ name: string; file: string }>`pragma database_list`.execute(store.db)).rows.find((r) => r.name === 'main')!.file;
      // The database file itself grows only when a checkpoint copies the WAL's pages into it.
      const fileSize = () => statSync(file).size;
      assert.equal(await setting(), 0);
      const sizePaused = fileSize();
      // Past the 1,000 pages (4 MB) at which a commit would have checkpointed: 9,000 domains with long names, 30 commits.
      const thirtyCommits = async (letter: string) => {
        for (let i = 0; i < 30; i++) {
          await store.db
            .insertInto('domains')
            .values(Array.from({ length: 300 }, (_, j) => row(`${letter.repeat(300)}-${i}-${j}.example`, AT)))
            .execute();
        }
      };
      await thirtyCommits('x');
      assert.equal(fileSize(), sizePaused, 'no commit checkpointed while paused');
      await paused.resume();
      assert.ok(fileSize() > sizePaused + 4_000_000, `the worker copied the pages into the file (${sizePaused} then ${fileSize()} bytes)`);
      assert.equal(await setting(), 1000, 'the automatic checkpoints are back');
      assert.equal((await sql<{ n: number }>`select count(*) as n from domains`.execute(store.reader)).rows[0]!.n, 9000);

      // Paused again, with the worker's round every 20 ms: what is committed reaches the file while still paused.
      const again = (await pauseCheckpoints(store.db, { everyMs: 20 }))!;
      try {
        const sizeAgain = fileSize();
        await thirtyCommits('y');
        const deadline = Date.now() + 30_000;
        while (fileSize() <= sizeAgain + 4_000_000 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
        assert.ok(fileSize() > sizeAgain + 4_000_000, 'the worker checkpointed on its own');
        assert.equal(await setting(), 0, 'while the commits still do not');
      } finally {
        await again.resume();
      }
      assert.equal(await setting(), 1000);

      // Two reports stored at once: the pause ends with the last of them, and the setting is the one from before both.
      const first = (await pauseCheckpoints(store.db))!;
      const second = (await pauseCheckpoints(store.db))!;
      await first.resume();
      assert.equal(await setting(), 0, 'still paused for the second');
      await second.resume();
      assert.equal(await setting(), 1000);
    });
  });
}
