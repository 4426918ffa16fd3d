/**
 * Opening a SQLite store that is already migrated skips the migrator (its
 * lock table and reads), so each command starts sooner; a store an older
 * version left, or a new migration, still goes through it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { CodeMigrationProvider } from '../src/store/migrations.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';

const userVersion = (file: string) => {
  const db = new Database(file);
  try {
    return db.pragma('user_version', { simple: true });
  } finally {
    db.close();
  }
};

test('user_version counts the migrations that ran; an up-to-date store is opened without the migrator', async () => {
  const { dir, db: file } = tempStore();
  const latest = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations()).length;
  await (await openSqliteStore(file)).close();
  assert.equal(userVersion(file), latest);

  // Were the migrator to run now, it would find no record of what ran and apply every migration
  // again onto tables that exist, and fail: opening works only because it is skipped.
  const raw = new Database(file);
  raw.exec('ALTER TABLE kysely_migration RENAME TO kysely_migration_hidden');
  raw.close();
  const store = await openSqliteStore(file);
  assert.deepEqual(await store.db.selectFrom('domains').selectAll().execute(), []);
  await store.close();

  // A store an older version migrated (user_version 0, every migration recorded) goes through the migrator once.
  const older = new Database(file);
  older.exec('ALTER TABLE kysely_migration_hidden RENAME TO kysely_migration');
  older.pragma('user_version = 0');
  older.close();
  await (await openSqliteStore(file)).close();
  assert.equal(userVersion(file), latest);
  rmSync(dir, { recursive: true, force: true });
});
