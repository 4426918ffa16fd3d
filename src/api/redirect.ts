/**
 * Where the page may send someone after sign-in: only a path on this site,
 * made of characters that are safe both in a Location header and to a
 * browser. Anything else becomes `/`. A CR or LF in a header value makes Node
 * throw while the reply is being sent; a tab, a backslash or a second slash is
 * read by browsers as another host (`/\evil`, `/<TAB>/evil`, `//evil`), and so
 * is each of them percent-encoded once or more.
 */

/** RFC 3986 path and query characters, without the backslash, spaces and controls. */
const SAFE = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
const MAX_LENGTH = 2048;

/** `next` if it is a same-site path of safe characters, else `/`. */
export function safeLocalPath(next: unknown): string {
  if (typeof next !== 'string' || next.length > MAX_LENGTH || !SAFE.test(next)) return '/';
  // Decode as often as a chain of decoders might, checking each form.
  let form = next;
  for (let round = 0; round < 4; round++) {
    if (!isSafeForm(form)) return '/';
    let decoded: string;
    try {
      decoded = decodeURIComponent(form);
    } catch {
      return '/';
    }
    if (decoded === form) return next;
    form = decoded;
  }
  // Still changing after four rounds of decoding: no real page address looks like that.
  return '/';
}

function isSafeForm(form: string): boolean {
  if (!form.startsWith('/')) return false;
  // Controls, whitespace, DEL and the backslash in any position; two slashes anywhere in the path.
  if (/[\u0000-\u0020\u007f-\u009f\\]/.test(form)) return false;
  const path = form.split('?')[0]!;
  return !path.includes('//');
}
