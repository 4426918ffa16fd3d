/**
 * What each DMARC tag may hold, for receivers of RFC 7489 and of RFC 9989.
 * A value both kinds would reject is an error; a tag one kind ignores
 * (the historic `pct`, `rf`, `ri`, or a tag neither knows) is a warning.
 */
import { policyFromTagValue } from './policy.js';
import { error, warning, type RecordProblem } from './problem.js';
import { uriListProblems } from './uri.js';

/** Tags RFC 9989 defines. */
export const RFC9989_TAGS: readonly string[] = ['v', 'p', 'sp', 'np', 'psd', 't', 'adkim', 'aspf', 'fo', 'rua', 'ruf'];

/** Tags RFC 7489 defined that RFC 9989 made historic: RFC 7489 receivers still read them. */
export const HISTORIC_TAGS: readonly string[] = ['pct', 'rf', 'ri'];

const FO = /^[01ds](?:[ \t]*:[ \t]*[01ds])*$/i;
const RF = /^[A-Za-z0-9-]+(?::[A-Za-z0-9-]+)*$/;

/**
 * `fo` as RFC 9989 reads it: each option once, and not both 0 (report when
 * every mechanism fails) and 1 (when any fails), which contradict each other.
 * RFC 7489's grammar allowed any list, so such a value is a warning, not an
 * error: RFC 7489 receivers take it, RFC 9989 ones may set it aside.
 */
function foRfc9989Problems(value: string): RecordProblem[] {
  const options = value.split(':').map((o) => o.trim().toLowerCase());
  const repeated = [...new Set(options.filter((o, i) => options.indexOf(o) !== i))];
  const problems: RecordProblem[] = [];
  if (repeated.length > 0) {
    problems.push(warning('fo-rfc9989', 'fo', `fo=${value} names ${repeated.join(', ')} more than once; RFC 9989 lists each option once (RFC 7489 receivers accepted it)`));
  }
  if (options.includes('0') && options.includes('1')) {
    problems.push(warning('fo-rfc9989', 'fo', `fo=${value} asks for both 0 (report when every mechanism fails) and 1 (when any fails); RFC 9989 takes one of them, so write fo=1 (RFC 7489 receivers accepted both)`));
  }
  return problems;
}

/**
 * The problems of one tag's value, judged alone. Problems that need the
 * whole record (position, duplicates, how pct and t combine) are found in
 * validate.ts. `v` is left to validate.ts too: where it stands matters more
 * than what it says.
 */
export function tagValueProblems(name: string, value: string): RecordProblem[] {
  // An empty value is reported once, by the parser; judging it again here would only repeat it.
  if (value === '') return [];
  switch (name) {
    case 'v':
      return [];
    case 'p':
    case 'sp':
    case 'np':
      return policyFromTagValue(value)
        ? []
        : [error('bad-policy', name, `${name}=${value} is not a policy: use none, quarantine or reject`)];
    case 'pct':
      return /^[0-9]{1,3}$/.test(value) && Number(value) <= 100
        ? []
        : [error('bad-pct', 'pct', `pct=${value} must be an integer from 0 to 100`)];
    case 't':
      return /^[yn]$/i.test(value) ? [] : [error('bad-flag', 't', `t=${value} must be y or n`)];
    case 'psd':
      return /^[ynu]$/i.test(value) ? [] : [error('bad-flag', 'psd', `psd=${value} must be y, n or u`)];
    case 'adkim':
    case 'aspf':
      return /^[rs]$/i.test(value)
        ? []
        : [error('bad-alignment', name, `${name}=${value} must be r (relaxed) or s (strict)`)];
    case 'fo':
      return FO.test(value)
        ? foRfc9989Problems(value)
        : [error('bad-fo', 'fo', `fo=${value} must be a colon-separated list of 0, 1, d and s (e.g. 1 or d:s)`)];
    case 'rua':
    case 'ruf':
      return uriListProblems(name, value);
    case 'rf':
      return [
        warning('historic-tag', 'rf', 'rf is historic in RFC 9989; only RFC 7489 receivers read it'),
        ...(RF.test(value) ? [] : [warning('historic-tag', 'rf', `rf=${value} is not a colon-separated list of report formats; RFC 7489 receivers will use afrf`)]),
      ];
    case 'ri':
      return [
        warning('historic-tag', 'ri', 'ri is historic in RFC 9989; only RFC 7489 receivers read it, and most send daily regardless'),
        ...(/^[0-9]{1,32}$/.test(value) ? [] : [warning('historic-tag', 'ri', `ri=${value} is not a number of seconds; RFC 7489 receivers will use 86400`)]),
      ];
    default:
      return [warning('unknown-tag', name, `${name} is not a DMARC tag; receivers ignore it`)];
  }
}
