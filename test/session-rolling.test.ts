/**
 * Page sessions roll: every request of a signed-in person saves the session
 * with a later expiry. A save is a write, and on SQLite a write waits for the
 * store's one writer (an ingest counting a big report holds it for seconds),
 * so a save that only moves the expiry by less than a twentieth of the
 * session's age is not written: a signed-in page view only reads. With the
 * real API server and session store on a SQLite file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Session } from 'fastify';
import { startApiServer, type RunningApiServer } from '../src/api/server.js';
import { PersistentSessionStore } from '../src/api/session-store.js';
import { generateToken } from '../src/api/tokens.js';
import { openSqliteStore, type Store } from '../src/store/open.js';
import { loopbackApiAccess } from './helpers/api-server.js';
import { tempStore } from './helpers/cli.js';
import { formSignIn } from './helpers/web.js';

const HOUR = 3_600_000;

describe('rolling page sessions', () => {
  let store: Store;
  before(async () => {
    store = await openSqliteStore(tempStore('dmarc-rollout-sessions-').db);
  });
  after(() => store?.close());

  const storedExpiry = async (id: string) => {
    const rows = await store.db.selectFrom('web_sessions').select(['expires_at', 'data']).execute();
    const row = rows.find((r) => r.data.includes(id));
    return row?.expires_at;
  };
  const save = (sessions: PersistentSessionStore, id: string, session: object) =>
    new Promise<void>((resolve, reject) => sessions.set(id, session as Session, (error) => (error ? reject(error as Error) : resolve())));

  it('writes a session, skips a save that only moves its expiry by less than a twentieth of its age, writes the rest', async () => {
    const sessions = new PersistentSessionStore(store, HOUR);
    const t0 = Date.now();
    const at = (ms: number) => ({ marker: 'person-1', principal: 'otto', cookie: { originalMaxAge: HOUR, expires: new Date(t0 + HOUR + ms).toISOString(), path: '/' } });
    await save(sessions, 'sid-1', at(0));
    const first = await storedExpiry('person-1');
    assert.equal(first, new Date(t0 + HOUR).toISOString());
    // A minute later: only the expiry moved, by less than 3 minutes of the hour.
    await save(sessions, 'sid-1', at(60_000));
    assert.equal(await storedExpiry('person-1'), first, 'not written');
    // Four minutes later: written.
    await save(sessions, 'sid-1', at(240_000));
    assert.equal(await storedExpiry('person-1'), new Date(t0 + HOUR + 240_000).toISOString());
    // Anything else changed: written at once.
    await save(sessions, 'sid-1', { ...at(250_000), principal: 'vera' });
    assert.equal(await storedExpiry('person-1'), new Date(t0 + HOUR + 250_000).toISOString());
  });

  it('a signed-in page view answers while a transaction holds the store (nothing of it writes)', async () => {
    const viewer = generateToken();
    const operator = generateToken();
    const server: RunningApiServer = await startApiServer({
      ...loopbackApiAccess(viewer, operator),
      context: { store, now: () => new Date(), loadPlan: () => { throw new Error('no plans here'); }, sourceRules: [], ingest: () => Promise.reject(new Error('no uploads here')) },
    });
    try {
      const { session } = await formSignIn(server.url, operator.token);
      assert.ok(session);
      const page = () => fetch(`${server.url}/audit`, { headers: { cookie: session } });
      assert.equal((await page()).status, 200);
      const trx = await store.db.startTransaction().execute();
      try {
        // Answered with the transaction open: a view that wrote would wait for its commit, and the race below would time out.
        const answered = await Promise.race([page().then((res) => res.status), new Promise((resolve) => setTimeout(() => resolve('still waiting after 20 s'), 20_000))]);
        assert.equal(answered, 200);
      } finally {
        await trx.rollback().execute();
      }
    } finally {
      await server.close();
    }
  });
});
