/**
 * Validating a whole record: its form (parse.ts), each tag's value
 * (tags.ts), where `v` and `p` stand, how `pct` and `t` combine for the two
 * kinds of receiver, and whether DNS can carry it (length.ts). Every problem
 * is returned, not just the first, so an owner can fix a record in one pass.
 */
import { lengthProblems } from './length.js';
import { parseRecord, tagValue, type ParsedRecord } from './parse.js';
import { policyFromTagValue } from './policy.js';
import { error, warning, type RecordProblem } from './problem.js';
import { tagValueProblems } from './tags.js';

/** Every problem of `text` as a `_dmarc` record; it is valid when none is an `error`. */
export function validateRecord(text: string): RecordProblem[] {
  return validateParsed(text, parseRecord(text));
}

/** Like validateRecord, for a record the caller has already parsed. */
export function validateParsed(text: string, parsed: ParsedRecord): RecordProblem[] {
  const problems = [
    ...parsed.problems,
    ...structureProblems(text, parsed),
    ...parsed.tags.flatMap((tag) => tagValueProblems(tag.name, tag.value)),
    ...samplingProblems(parsed),
    ...lengthProblems(text),
  ];
  return unique(problems);
}

function structureProblems(text: string, { tags }: ParsedRecord): RecordProblem[] {
  const problems: RecordProblem[] = [];
  const vIndex = tags.findIndex((tag) => tag.name === 'v');
  if (vIndex < 0) {
    problems.push(error('missing-version', 'v', 'there is no v tag; a DMARC record must begin with v=DMARC1'));
  } else {
    // Receivers pick the DMARC record out of the TXT set by its first tag, so
    // junk before `v` hides the record as surely as `v` in the wrong place.
    if (vIndex !== 0 || !/^[ \t]*v[ \t]*=/i.test(text)) {
      problems.push(error('misplaced-version', 'v', 'v must be the first tag; receivers discard a record that does not begin with v=DMARC1'));
    }
    const version = tags[vIndex]!.value;
    if (version !== 'DMARC1') {
      problems.push(error('bad-version', 'v', `v=${version} is not a DMARC version; it must be exactly DMARC1`));
    }
  }
  const pIndex = tags.findIndex((tag) => tag.name === 'p');
  if (pIndex < 0) {
    problems.push(error('missing-policy', 'p', 'there is no p tag; add p=none, p=quarantine or p=reject right after v'));
  } else if (pIndex !== 1 && vIndex === 0) {
    problems.push(warning('misplaced-policy', 'p', 'p should come right after v; some RFC 7489 receivers require it there'));
  }
  return problems;
}

// pct is historic in RFC 9989 and t is unknown to RFC 7489, so a sampled stage
// needs both (`pct=N; t=y`): with only one of them the two kinds of receiver
// apply different policies to the same mail.
function samplingProblems({ tags }: ParsedRecord): RecordProblem[] {
  const policy = policyFromTagValue(tagValue(tags, 'p') ?? '');
  const pctText = tagValue(tags, 'pct');
  const pct = pctText !== undefined && /^[0-9]{1,3}$/.test(pctText) && Number(pctText) <= 100 ? Number(pctText) : null;
  const testing = (tagValue(tags, 't') ?? '').toLowerCase() === 'y';
  const enforcing = policy === 'quarantine' || policy === 'reject';
  const sampled = enforcing && pct !== null && pct < 100;
  if (sampled && !testing) {
    return [
      warning(
        'receivers-disagree',
        'pct',
        `pct=${pct} without t=y: RFC 9989 receivers ignore pct and apply p=${policy} to all failing mail`,
      ),
    ];
  }
  if (enforcing && testing && !sampled) {
    return [
      warning(
        'receivers-disagree',
        't',
        `t=y without a pct below 100: RFC 7489 receivers ignore t and apply p=${policy} to all failing mail, RFC 9989 receivers apply one level below`,
      ),
    ];
  }
  if (pctText !== undefined && pct !== null && !sampled) {
    return [warning('historic-tag', 'pct', `pct is historic in RFC 9989, and pct=${pct} changes nothing here; it can go`)];
  }
  return [];
}

function unique(problems: RecordProblem[]): RecordProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.severity}\u0000${problem.code}\u0000${problem.tag}\u0000${problem.reason}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
