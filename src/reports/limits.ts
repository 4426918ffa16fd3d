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
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxXmlBytes: 1024 * 1024 * 1024,
  maxRecords: 2_000_000,
  maxBufferedBytes: 64 * 1024 * 1024,
  maxNesting: 4,
  maxTokenChars: 1024 * 1024,
  maxElementDepth: 32,
  maxAttributes: 64,
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
