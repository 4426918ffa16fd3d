/**
 * Safe files: the folder source never follows a symbolic link or reads
 * outside its folder. The attack pass dropped a link to a secret into the
 * inbox and found the secret copied into rejected/ and its first bytes in the
 * stored reason; here the link is moved aside with its reason, the secret is
 * never read, and the real reports beside it are stored.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFolderSource } from '../src/daemon/sources/folder.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

const SECRET = 'pdns-api-key-0123456789abcdef-session-secret-material';

describe('the folder source and files it must not read', () => {
  let store: Store;
  let dir: string;
  before(async () => {
    const temp = tempStore('dmarc-rollout-files-');
    dir = temp.dir;
    store = await openSqliteStore(temp.db);
  });
  after(async () => store?.close());

  // Walked by hand without following links: readdirSync's `recursive` enters a
  // linked folder on Node 24 (not on 20), and the link moved aside into
  // rejected/ still points outside, where the secret is by design.
  const everyFileUnder = (root: string): string[] =>
    readdirSync(root, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? everyFileUnder(join(root, e.name)) : e.isFile() ? [join(root, e.name)] : [],
    );

  it('a symlink to a secret is moved aside unread; a linked folder is not entered; a FIFO does not block; reports beside them are stored', async () => {
    const inbox = join(dir, 'inbox');
    const outside = join(dir, 'outside');
    mkdirSync(inbox);
    mkdirSync(outside);
    writeFileSync(join(outside, 'provider.key'), SECRET);
    writeFileSync(join(outside, 'report.xml'), aggregateReportXml({ reporter: 'isp.example', domain: 'a.example', day: '2026-05-01', rows: [cleanRow('a.example', '192.0.2.9', 1)] }));
    symlinkSync(join(outside, 'provider.key'), join(inbox, 'report.xml.gz'));
    symlinkSync(outside, join(inbox, 'linked-folder'));
    execFileSync('mkfifo', [join(inbox, 'pipe.xml')]);
    writeFileSync(join(inbox, 'real.xml'), aggregateReportXml({ reporter: 'isp.example', domain: 'b.example', day: '2026-05-01', rows: [cleanRow('b.example', '192.0.2.10', 3)] }));

    const rejectedDir = join(dir, 'store-rejected');
    const source = createFolderSource({ type: 'folder', path: inbox, trusted: true });
    const summary = await source.poll((input, name) => ingestInput(store.db, input, name, { rejectedDir }));

    assert.equal(summary.delivered, 1, 'only the real report was read');
    assert.equal(summary.acknowledged, 1);
    const failures = summary.failed.map((f) => f.reason).join('\n');
    assert.match(failures, /report\.xml\.gz|symbolic link \(to .*provider\.key\) in the report folder: not followed, moved aside/);
    assert.match(failures, /symbolic link \(to .*outside\) in the report folder/);

    const reports = await store.db.selectFrom('reports').select('domain').execute();
    assert.deepEqual(reports.map((r) => r.domain), ['b.example'], 'the report in the linked folder was not read');
    const rejectedRows = await store.db.selectFrom('rejected_inputs').selectAll().execute();
    assert.equal(rejectedRows.length, 0, 'the secret was never ingested');
    for (const file of [...everyFileUnder(inbox), ...(existsSync(rejectedDir) ? everyFileUnder(rejectedDir) : [])]) {
      assert.ok(!readFileSync(file, 'utf8').includes(SECRET), `${file} holds the secret`);
    }
    // The link itself (not its target) is kept in rejected/ with its reason.
    const aside = readdirSync(join(inbox, 'rejected'));
    assert.ok(aside.some((f) => f.endsWith('report.xml.gz.reason.json')), aside.join(', '));
    assert.equal(readFileSync(join(outside, 'provider.key'), 'utf8'), SECRET, 'the target is untouched');
    assert.ok(existsSync(join(inbox, 'pipe.xml')), 'the FIFO is left alone');
  });
});
