import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ConfigError, configSourceRules, loadDaemonConfig } from '../src/daemon/config.js';
import { MemoryDns } from '../src/engine/memory-dns.js';
import { runTick } from '../src/engine/tick.js';
import { enrollDomains } from '../src/fleet/index.js';
import { loadPlan } from '../src/plans/index.js';
import { ingestInput } from '../src/reports/index.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';
import { aggregateReportXml, cleanRow, unalignedEspRow } from './helpers/reports.js';

it('the config allowlist is validated at load and classes a source for the engine', async () => {
  const { dir, db } = tempStore();
  const file = join(dir, 'config.yaml');
  writeFileSync(file, `store: { sqlite: store.sqlite }\nallowlist:\n  - { source: 'dkim:mailer-esp.example' }\n  - { domain: Other.Example, source: 203.0.113.0/24, verdict: abuse }\n`);
  const config = loadDaemonConfig(file);
  assert.deepEqual(configSourceRules(config), [
    { domain: null, kind: 'dkim', value: 'mailer-esp.example', verdict: 'authorised' },
    { domain: 'other.example', kind: 'ip', value: '203.0.113.0/24', verdict: 'abuse' },
  ]);

  writeFileSync(file, `allowlist:\n  - { source: 'dkim:' }\n  - { domain: '*.x.example', source: 192.0.2.1 }\n`);
  assert.throws(() => loadDaemonConfig(file), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /allowlist\.0\.source: not an IP, CIDR, dkim:<domain> or spf:<domain>/);
    return true;
  });

  // The same ESP that holds a domain is authorised by the config rule alone.
  const store = await openSqliteStore(db);
  try {
    const plan = loadPlan('default');
    await enrollDomains(store, { inputs: [{ text: 'esp.example', origin: 'test' }], plan, provider: 'memory', actor: 'test', now: new Date('2026-01-01T00:00:00Z') });
    const dns = new MemoryDns();
    await runTick({ store, now: new Date('2026-01-01T12:00:00Z'), providerFor: () => dns });
    for (let d = 1; d <= 16; d++) {
      const day = new Date(Date.UTC(2026, 0, 1 + d)).toISOString().slice(0, 10);
      const xml = aggregateReportXml({ reporter: 'google.com', domain: 'esp.example', day, rows: [cleanRow('esp.example', '192.0.2.1', 4000), unalignedEspRow('esp.example', '198.51.100.7', 30, 'mailer-esp.example')] });
      await ingestInput(store.db, { bytes: Buffer.from(xml) }, `gen:${day}`, { rejectedDir: join(dir, 'rejected') });
    }
    const now = new Date('2026-01-18T12:00:00Z');
    const [held] = await runTick({ store, now, providerFor: () => dns, dryRun: true });
    assert.equal(held!.decision!.checks.find((c) => c.rule === 'unaligned-sender')!.outcome, 'failed');
    writeFileSync(join(dir, 'ok.yaml'), "allowlist:\n  - { source: 'dkim:mailer-esp.example' }\n");
    const rules = configSourceRules(loadDaemonConfig(join(dir, 'ok.yaml'), {}));
    const [moved] = await runTick({ store, now, providerFor: () => dns, sourceRules: rules });
    assert.equal(moved!.decision!.action, 'advance', moved!.decision!.summary);
  } finally {
    await store.close();
  }
});
