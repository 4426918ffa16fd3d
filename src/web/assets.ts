/**
 * The web page's stylesheet, served by the daemon itself at `/assets/app.css`.
 * Nothing is loaded from elsewhere (no CDN, no web fonts): the daemon runs on
 * private networks and a page that phones out would leak who looks at what.
 * The pages need no JavaScript; every action is a plain form post.
 */

/** Where the layout links the stylesheet; the route serving APP_CSS must use this path. */
export const APP_CSS_PATH = '/assets/app.css';

/** The whole stylesheet. Served as `text/css; charset=utf-8`. */
export const APP_CSS = `
:root {
  --fg: #1f2328;
  --muted: #59636e;
  --line: #d1d9e0;
  --bg: #ffffff;
  --bg-soft: #f6f8fa;
  --link: #0969da;
  --active: #1a7f37;
  --active-bg: #dafbe1;
  --paused: #59636e;
  --paused-bg: #eaeef2;
  --halted: #cf222e;
  --halted-bg: #ffebe9;
  --completed: #0969da;
  --completed-bg: #ddf4ff;
  --attention: #9a6700;
  --attention-bg: #fff8c5;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; font-size: 15px; line-height: 1.45; color: var(--fg); background: var(--bg); }
body { margin: 0; }
a { color: var(--link); }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible { outline: 2px solid var(--link); outline-offset: 2px; }
code, pre, .mono { font-family: var(--mono); font-size: 0.9em; }
h1 { font-size: 1.5rem; margin: 0.2em 0 0.4em; overflow-wrap: anywhere; }
h2 { font-size: 1.15rem; margin: 1.6em 0 0.5em; }
h3 { font-size: 1rem; margin: 1.2em 0 0.4em; }
.muted { color: var(--muted); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }

/* Header and navigation */
.top { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.5rem; padding: 0.6rem 1.25rem; border-bottom: 1px solid var(--line); background: var(--bg-soft); }
.brand { font-weight: 600; color: var(--fg); text-decoration: none; }
.top nav { display: flex; gap: 1rem; flex-wrap: wrap; }
.top nav a { text-decoration: none; padding: 0.15rem 0; }
.top nav a[aria-current="page"] { font-weight: 600; border-bottom: 2px solid var(--link); }
.user { margin-left: auto; display: flex; align-items: center; gap: 0.6rem; color: var(--muted); }
.user form { margin: 0; }
main { max-width: 78rem; margin: 0 auto; padding: 1rem 1.25rem 3rem; }

/* Flash messages */
.flash { padding: 0.6rem 0.9rem; border-radius: 6px; margin: 0 0 1rem; border: 1px solid transparent; }
.flash:empty { display: none; }
.flash-ok { background: var(--active-bg); border-color: var(--active); }
.flash-error { background: var(--halted-bg); border-color: var(--halted); }

/* Tables: readable first, dense second */
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.4rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--bg-soft); white-space: nowrap; }
tbody tr:hover { background: var(--bg-soft); }
td.num, th.num { text-align: right; white-space: nowrap; }
/* break-word, not anywhere: long names still wrap, but a column is never squeezed to split a short domain mid-word */
td.key, td.domain { overflow-wrap: break-word; }
.stage { white-space: nowrap; }
table.sources th:first-child { width: 45%; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; margin: 0.5rem 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }

/* State and attention badges */
.state, .badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 999px; font-size: 0.85em; font-weight: 600; white-space: nowrap; border: 1px solid currentColor; }
.state-active { color: var(--active); background: var(--active-bg); }
.state-paused { color: var(--paused); background: var(--paused-bg); }
.state-halted { color: var(--halted); background: var(--halted-bg); }
.state-completed { color: var(--completed); background: var(--completed-bg); }
.badge-approval, .badge-blocking, .badge-quiet { color: var(--attention); background: var(--attention-bg); }
.badge-inflight { color: var(--completed); background: var(--completed-bg); }
.badge-stuck { color: var(--halted); background: var(--halted-bg); }
.outcome-passed { color: var(--active); font-weight: 600; }
.outcome-failed { color: var(--halted); font-weight: 600; }
.outcome-inconclusive { color: var(--attention); font-weight: 600; }
tr.blocking td { background: var(--attention-bg); }

/* Counts per state at the top of the fleet page */
.counts { display: flex; flex-wrap: wrap; gap: 0.6rem; list-style: none; padding: 0; margin: 0 0 1rem; }
.counts a { display: block; padding: 0.45rem 0.8rem; border: 1px solid var(--line); border-radius: 6px; text-decoration: none; color: var(--fg); }
.counts a[aria-current="true"] { border-color: var(--link); }
.counts strong { font-size: 1.2rem; margin-right: 0.3rem; }

/* Records: long TXT values wrap instead of widening the page */
code.record-inline { overflow-wrap: anywhere; word-break: break-all; }
pre.record { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-all; background: var(--bg-soft); border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 0.8rem; margin: 0.3rem 0 1rem; }

/* Forms */
form.filter, form.action { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 0.5rem 0.8rem; margin: 0.5rem 0 1rem; }
form.filter label, form.action label { display: flex; flex-direction: column; font-size: 0.85em; color: var(--muted); gap: 0.15rem; }
input[type="text"], input[type="search"], input[type="password"], select { font: inherit; padding: 0.3rem 0.5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); min-width: 12rem; }
/* Inside a table (the approvals queue) a form shares its row: let its field shrink to the column. */
td input[type="text"] { min-width: 0; width: 100%; box-sizing: border-box; }
td form.action { margin: 0; }
button { font: inherit; padding: 0.35rem 0.9rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg-soft); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--muted); }
button.primary { background: var(--active); border-color: var(--active); color: #fff; }
button.danger { background: var(--bg); border-color: var(--halted); color: var(--halted); }
button.link { border: none; background: none; padding: 0; color: var(--link); text-decoration: underline; }
.actions { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 0 1.5rem; border: 1px solid var(--line); border-radius: 6px; padding: 0.2rem 1rem; margin: 1rem 0; }
.actions h2 { grid-column: 1 / -1; margin-top: 0.8rem; }
.login { max-width: 24rem; margin: 4rem auto; }
.login form { display: flex; flex-direction: column; gap: 0.8rem; }
.login label { display: flex; flex-direction: column; gap: 0.2rem; }

/* The daily chart: inline SVG sized by its viewBox */
figure.chart { margin: 0.5rem 0 1rem; }
figure.chart svg { width: 100%; height: auto; max-height: 22rem; display: block; }
figure.chart figcaption { font-size: 0.85em; color: var(--muted); display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; margin-top: 0.3rem; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; vertical-align: -0.05em; margin-right: 0.3em; }
.swatch-authorised { background: #2da44e; }
.swatch-spoofing { background: #e5534b; }
.swatch-other { background: #afb8c1; }
.swatch-rate { background: #0550ae; height: 0.2em; vertical-align: 0.25em; }
.swatch-stage { border-left: 2px dashed #8250df; width: 0; border-radius: 0; }
.chart-empty { padding: 2rem 1rem; text-align: center; color: var(--muted); border: 1px dashed var(--line); border-radius: 6px; }
details > summary { cursor: pointer; color: var(--link); }
.pager { margin: 1rem 0; }
`;
