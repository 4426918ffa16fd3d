/**
 * The `rua` and `ruf` values: comma-separated report URIs, each optionally
 * followed by a `!size` limit. Only `mailto:` is accepted, because a rollout
 * is judged on the aggregate reports that come back and receivers deliver
 * reports by mail only; any other scheme silently means no reports.
 */
import { error, hasErrors, warning, type RecordProblem } from './problem.js';

// RFC 7489 §6.4: `dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]`,
// and a literal `!` or `,` inside the URI must be percent-encoded, so the last
// `!` always starts the size suffix.
const SIZE = /^[0-9]+[kmgt]?$/i;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const LOCAL_PART = /^(?:[A-Za-z0-9#$&'*+/=^_`{|}~.-]|%[0-9A-Fa-f]{2})+$/;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})+$`);
const QUERY = /^(?:[A-Za-z0-9\-._~$&'()*+=:@/?]|%[0-9A-Fa-f]{2})*$/;

/** The problems of one `rua`/`ruf` value; no errors when every URI in it is a usable `mailto:`. */
export function uriListProblems(tag: string, value: string): RecordProblem[] {
  const problems: RecordProblem[] = [];
  const entries = value.split(',').map((entry) => entry.replace(/^[ \t]+|[ \t]+$/g, ''));
  entries.forEach((entry, index) => {
    const where = entries.length > 1 ? `${tag} URI ${index + 1}` : tag;
    if (entry === '') {
      problems.push(error('bad-uri', tag, `${where} is empty (stray comma?)`));
      return;
    }
    const bang = entry.lastIndexOf('!');
    const uri = bang < 0 ? entry : entry.slice(0, bang);
    if (bang >= 0) {
      const size = entry.slice(bang + 1);
      if (!SIZE.test(size)) {
        problems.push(
          error('bad-uri', tag, `${where}: size limit "!${size}" must be digits with an optional k, m, g or t (e.g. !10m)`),
        );
      } else {
        problems.push(
          warning('obsolete-size-limit', tag, `${where}: the "!${size}" size limit is ignored by RFC 9989 receivers`),
        );
      }
    }
    const reason = mailtoProblem(uri);
    if (reason) problems.push(error(reason.code, tag, `${where}: ${reason.text}`));
  });
  return problems;
}

/** True when `value` holds at least one URI a receiver could send reports to. */
export function hasUsableUri(value: string): boolean {
  return value.split(',').some((entry) => !hasErrors(uriListProblems('rua', entry)));
}

function mailtoProblem(uri: string): { code: 'bad-uri' | 'non-mailto-uri'; text: string } | null {
  const scheme = SCHEME.exec(uri);
  if (!scheme) return { code: 'bad-uri', text: `"${uri}" is not a URI (expected mailto:address@example.com)` };
  if (scheme[1]!.toLowerCase() !== 'mailto') {
    return { code: 'non-mailto-uri', text: `"${uri}" is not a mailto: URI; receivers send reports by mail only` };
  }
  const rest = uri.slice(scheme[0].length);
  const question = rest.indexOf('?');
  const address = question < 0 ? rest : rest.slice(0, question);
  const query = question < 0 ? '' : rest.slice(question + 1);
  const at = address.lastIndexOf('@');
  if (at < 0) return { code: 'bad-uri', text: `"${uri}" has no address (expected mailto:address@example.com)` };
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!LOCAL_PART.test(local)) return { code: 'bad-uri', text: `"${uri}" has an invalid local part "${local}"` };
  if (!HOSTNAME.test(domain)) return { code: 'bad-uri', text: `"${uri}" has an invalid domain "${domain}"` };
  if (!QUERY.test(query)) return { code: 'bad-uri', text: `"${uri}" has invalid characters after "?"` };
  return null;
}

/** The addresses of the usable `mailto:` URIs in a `rua`/`ruf` value, lowercased, size suffixes and queries dropped. */
export function mailtoAddresses(value: string): string[] {
  const addresses: string[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '' || hasErrors(uriListProblems('rua', entry))) continue;
    const bang = entry.lastIndexOf('!');
    const uri = bang < 0 ? entry : entry.slice(0, bang);
    const address = decodeURIComponent(uri.replace(SCHEME, '').split('?')[0]!);
    addresses.push(address.toLowerCase());
  }
  return addresses;
}
