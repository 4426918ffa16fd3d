/**
 * The web page as a browser without JavaScript uses it: fetch a form (its
 * session cookie and CSRF token), post it, do not follow the redirect.
 */

/** Posts an HTML form the way a browser does, without following the redirect. */
export const postForm = (url: string, path: string, cookie: string, fields: Record<string, string>) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });

export const csrfOf = (page: string) => /name="_csrf" value="([^"]+)"/.exec(page)![1]!;

/** Signs in through the page: fetch the form (its cookie and CSRF token), then post the token. */
export async function formSignIn(url: string, token: string, next = '/') {
  const login = await fetch(`${url}/login`);
  const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
  const csrf = csrfOf(await login.text());
  const res = await postForm(url, '/ui/login', cookie, { token, _csrf: csrf, next });
  return { res, cookie, csrf, session: res.headers.get('set-cookie')?.split(';')[0] };
}
