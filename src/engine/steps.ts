/**
 * Long measurements in steps. The engine's measuring functions that walk a
 * domain's rows are generators that yield every STEP_ROWS rows: a point
 * where the work may pause, and nothing else (they stay pure: values in,
 * values out, no clock, no I/O). runSteps() runs them in one piece (a test,
 * the pure API); runInTurns() gives the event loop a turn at each pause, so
 * measuring a domain a 400 MB report gave 100,000 rollup entries (1.5 to
 * 2 s of CPU) never holds /healthz and the other requests for more than a
 * few milliseconds at a time. An ordinary domain (hundreds of entries)
 * reaches no pause at all.
 */

/** A measurement that pauses (yields) between bounded steps and returns T. */
export type Steps<T> = Generator<void, T, undefined>;

/** Rows a step walks at most before a pause: a few milliseconds of the engine's slowest pass. */
export const STEP_ROWS = 1_000;

/** A counter for a generator's loop: true every STEP_ROWS calls (`if (pause()) yield;`). */
export function pacer(every = STEP_ROWS): () => boolean {
  let n = 0;
  return () => ++n % every === 0;
}

/** Runs a measurement through in one piece. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Runs a measurement with a turn of the event loop (setImmediate) at each of its pauses. */
export async function runInTurns<T>(steps: Steps<T>): Promise<T> {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Sorts `items` in place as Array#sort does (stable: equal items keep their
 * order), in steps: runs of STEP_ROWS sorted, then merged, with a pause
 * every STEP_ROWS items placed. Sorting a domain's 100,000 sources by volume
 * and key was one piece of 70 to 170 ms.
 */
export function* sortInSteps<T>(items: T[], compare: (a: T, b: T) => number): Steps<T[]> {
  if (items.length <= STEP_ROWS) return items.sort(compare);
  for (let i = 0; i < items.length; i += STEP_ROWS) {
    const run = items.slice(i, i + STEP_ROWS).sort(compare);
    for (let k = 0; k < run.length; k++) items[i + k] = run[k]!;
    yield;
  }
  let from = items;
  let to = new Array<T>(items.length);
  const pause = pacer();
  for (let width = STEP_ROWS; width < items.length; width *= 2) {
    for (let left = 0; left < items.length; left += 2 * width) {
      const middle = Math.min(left + width, items.length);
      const end = Math.min(left + 2 * width, items.length);
      let a = left;
      let b = middle;
      for (let out = left; out < end; out++) {
        // The left run's item first on a tie: the order Array#sort keeps.
        to[out] = b >= end || (a < middle && compare(from[a]!, from[b]!) <= 0) ? from[a++]! : from[b++]!;
        if (pause()) yield;
      }
    }
    [from, to] = [to, from];
  }
  if (from !== items) for (let i = 0; i < items.length; i++) items[i] = from[i]!;
  return items;
}
