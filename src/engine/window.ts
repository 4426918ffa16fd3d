/**
 * The stage window: which mail a stage is judged on. Mail sent before the
 * record change reached resolvers was judged under the old record, so the
 * window opens at the verified change plus the old record's TTL, rounded up to
 * the next whole UTC day because reports are daily.
 */

export const DAY_SECONDS = 86_400;
const DAY_MS = DAY_SECONDS * 1000;

/**
 * Start of the first whole UTC day at or after `verifiedAt + oldTtlSeconds`;
 * a change in effect within `graceSeconds` after a midnight opens that
 * midnight instead, so a change that lands just after a day starts is judged
 * from that day (its few minutes under the old record weigh less than a lost day).
 */
export function stageWindowStart(verifiedAt: Date, oldTtlSeconds: number, graceSeconds = 0): Date {
  const effective = verifiedAt.getTime() + Math.max(0, oldTtlSeconds) * 1000;
  const dayStart = Math.floor(effective / DAY_MS) * DAY_MS;
  if (effective - dayStart <= Math.max(0, graceSeconds) * 1000) return new Date(dayStart);
  return new Date(Math.ceil(effective / DAY_MS) * DAY_MS);
}

/** Where a resumed domain's fresh window opens: the next UTC midnight, so the days that broke it no longer count. */
export function freshWindowStart(now: Date): Date {
  return new Date(Math.floor(now.getTime() / DAY_MS) * DAY_MS + DAY_MS);
}

/** Start of the UTC day containing `at`. */
export function utcDayStart(at: Date): Date {
  return new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
}

/** Whole UTC days from `from` (a UTC midnight) to the start of the day containing `now`. */
export function wholeDaysBetween(from: Date, now: Date): number {
  return Math.max(0, Math.floor((utcDayStart(now).getTime() - from.getTime()) / DAY_MS));
}

/** The UTC days (as epoch-day numbers) a report range [begin, end] covers. Reports end at 23:59:59 or at the next midnight. */
export function daysCovered(begin: number, end: number): number[] {
  const first = Math.floor(begin / DAY_SECONDS);
  // An end exactly on midnight belongs to the day before (the range is inclusive of its last second or ends at the boundary).
  const last = Math.max(first, Math.ceil(end / DAY_SECONDS) - 1);
  const days: number[] = [];
  for (let d = first; d <= last && days.length < 366; d++) days.push(d);
  return days;
}

export function epochDayToIso(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}
