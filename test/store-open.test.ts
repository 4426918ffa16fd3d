/**
 * Opening a SQLite store that is already migrated skips the migrator (its
 * lock table and reads), so each command starts sooner; a store an older
 * version left, or a new migration, still goes through it. Processes that
 * open a new store at the same moment migrate it once between them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { CodeMigrationProvider } from '../src/store/migrations.js';
import { openSqliteStore } from '../src/store/open.js';
import { REPO_ROOT, tempStore } from './helpers/cli.js';

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

test('processes opening a new store at the same moment all succeed, and it is migrated once', async () => {
  // Separate processes, because the race is between connections of different processes: kysely's
  // migration lock does nothing across them, and each migration used to run outside a transaction,
  // so a CLI command started beside a daemon's first start failed with "duplicate column name".
  const { dir, db } = tempStore();
  try {
    const script = join(dir, 'open.mts');
    const openModule = pathToFileURL(join(REPO_ROOT, 'src/store/open.ts')).href;
    writeFileSync(script, `import { openSqliteStore } from ${JSON.stringify(openModule)};\nconst s = await openSqliteStore(process.argv[2]);\nawait s.close();\n`);
    const openOnce = () =>
      new Promise<{ code: number; stderr: string }>((done) => {
        execFile(process.execPath, ['--import', 'tsx', script, db], { cwd: REPO_ROOT }, (error, _stdout, stderr) => {
          done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr });
        });
      });
    const runs = await Promise.all(Array.from({ length: 6 }, openOnce));
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const latest = Object.keys(await new CodeMigrationProvider('sqlite').getMigrations()).length;
    assert.equal(userVersion(db), latest);
    const check = new Database(db);
    try {
      const names = check.prepare('select name from kysely_migration').all() as Array<{ name: string }>;
      assert.equal(names.length, latest, 'each migration recorded once');
      assert.equal(new Set(names.map((n) => n.name)).size, latest);
    } finally {
      check.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
