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
  readonly #onCallbackError: (error: unknown) => void;
  private readonly now: () => Date;

  constructor(
    private readonly store: Store,
    private readonly maxAgeMs: number,
    opts: { now?: () => Date; onCallbackError?: (error: unknown) => void } = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.#onCallbackError = opts.onCallbackError ?? (() => {});
  }

  /**
   * Calls the session plugin back outside the store's promise: the callback
   * goes on to write the reply, and whatever it throws there would otherwise
   * become an unhandled rejection, which ends a Node process.
   */
  #answer(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.#onCallbackError(error);
    }
  }

  set(sessionId: string, session: StoredSession, callback: (error?: unknown) => void): void {
    const now = this.now();
    const cookieExpiry = session.cookie?.expires ? new Date(session.cookie.expires) : null;
    const expires = cookieExpiry && !Number.isNaN(cookieExpiry.getTime()) ? cookieExpiry : new Date(now.getTime() + this.maxAgeMs);
    writeSession(this.store.db, key(sessionId), JSON.stringify(session), expires, now).then(
      () => this.#answer(() => callback()),
      (error: unknown) => this.#answer(() => callback(error)),
    );
  }

  get(sessionId: string, callback: (error: unknown, session?: Session | null) => void): void {
    readSession(this.store.reader, key(sessionId), this.now()).then(
      (data) => {
        let session: Session | null = null;
        try {
          session = data === undefined ? null : (JSON.parse(data) as Session);
        } catch {
          // A row that is not JSON is no session: the visitor signs in again.
        }
        this.#answer(() => callback(null, session));
      },
      (error: unknown) => this.#answer(() => callback(error)),
    );
  }

  destroy(sessionId: string, callback: (error?: unknown) => void): void {
    deleteSession(this.store.db, key(sessionId)).then(
      () => this.#answer(() => callback()),
      (error: unknown) => this.#answer(() => callback(error)),
    );
  }
}

const key = (sessionId: string) => createHash('sha256').update(sessionId).digest('base64url');
