/**
 * Where page sessions live: in memory, each dropped at its expiry. The daemon
 * is one process with one instance lock, so memory is the whole truth; a
 * restart signs everyone out, which a page of operators can live with.
 * Session ids are kept hashed, so a heap dump holds no usable cookie.
 */
import { createHash } from 'node:crypto';
import type { SessionStore } from '@fastify/session';
import type { Session } from 'fastify';

type StoredSession = Session & { cookie?: { expires?: Date | string | null } };

export class ExpiringSessionStore implements SessionStore {
  private readonly sessions = new Map<string, { session: StoredSession; expiresAt: number }>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  set(sessionId: string, session: StoredSession, callback: (error?: unknown) => void): void {
    const expires = session.cookie?.expires ? new Date(session.cookie.expires).getTime() : this.now() + this.maxAgeMs;
    this.sessions.set(key(sessionId), { session, expiresAt: expires });
    this.prune();
    callback();
  }

  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    const entry = this.sessions.get(key(sessionId));
    if (!entry || entry.expiresAt <= this.now()) {
      this.sessions.delete(key(sessionId));
      callback(null, null);
      return;
    }
    callback(null, entry.session);
  }

  destroy(sessionId: string, callback: (error?: unknown) => void): void {
    this.sessions.delete(key(sessionId));
    callback();
  }

  get size(): number {
    return this.sessions.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, entry] of this.sessions) if (entry.expiresAt <= now) this.sessions.delete(id);
  }
}

const key = (sessionId: string) => createHash('sha256').update(sessionId).digest('base64url');
