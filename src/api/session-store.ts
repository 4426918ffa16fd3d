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
    const idHash = key(sessionId);
    const data = JSON.stringify(session);
    this.#onlyRolled(idHash, data, expires, now)
      .then((rolled) => (rolled ? undefined : writeSession(this.store.db, idHash, data, expires, now)))
      .then(
        () => this.#answer(() => callback()),
        (error: unknown) => this.#answer(() => callback(error)),
      );
  }

  /**
   * Whether the stored session differs from `data` only by an expiry moved
   * less than ROLL_STEP of the session's age. Sessions roll (every request of
   * a signed-in person saves its session with a later expiry), and a save is
   * a write: on SQLite it waited for the store's one writer, so every page
   * view waited behind an ingest's transaction (seconds, as a big report is
   * counted) though its reads do not. Such a save is skipped: the expiry is
   * moved in steps, and a session may end up to that step sooner.
   */
  async #onlyRolled(idHash: string, data: string, expires: Date, now: Date): Promise<boolean> {
    const stored = await readSession(this.store.reader, idHash, now);
    if (stored === undefined) return false;
    try {
      const before = JSON.parse(stored) as StoredSession;
      const after = JSON.parse(data) as StoredSession;
      const storedExpiry = before.cookie?.expires ? new Date(before.cookie.expires).getTime() : Number.NaN;
      const moved = expires.getTime() - storedExpiry;
      if (!(moved >= 0 && moved < this.maxAgeMs * ROLL_STEP)) return false;
      // @fastify/session keeps the expiry twice (expires, and originalExpires, which it checks).
      const withoutExpiry = (s: StoredSession) => JSON.stringify({ ...s, cookie: { ...s.cookie, expires: null, originalExpires: null } });
      return withoutExpiry(before) === withoutExpiry(after);
    } catch {
      return false;
    }
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

/** The part of a session's age by which its expiry must move before a rolling save is written. */
const ROLL_STEP = 1 / 20;

const key = (sessionId: string) => createHash('sha256').update(sessionId).digest('base64url');
