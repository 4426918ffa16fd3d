/**
 * Checkpoints paused around a big write and made in a worker thread
 * (src/store/checkpoint.ts): while paused, commits leave their pages in the
 * WAL; resume() copies them into the database file from another thread and
 * gives the connection back its automatic checkpoints. On Postgres there is
 * nothing to pause.
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
      const paused = await pauseCheckpoints(store.db);
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
      for (let i = 0; i < 30; i++) {
        await store.db
          .insertInto('domains')
          .values(Array.from({ length: 300 }, (_, j) => row(`${'x'.repeat(300)}-${i}-${j}.example`, AT)))
          .execute();
      }
      assert.equal(fileSize(), sizePaused, 'no commit checkpointed while paused');
      await paused.resume(store.db);
      assert.ok(fileSize() > sizePaused + 4_000_000, `the worker copied the pages into the file (${sizePaused} then ${fileSize()} bytes)`);
      assert.equal(await setting(), 1000, 'the automatic checkpoints are back');
      assert.equal((await sql<{ n: number }>`select count(*) as n from domains`.execute(store.reader)).rows[0]!.n, 9000);
    });
  });
}
