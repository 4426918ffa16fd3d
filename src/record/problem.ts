/**
 * The shape of everything that can be wrong with a record. Parsing,
 * validation and editing all report problems this way so a caller can print
 * them, serialise them or decide on them without knowing which step found them.
 */

/** `error` makes a record invalid (it is never written); `warning` does not. */
export type ProblemSeverity = 'error' | 'warning';

/**
 * A stable, machine-readable name for each kind of problem. The `reason`
 * text may be reworded; these names are part of the JSON output and are not.
 */
export type ProblemCode =
  | 'syntax'
  | 'bad-characters'
  | 'leading-space'
  | 'empty-segment'
  | 'empty-tag'
  | 'duplicate-tag'
  | 'missing-version'
  | 'misplaced-version'
  | 'bad-version'
  | 'missing-policy'
  | 'misplaced-policy'
  | 'bad-policy'
  | 'bad-pct'
  | 'bad-flag'
  | 'bad-alignment'
  | 'bad-fo'
  | 'fo-rfc9989'
  | 'bad-uri'
  | 'non-mailto-uri'
  | 'obsolete-size-limit'
  | 'historic-tag'
  | 'unknown-tag'
  | 'receivers-disagree'
  | 'too-long'
  | 'long-for-udp'
  | 'bad-stage'
  | 'bad-option';

/** One thing wrong with a record, and where. */
export interface RecordProblem {
  severity: ProblemSeverity;
  code: ProblemCode;
  /** The tag the problem is about (lowercase), or null when it concerns no single tag. */
  tag: string | null;
  /** What is wrong, in words a domain owner can act on. */
  reason: string;
}

/** Builds an `error` problem. */
export function error(code: ProblemCode, tag: string | null, reason: string): RecordProblem {
  return { severity: 'error', code, tag, reason };
}

/** Builds a `warning` problem. */
export function warning(code: ProblemCode, tag: string | null, reason: string): RecordProblem {
  return { severity: 'warning', code, tag, reason };
}

/** True when any problem is an error, i.e. the record it describes is invalid. */
export function hasErrors(problems: readonly RecordProblem[]): boolean {
  return problems.some((p) => p.severity === 'error');
}
