/**
 * Where page sessions live: in the store, so a restart of the daemon (an
 * upgrade, a moved pod) does not sign everyone out. Session ids are kept only
 * as their SHA-256, so the database holds no cookie anyone could replay.
 */
import { createHash } from 'node:crypto';
import type { SessionStore } from '@fastify/session';
import type { Session } from 'fastify';
import { deleteSession, readSession, writeSession } from '../store/sessions.js';
import type { Store } from '../store/open.js';

type StoredSession = Session & { cookie?: { expires?: Date | string | null } };

export class PersistentSessionStore implements SessionStore {
  constructor(
    private readonly store: Store,
    private readonly maxAgeMs: number,
    private readonly now: () => Date = () => new Date(),
  ) {}

  set(sessionId: string, session: StoredSession, callback: (error?: unknown) => void): void {
    const now = this.now();
    const cookieExpiry = session.cookie?.expires ? new Date(session.cookie.expires) : null;
    const expires = cookieExpiry && !Number.isNaN(cookieExpiry.getTime()) ? cookieExpiry : new Date(now.getTime() + this.maxAgeMs);
    writeSession(this.store.db, key(sessionId), JSON.stringify(session), expires, now).then(() => callback(), callback);
  }

  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    readSession(this.store.db, key(sessionId), this.now()).then(
      (data) => callback(null, data === undefined ? null : (JSON.parse(data) as Session)),
      (error: unknown) => callback(error),
    );
  }

  destroy(sessionId: string, callback: (error?: unknown) => void): void {
    deleteSession(this.store.db, key(sessionId)).then(() => callback(), callback);
  }
}

const key = (sessionId: string) => createHash('sha256').update(sessionId).digest('base64url');
