/**
 * Store.reader, on both stores: a read through it answers while a
 * transaction is open on the store's writing side, and sees what was
 * committed (never the open transaction's writes); a write or a transaction
 * given to it is done as on `db`, in its turn. On SQLite the reader is a
 * second, read-only connection; on Postgres it is the pool, whose other
 * connections read while one is in a transaction.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { getDomain } from '../src/store/domains.js';
import { openSqliteStore } from '../src/store/open.js';
import { domainRow as row } from './helpers/domain-rows.js';
import { storeDialects } from './helpers/dialects.js';

const domainRow = (domain: string) => row(domain, new Date('2026-06-15T12:00:00Z'));

for (const dialect of storeDialects()) {
  describe(`Store.reader (${dialect.name})`, () => {
    it('reads the last committed state while a transaction is open on db, and writes in its turn', async () => {
      const store = await dialect.open();
      after(() => store.close());
      await store.db.insertInto('domains').values(domainRow('before.example')).execute();
      const trx = await store.db.startTransaction().execute();
      let committed = false;
      try {
        await trx.insertInto('domains').values(domainRow('inside.example')).execute();
        // Answers now, with the transaction still open: it sees the committed row and not the open transaction's.
        assert.ok(await getDomain(store.reader, 'before.example'));
        assert.equal(await getDomain(store.reader, 'inside.example'), undefined);
        // A write given to the reader waits for the open transaction, then is done.
        const write = store.reader
          .insertInto('domains')
          .values(domainRow('written.example'))
          .execute()
          .then(() => committed);
        await new Promise((resolve) => setTimeout(resolve, 50));
        await trx.commit().execute();
        committed = true;
        assert.equal(await write, dialect.name === 'sqlite', 'on SQLite the write waited for the commit (one writer); on Postgres it did not need to');
      } finally {
        if (!committed) await trx.rollback().execute();
      }
      assert.ok(await getDomain(store.reader, 'inside.example'), 'the committed transaction is seen once committed');
      assert.ok(await getDomain(store.db, 'written.example'));
      // A transaction through the reader reads its own writes, and is rolled back whole.
      await assert.rejects(
        store.reader.transaction().execute(async (t) => {
          await t.insertInto('domains').values(domainRow('rolled-back.example')).execute();
          assert.ok(await getDomain(t, 'rolled-back.example'));
          throw new Error('take it back');
        }),
        /take it back/,
      );
      assert.equal(await getDomain(store.reader, 'rolled-back.example'), undefined);
    });
  });
}

describe('Store.reader on an in-memory SQLite store', () => {
  it('is the store itself (a second connection to :memory: would be another database)', async () => {
    const store = await openSqliteStore(':memory:');
    try {
      assert.equal(store.reader, store.db);
      await store.db.insertInto('domains').values(domainRow('memory.example')).execute();
      assert.ok(await getDomain(store.reader, 'memory.example'));
    } finally {
      await store.close();
    }
  });
});
