/**
 * The frame every page shares: document head, the navigation, who is signed
 * in with which role, the sign-out form and the one-line flash message left
 * by the last form post. Pages hand in their title and body; this returns the
 * whole document as a string ready to send as text/html.
 */
import { APP_CSS_PATH } from './assets.js';
import { html, type SafeHtml } from './html.js';

/** Who is looking at the page; the role decides whether action forms are shown. */
export interface PageUser {
  name: string;
  role: 'viewer' | 'operator';
}

/** What every signed-in page needs besides its own data. */
export interface PageContext {
  user: PageUser;
  /** Goes into every form as the hidden `_csrf` field. */
  csrfToken: string;
  /** One message from the previous request (post/redirect/get). */
  flash?: { kind: 'ok' | 'error'; text: string };
}

/** Which navigation entry is the current page. */
export type NavSection = 'fleet' | 'approvals' | 'audit' | 'notifications';

const NAV: Array<{ section: NavSection; href: string; label: string }> = [
  { section: 'fleet', href: '/', label: 'Fleet' },
  { section: 'approvals', href: '/approvals', label: 'Approvals' },
  { section: 'audit', href: '/audit', label: 'Audit log' },
  { section: 'notifications', href: '/notifications', label: 'Notifications' },
];

/** The hidden CSRF field every form carries; the routes check it on each post. */
export function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${token}">`;
}

/**
 * A whole document. With no context (signed out: the login and some error
 * pages) there is no navigation and no user block, since neither would work.
 */
export function renderLayout(opts: { title: string; ctx: PageContext | null; section?: NavSection; body: SafeHtml }): string {
  const { ctx } = opts;
  const header = ctx
    ? html`<header class="top">
<a class="brand" href="/">dmarc-rollout</a>
<nav aria-label="Main">${NAV.map(
        (n) => html`<a href="${n.href}"${n.section === opts.section ? html` aria-current="page"` : ''}>${n.label}</a>`,
      )}</nav>
<div class="user"><span>Signed in as <strong class="user-name">${ctx.user.name}</strong> (<span class="user-role">${ctx.user.role}</span>)</span>
<form method="post" action="/ui/logout">${csrfField(ctx.csrfToken)}<button type="submit" class="link">Log out</button></form></div>
</header>`
    : html`<header class="top"><span class="brand">dmarc-rollout</span></header>`;
  // The status region is always present (empty when there is nothing to say) so assistive tech knows where messages land.
  const flash = ctx?.flash
    ? html`<div id="flash" class="flash flash-${ctx.flash.kind === 'error' ? 'error' : 'ok'}" role="status">${ctx.flash.text}</div>`
    : html`<div id="flash" class="flash" role="status"></div>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${opts.title} · dmarc-rollout</title>
<link rel="stylesheet" href="${APP_CSS_PATH}">
</head>
<body>
${header}
<main id="main">
${flash}
${opts.body}
</main>
</body>
</html>
`.toString();
}
