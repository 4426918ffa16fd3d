/**
 * How values read on the page: times in UTC ISO without milliseconds (the
 * same instant everywhere, whatever the viewer's time zone), rates as percents
 * with two decimals, counts grouped by thousands, and the links to a domain.
 * Plain text out; the templates escape it.
 */

/** `2026-03-01T12:00:00Z`; text that is not a time is shown as it is rather than hidden. */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '—';
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A 0..1 rate as `1.25%`; `—` when there is no rate (no mail to measure). */
export function formatPercent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—';
  return `${(rate * 100).toFixed(2)}%`;
}

/**
 * `12,345`. Grouped by hand rather than with toLocaleString so the page does
 * not depend on the server's locale or ICU build.
 */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const sign = n < 0 ? '-' : '';
  const [whole, fraction] = Math.abs(n).toString().split('.');
  const grouped = whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return sign + grouped + (fraction ? `.${fraction}` : '');
}

/**
 * A check's measured value or threshold. The engine's rate rules (`advance-rate`,
 * `halt-rate`, `rollback-rate`) carry 0..1 fractions, shown as percents like
 * every other rate on the page; other numbers are counts or days.
 */
export function formatMeasure(rule: string, value: number | string | null): string {
  if (value === null) return '—';
  if (typeof value === 'string') return value;
  if (rule.endsWith('-rate')) return formatPercent(value);
  return Number.isInteger(value) ? formatCount(value) : String(Number(value.toFixed(6)));
}

/** The domain page's path. Domains are normalised A-labels, but the path is encoded anyway: it is data. */
export function domainPath(domain: string): string {
  return `/domains/${encodeURIComponent(domain)}`;
}

/** Where a domain's action forms post, e.g. `/ui/domains/example.com/pause`. */
export function domainActionPath(domain: string, action: 'approve' | 'pause' | 'resume' | 'rollback' | 'unenroll' | 'set-provider' | 'set-plan'): string {
  return `/ui/domains/${encodeURIComponent(domain)}/${action}`;
}

/** `?a=1&b=2` from the non-empty entries, in the order given; empty string when none. */
export function queryString(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === '') continue;
    search.append(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** A reporter's usual delay in the unit a person thinks in: hours under two days, days above. */
export function formatDelay(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const hours = Math.round(seconds / 3600);
  if (hours < 48) return `${hours} h`;
  return `${(seconds / 86400).toFixed(1).replace(/\.0$/, '')} days`;
}
