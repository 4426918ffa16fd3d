/**
 * The summary reads what happened in its period through indexes: the stage
 * changes and the notification events grow with the fleet's history, and a
 * statement scanning either holds SQLite's one connection (and the daemon's
 * event loop) for its length, every summary. Each statement buildSummary()
 * runs on a SQLite store is captured and explained; none may scan those
 * tables or sort them in a temporary B-tree (grouping the period's own
 * events by type in one is fine: that is the period, not the history).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { buildSummary } from '../src/notify/summary.js';
import { openSqliteStore } from '../src/store/open.js';
import { tempStore } from './helpers/cli.js';

/** The SQL of every statement better-sqlite3 runs while `fn` runs. */
async function statementsOf(fn: () => Promise<unknown>): Promise<string[]> {
  const proto = Object.getPrototypeOf(new Database(':memory:').prepare('select 1')) as Record<string, (...args: unknown[]) => unknown>;
  const seen: string[] = [];
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const name of ['all', 'get', 'run', 'iterate']) {
    const original = proto[name]!;
    originals.set(name, original);
    proto[name] = function (this: { source: string }, ...args: unknown[]) {
      seen.push(this.source);
      return original.apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [name, original] of originals) proto[name] = original;
  }
  return seen;
}

describe('the summary reads its period by index', () => {
  it('no statement scans stage_history or notification_events', async () => {
    const { db } = tempStore();
    const store = await openSqliteStore(db);
    const now = new Date('2026-05-06T12:00:00Z');
    try {
      const statements = await statementsOf(() => buildSummary(store, now, 7 * 86_400_000));
      const explain = new Database(db, { readonly: true });
      try {
        const plans = statements
          .filter((s) => /\b(stage_history|notification_events)\b/.test(s))
          .map((s) => ({ sql: s, plan: (explain.prepare(`explain query plan ${s}`).all(...Array((s.match(/\?/g) ?? []).length).fill(null)) as Array<{ detail: string }>).map((r) => r.detail) }));
        assert.ok(plans.some((p) => p.sql.includes('stage_history')) && plans.some((p) => p.sql.includes('notification_events')), 'both tables are read');
        for (const p of plans) {
          assert.ok(!p.plan.some((d) => /^SCAN (stage_history|notification_events)\b/.test(d) || /TEMP B-TREE FOR ORDER BY/.test(d)), `${p.sql}\n${p.plan.join('\n')}`);
        }
      } finally {
        explain.close();
      }
    } finally {
      await store.close();
    }
  });
});
