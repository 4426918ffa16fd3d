/**
 * Reading a `_dmarc` TXT record into its tags, in the order written. Only
 * problems of form are found here (junk between separators, duplicates,
 * characters no DMARC value may hold); what the values mean is validate.ts's job.
 */
import { error, warning, type RecordProblem } from './problem.js';

/** One `name=value` pair of a record. */
export interface RecordTag {
  /** The tag name, lowercased: DMARC tag names are case-insensitive. */
  name: string;
  /** The value as written, without the whitespace around it. */
  value: string;
}

/** A record split into its tags, and what was wrong with its form. */
export interface ParsedRecord {
  /** Every well-formed tag, in the order written, duplicates included. */
  tags: RecordTag[];
  /** Problems of form; segments that are not `name=value` are reported here and left out of `tags`. */
  problems: RecordProblem[];
}

// RFC 7489 §6.4: `dmarc-sep = *WSP %x3b *WSP`, and WSP is space or tab.
const WSP_AROUND = /^[ \t]+|[ \t]+$/g;
// RFC 9989 names are a letter then letters, digits or `_`; a `-` is let through
// too, as an unknown tag, because receivers ignore such a tag and an owner's
// `x-note=...` should survive a rollout rather than stop it.
const TAG_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
// Values are printable ASCII other than `;` (RFC 9989's tag-value grammar);
// anything else cannot be meant and would be read differently by different receivers.
const VALUE_CHARS = /^[\x20-\x3a\x3c-\x7e]*$/;

/** Splits `text` into tags and reports problems of form. Never throws. */
export function parseRecord(text: string): ParsedRecord {
  const tags: RecordTag[] = [];
  const problems: RecordProblem[] = [];
  if (/^\s/.test(text)) {
    problems.push(
      error('leading-space', null, 'the record starts with whitespace; receivers keep only records that begin with "v=DMARC1"'),
    );
  }
  const segments = text.split(';');
  const seen = new Set<string>();
  segments.forEach((segment, index) => {
    const trimmed = segment.replace(WSP_AROUND, '');
    if (trimmed === '') {
      // A single trailing `;` is allowed by the grammar; a whitespace-only record is simply empty.
      const last = index === segments.length - 1;
      if (!last && segments.length > 1) {
        problems.push(warning('empty-segment', null, `empty segment between separators at position ${index + 1} (";;")`));
      }
      return;
    }
    const eq = trimmed.indexOf('=');
    if (eq < 0) {
      problems.push(error('syntax', null, `"${trimmed}" is not a tag=value pair`));
      return;
    }
    const rawName = trimmed.slice(0, eq).replace(WSP_AROUND, '');
    const value = trimmed.slice(eq + 1).replace(WSP_AROUND, '');
    if (!TAG_NAME.test(rawName)) {
      problems.push(
        error('syntax', null, `"${trimmed}" does not start with a tag name (a letter, then letters, digits, "_" or "-")`),
      );
      return;
    }
    const name = rawName.toLowerCase();
    if (!VALUE_CHARS.test(value)) {
      problems.push(error('bad-characters', name, `${name} holds characters other than printable ASCII`));
    }
    if (value === '') problems.push(error('empty-tag', name, `${name} has an empty value`));
    if (seen.has(name)) {
      problems.push(error('duplicate-tag', name, `${name} appears more than once; receivers disagree on which one counts`));
    }
    seen.add(name);
    tags.push({ name, value });
  });
  return { tags, problems };
}

/** The value of the first tag called `name` (lowercase), or undefined. */
export function tagValue(tags: readonly RecordTag[], name: string): string | undefined {
  return tags.find((tag) => tag.name === name)?.value;
}

/**
 * Whether a TXT string is a DMARC record at all: it starts with `v=DMARC1`
 * (RFC 7489 §6.6.3: other TXT records at `_dmarc` are ignored by receivers,
 * and must be left alone by us).
 */
export function isDmarcRecord(txt: string): boolean {
  return /^v\s*=\s*DMARC1\s*(;|$)/i.test(txt.trim());
}

/** The DMARC records among a name's TXT strings, trimmed. */
export function dmarcRecordsOf(txt: readonly string[]): string[] {
  return txt.filter(isDmarcRecord).map((t) => t.trim());
}
