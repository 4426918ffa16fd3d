/**
 * HTML built from templates that escape by default. Much of what the pages
 * show comes from DMARC aggregate reports, which anyone on the internet can
 * send us (reporter org names, header_from, DKIM and SPF domains), so no value
 * reaches the page unescaped unless code explicitly marks it as already-safe
 * markup with raw() or by building it with html``.
 */

/** Markup that is already safe to emit as is: produced by html`` or marked with raw(). */
export class SafeHtml {
  constructor(readonly value: string) {}

  toString(): string {
    return this.value;
  }
}

/**
 * What may be interpolated into html``. null, undefined and false render as
 * nothing so `${cond && html`…`}` reads naturally; arrays are joined with no
 * separator, each element escaped on its own.
 */
export type HtmlValue = string | number | bigint | SafeHtml | false | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Escapes text for element content and for quoted attribute values alike
 * (both quote characters are escaped, so a value can never leave its attribute).
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Marks trusted markup (our own constants, never data) as safe to emit unescaped. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/**
 * The template tag every page uses: literal parts are kept, every
 * interpolated value is escaped unless it is SafeHtml. Attributes must be
 * quoted in the template (`title="${x}"`); escaping keeps the value inside them.
 */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new SafeHtml(out);
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  // Anything else (including values the types did not foresee) is text.
  return escapeHtml(String(value));
}
