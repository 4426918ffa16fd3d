/**
 * Writing tags back as record text, in the one form this project publishes:
 * lowercase `name=value` pairs joined by `; `, no trailing separator.
 */
import type { RecordTag } from './parse.js';

/** Serialises `tags` in the order given. */
export function serializeRecord(tags: readonly RecordTag[]): string {
  return tags.map((tag) => `${tag.name.toLowerCase()}=${tag.value}`).join('; ');
}
