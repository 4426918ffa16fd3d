/**
 * Limits counted in the store, so every instance on one database shares them:
 * with the count kept in each process, N replicas behind a balancer would let
 * N times the operator's limit through. A limit allows `limit` units per
 * subject (a client address, a reporter domain) in any window of `windowMs`.
 *
 * The window slides in tenths: a unit is counted in the slice (a tenth of
 * the window) it was taken in, and a slice counts while any part of it is
 * inside the window, so a unit is forgotten at most a tenth of the window
 * late and never early: no interval of `windowMs` ever holds more than
 * `limit`. Taking is atomic across instances: slices before the current one
 * no longer change, and the current slice is raised with one conditional
 * upsert (`INSERT … ON CONFLICT DO UPDATE … WHERE count + n <= allowance
 * RETURNING`, SQLite ≥ 3.35 and Postgres alike), so concurrent takers can
 * never pass the limit together. Slices past every window are pruned in
 * bounded batches (the daemon's heartbeat).
 */
import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** A limit: `limit` units per subject in any window of `windowMs`. */
export interface SharedLimit {
  /** The counter's name in the store (`sign-in`, `smtp-messages`, `reporter-records`). */
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface Taken {
  /** Whether the units were taken (counted); when false nothing was counted. */
  readonly allowed: boolean;
  /** Units counted in the window now (after taking, when allowed). */
  readonly used: number;
  /** When refused, how long until that many units fit again (0 when allowed). */
  readonly retryAfterMs: number;
}

const SLICES = 10;

const sliceMs = (limit: SharedLimit) => Math.max(1, Math.ceil(limit.windowMs / SLICES));

/** The key a subject is stored under: short ones as they are (an IP, a domain), a long one as its SHA-256, so a hostile name cannot grow the key. */
export function subjectKey(subject: string): string {
  return subject.length <= 200 ? subject : `sha256:${createHash('sha256').update(subject).digest('hex')}`;
}

interface Slice {
  start: number;
  count: number;
}

/** The slices of `subject` that count for the window ending at `t`, oldest first. */
async function slicesOf(db: Kysely<Database>, limit: SharedLimit, subject: string, t: number): Promise<Slice[]> {
  const rows = await db
    .selectFrom('limit_counters')
    .select(['window_start', 'count'])
    .where('name', '=', limit.name)
    .where('subject', '=', subject)
    .where('window_start', '>', t - limit.windowMs - sliceMs(limit))
    .orderBy('window_start')
    .execute();
  return rows.map((r) => ({ start: Number(r.window_start), count: Number(r.count) }));
}

/** How long from `t` until the window holds at most `limit - amount` of these slices' units. */
function retryAfter(limit: SharedLimit, slices: readonly Slice[], amount: number, t: number): number {
  if (amount > limit.limit) return limit.windowMs;
  let remaining = slices.reduce((n, s) => n + s.count, 0);
  for (const s of slices) {
    remaining -= s.count;
    if (remaining + amount <= limit.limit) return Math.max(1, s.start + sliceMs(limit) + limit.windowMs - t);
  }
  return 1;
}

/** What a subject has used, as read at one moment: `closed` (the slices before `slice`) cannot change any more. */
export interface LimitReading {
  readonly used: number;
  /** The start of the slice `now` was in. */
  readonly slice: number;
  /** Units in the window's slices before `slice`; valid as long as `now` stays in that slice. */
  readonly closed: number;
}

/** Units `subject` has used in the window ending at `now`, and how much of that is in closed slices. */
export async function readLimit(db: Kysely<Database>, limit: SharedLimit, subject: string, now: Date): Promise<LimitReading> {
  const t = now.getTime();
  const g = sliceMs(limit);
  const slice = Math.floor(t / g) * g;
  const slices = await slicesOf(db, limit, subjectKey(subject), t);
  return { used: slices.reduce((n, s) => n + s.count, 0), slice, closed: slices.filter((s) => s.start < slice).reduce((n, s) => n + s.count, 0) };
}

/** Units `subject` has used in the window ending at `now`. */
export async function usedOfLimit(db: Kysely<Database>, limit: SharedLimit, subject: string, now: Date): Promise<number> {
  return (await readLimit(db, limit, subject, now)).used;
}

/**
 * Takes `amount` units of `subject`'s limit at `now` if they fit, atomically
 * against every other instance on the store; takes nothing when they do not.
 * `earlier` (a reading of the same subject) saves reading the closed slices
 * again when `now` is still in the slice it was read in: one statement then.
 */
export async function takeFromLimit(db: Kysely<Database>, limit: SharedLimit, subject: string, amount: number, now: Date, earlier?: LimitReading): Promise<Taken> {
  const key = subjectKey(subject);
  const t = now.getTime();
  const g = sliceMs(limit);
  const current = Math.floor(t / g) * g;
  const closed = earlier && earlier.slice === current ? earlier.closed : (await readLimit(db, limit, subject, now)).closed;
  const allowance = limit.limit - closed;
  if (amount > 0 && amount <= allowance) {
    const raised = await db
      .insertInto('limit_counters')
      .values({ name: limit.name, subject: key, window_start: current, count: amount, expires_at: current + g + limit.windowMs })
      .onConflict((oc) =>
        oc
          .columns(['name', 'subject', 'window_start'])
          .doUpdateSet({ count: sql<number>`limit_counters.count + ${amount}` })
          .where(sql<boolean>`limit_counters.count + ${amount} <= ${allowance}`),
      )
      .returning('count')
      .executeTakeFirst();
    if (raised) return { allowed: true, used: closed + Number(raised.count), retryAfterMs: 0 };
  } else if (amount <= 0) {
    return { allowed: true, used: (await readLimit(db, limit, subject, now)).used, retryAfterMs: 0 };
  }
  // Refused: read the window again (another instance raised it meanwhile) to say how long to wait.
  const slices = await slicesOf(db, limit, key, t);
  return { allowed: false, used: slices.reduce((n, s) => n + s.count, 0), retryAfterMs: retryAfter(limit, slices, amount, t) };
}

/** Forgets everything `subject` used of the limit (a client that signed in). */
export async function clearLimit(db: Kysely<Database>, limit: SharedLimit, subject: string): Promise<void> {
  await db.deleteFrom('limit_counters').where('name', '=', limit.name).where('subject', '=', subjectKey(subject)).execute();
}

/** Deletes at most `max` slices that no window counts any more; returns how many went. */
export async function pruneLimitCounters(db: Kysely<Database>, now: Date, max = 1000): Promise<number> {
  const result = await db
    .deleteFrom('limit_counters')
    .where(({ eb, refTuple, selectFrom }) =>
      eb(
        refTuple('name', 'subject', 'window_start'),
        'in',
        selectFrom('limit_counters')
          .select(['name', 'subject', 'window_start'])
          .where('expires_at', '<=', now.getTime())
          .limit(max)
          .$asTuple('name', 'subject', 'window_start'),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
