/**
 * Caps that keep one hostile or broken input from taking the process down:
 * every decompression and parse step checks them as it streams, so a bomb is
 * refused after at most one cap's worth of work, never after expanding.
 */
export interface Limits {
  /** Decompressed XML bytes of one report (after every container is unpacked). */
  maxXmlBytes: number;
  /** Records (<record>) in one report. */
  maxRecords: number;
  /** Bytes of one mail, or of a zip that has to be held in memory (a zip inside a mail or a gzip). */
  maxBufferedBytes: number;
  /** Containers inside containers (gzip inside gzip inside zip ...). */
  maxNesting: number;
  /** Characters in one XML token (a text node, comment, attribute value, name). */
  maxTokenChars: number;
  /** Element nesting depth in the XML. */
  maxElementDepth: number;
  /** Attributes on one element. */
  maxAttributes: number;
  /**
   * Decompressed bytes per byte of input, past `expansionFloorBytes`: real
   * reports compress 10 to 50 times; a bomb of repeated rows or comments far
   * more. Counted over the whole input, so a small mail cannot become
   * hundreds of thousands of rows.
   */
  maxExpansionRatio: number;
  expansionFloorBytes: number;
  /** Characters of comments, processing instructions and text outside <feedback>: no report needs them, and they cost parsing time. */
  maxNonDataChars: number;
  /**
   * Messages one report may claim per day it covers. A receiver reports the
   * mail it saw; no reporter sees more than this for one domain in a day.
   * Keeps sums far inside exact integers (2^53) whatever reports claim.
   */
  maxMessagesPerDay: number;
}

/**
 * The defaults take any honest report up to 1 GiB of XML, read from a file
 * plain, gzipped or zipped: a record takes at least about 250 bytes, so even
 * a 400 MB report written compactly has at most 1.6 million records (under
 * maxRecords), and real reports compress 10 to 50 times (under
 * maxExpansionRatio). Two places hold bytes whole and are capped by
 * maxBufferedBytes: a mail (the report attachment is inside it) and a zip
 * that is not a file of its own (inside a gzip or a mail); a report that big
 * arrives as a file, or is saved from its mail and ingested as one. The
 * daemon also caps records per reporter and hour
 * (budget.records_per_reporter_per_hour, 200,000 by default): a reporter
 * whose reports are that big (400 MB of indented XML is about 550,000
 * records) needs it raised, or the report is kept as rejected with that
 * reason.
 */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxXmlBytes: 1024 * 1024 * 1024,
  maxRecords: 2_000_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxNesting: 4,
  maxTokenChars: 1024 * 1024,
  maxElementDepth: 32,
  maxAttributes: 64,
  maxExpansionRatio: 100,
  expansionFloorBytes: 8 * 1024 * 1024,
  maxNonDataChars: 1024 * 1024,
  maxMessagesPerDay: 1_000_000_000,
});

export function resolveLimits(partial: Partial<Limits> | undefined): Limits {
  return { ...DEFAULT_LIMITS, ...(partial ?? {}) };
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / (1024 * 1024 * 1024)).toFixed(n % (1024 * 1024 * 1024) ? 1 : 0)} GiB`;
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n % (1024 * 1024) ? 1 : 0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 ? 1 : 0)} KiB`;
  return `${n} bytes`;
}
