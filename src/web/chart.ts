/**
 * The domain page's daily chart as inline SVG: one bar per UTC day of report
 * volume (authorised mail at the bottom, unaligned/other in the middle,
 * spoofing on top), the authorised fail rate as a line on its own percent
 * axis, and a dashed marker wherever the stage changed. Server-rendered, no
 * script: it reads the same with JavaScript off, and scales with its viewBox.
 *
 * The SVG carries no xmlns attribute on purpose: inline SVG in HTML does not
 * need one, and the pages promise no http(s) URL anywhere.
 */
import type { DailyPoint } from '../fleet/views.js';
import type { StageChange } from '../store/schema.js';
import { formatCount, formatPercent, formatTime } from './format.js';
import { html, type SafeHtml } from './html.js';

const WIDTH = 800;
const HEIGHT = 290;
const LEFT = 60;
const RIGHT = 62;
const TOP = 40;
const BOTTOM = 46;
const PLOT_W = WIDTH - LEFT - RIGHT;
const PLOT_H = HEIGHT - TOP - BOTTOM;
const DAY_MS = 86_400_000;

/** Fill colours; kept in step with the legend swatches in APP_CSS. */
const COLOURS = {
  authorised: '#2da44e',
  other: '#afb8c1',
  spoofing: '#e5534b',
  rate: '#0550ae',
  stage: '#8250df',
  grid: '#d1d9e0',
  text: '#59636e',
};

/**
 * The chart for a domain's daily series and its stage history. Days without
 * reports inside the range are drawn as empty slots (not skipped) so the time
 * axis stays true; stage changes outside the range are not drawn.
 */
export function renderDailyChart(points: DailyPoint[], history: StageChange[]): SafeHtml {
  const byDay = new Map(points.map((p) => [p.day, p]));
  const sortedDays = [...byDay.keys()].filter((d) => !Number.isNaN(dayMs(d))).sort();
  if (sortedDays.length === 0) {
    return html`<figure class="chart chart-empty-figure"><div class="chart-empty" role="img" aria-label="Daily mail chart: no report data yet">
<p><strong>No report data yet.</strong></p>
<p>The chart fills in as aggregate reports for this domain arrive (receivers usually send them daily, a day or two late).</p>
</div></figure>`;
  }

  const firstMs = dayMs(sortedDays[0]!);
  const lastMs = dayMs(sortedDays[sortedDays.length - 1]!);
  const dayCount = Math.round((lastMs - firstMs) / DAY_MS) + 1;
  const days: Array<{ day: string; point: DailyPoint | undefined }> = [];
  for (let i = 0; i < dayCount; i++) {
    const day = new Date(firstMs + i * DAY_MS).toISOString().slice(0, 10);
    days.push({ day, point: byDay.get(day) });
  }
  const slot = PLOT_W / dayCount;
  const barWidth = Math.max(1, slot * (dayCount > 60 ? 0.9 : 0.75));
  const xOf = (index: number) => LEFT + index * slot;

  // Left axis: messages per day.
  const maxMessages = Math.max(1, ...points.map((p) => p.messages));
  // Whole messages only: a 0.5-message gridline means nothing.
  const msgStep = Math.max(1, niceStep(maxMessages / 4));
  const msgTop = Math.ceil(maxMessages / msgStep) * msgStep;
  const yMessages = (n: number) => TOP + PLOT_H - (n / msgTop) * PLOT_H;

  // Right axis: the fail rate in percent, at least 0..1% so a clean line reads as near zero, not as a spike.
  const rates = points.map((p) => p.authorised_fail_rate).filter((r): r is number => r !== null && Number.isFinite(r));
  const maxRate = Math.max(0.01, ...rates);
  const rateStep = niceStep(maxRate / 4);
  const rateTop = Math.ceil(maxRate / rateStep) * rateStep;
  const yRate = (r: number) => TOP + PLOT_H - (Math.min(r, rateTop) / rateTop) * PLOT_H;

  const grid: SafeHtml[] = [];
  // Stepped by index, not by adding steps, so 0.0025 steps do not drift in floating point.
  for (let k = 0; k <= Math.round(msgTop / msgStep); k++) {
    const v = k * msgStep;
    const y = r1(yMessages(v));
    grid.push(html`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${y}" y2="${y}" stroke="${COLOURS.grid}" stroke-width="1"/>
<text x="${LEFT - 6}" y="${r1(y + 4)}" text-anchor="end" font-size="11" fill="${COLOURS.text}">${compactCount(v)}</text>`);
  }
  for (let k = 0; k <= Math.round(rateTop / rateStep); k++) {
    const v = k * rateStep;
    const y = r1(yRate(v));
    grid.push(html`<text x="${LEFT + PLOT_W + 6}" y="${r1(y + 4)}" text-anchor="start" font-size="11" fill="${COLOURS.rate}">${axisPercent(v)}</text>`);
  }

  const labelEvery = Math.max(1, Math.ceil(dayCount / 7));
  // A date label is about 65 units wide at this size; the last day is labelled only when it clears the one before.
  const labelled = days.map((_, i) => i).filter((i) => i % labelEvery === 0);
  const lastIndex = dayCount - 1;
  if (labelled.at(-1) !== lastIndex && (lastIndex - labelled.at(-1)!) * slot >= 75) labelled.push(lastIndex);
  const xLabels = labelled.map((i) => {
    const x = r1(xOf(i) + slot / 2);
    return html`<line x1="${x}" x2="${x}" y1="${TOP + PLOT_H}" y2="${TOP + PLOT_H + 4}" stroke="${COLOURS.text}"/>
<text x="${x}" y="${TOP + PLOT_H + 17}" text-anchor="middle" font-size="11" fill="${COLOURS.text}">${days[i]!.day}</text>`;
  });

  const bars = days.map(({ day, point }, i) => {
    if (!point || point.messages <= 0) return html``;
    const authorised = Math.max(0, point.authorised);
    const spoofing = Math.max(0, point.spoofing);
    const other = Math.max(0, point.messages - authorised - spoofing);
    const x = r1(xOf(i) + (slot - barWidth) / 2);
    const w = r1(barWidth);
    const segments: SafeHtml[] = [];
    let base = 0;
    for (const [part, count] of [
      ['authorised', authorised],
      ['other', other],
      ['spoofing', spoofing],
    ] as const) {
      if (count <= 0) continue;
      const y0 = yMessages(base);
      const y1 = yMessages(base + count);
      segments.push(html`<rect class="bar-${part}" x="${x}" y="${r1(y1)}" width="${w}" height="${r1(Math.max(0.5, y0 - y1))}" fill="${COLOURS[part]}"/>`);
      base += count;
    }
    const tip = `${day}: ${formatCount(point.messages)} messages; ${formatCount(authorised)} authorised (${formatCount(point.authorised_failed)} failed DMARC, ${formatPercent(point.authorised_fail_rate)}); ${formatCount(spoofing)} spoofing; ${formatCount(other)} other${point.stage ? `; stage ${point.stage}` : ''}`;
    return html`<g class="day" data-day="${day}"><title>${tip}</title>${segments}</g>`;
  });

  // The rate line breaks where a day has no authorised mail: joining across the gap would invent a trend.
  const segments: string[] = [];
  let current: string[] = [];
  const dots: SafeHtml[] = [];
  days.forEach(({ day, point }, i) => {
    const rate = point?.authorised_fail_rate;
    if (rate === null || rate === undefined || !Number.isFinite(rate)) {
      if (current.length > 0) segments.push(current.join(' '));
      current = [];
      return;
    }
    const x = r1(xOf(i) + slot / 2);
    const y = r1(yRate(rate));
    current.push(`${current.length === 0 ? 'M' : 'L'}${x} ${y}`);
    dots.push(html`<circle class="rate-point" cx="${x}" cy="${y}" r="${dayCount > 60 ? 1.8 : 2.6}" fill="${COLOURS.rate}"><title>${day}: authorised fail rate ${formatPercent(rate)}</title></circle>`);
  });
  if (current.length > 0) segments.push(current.join(' '));
  const line = segments.length > 0 ? html`<path class="rate-line" d="${segments.join(' ')}" fill="none" stroke="${COLOURS.rate}" stroke-width="2" stroke-linejoin="round"/>` : html``;

  const rangeStart = firstMs;
  const rangeEnd = lastMs + DAY_MS;
  // Only changes that took effect in DNS: enrolment names a stage but writes nothing.
  const inRange = history.filter((h) => {
    const at = Date.parse(h.at);
    return h.record !== null && !Number.isNaN(at) && at >= rangeStart && at < rangeEnd;
  });
  const markers = inRange.map((h, k) => {
    // Placed at the time of day the change happened, so two changes on one day stay apart.
    const x = r1(LEFT + ((Date.parse(h.at) - rangeStart) / DAY_MS) * slot);
    const labelY = TOP - 8 - (k % 2) * 13;
    const anchor = x > LEFT + PLOT_W - 40 ? 'end' : x < LEFT + 40 ? 'start' : 'middle';
    const tip = `${formatTime(h.at)}: ${h.action} ${h.from_stage ?? '(enrolled)'} → ${h.to_stage} by ${h.actor}${h.reason ? ` (${h.reason})` : ''}`;
    return html`<g class="stage-marker" data-stage="${h.to_stage}" data-at="${formatTime(h.at)}"><title>${tip}</title>
<line x1="${x}" x2="${x}" y1="${labelY + 3}" y2="${TOP + PLOT_H}" stroke="${COLOURS.stage}" stroke-width="1.5" stroke-dasharray="4 3"/>
<text x="${x}" y="${labelY}" text-anchor="${anchor}" font-size="11" fill="${COLOURS.stage}">${h.to_stage}</text></g>`;
  });

  const totalMessages = points.reduce((s, p) => s + p.messages, 0);
  const totalAuthorised = points.reduce((s, p) => s + p.authorised, 0);
  const totalSpoofing = points.reduce((s, p) => s + p.spoofing, 0);
  const peak = rates.length > 0 ? Math.max(...rates) : null;
  const summary =
    `Daily DMARC report volume from ${sortedDays[0]} to ${sortedDays[sortedDays.length - 1]}: ` +
    `${formatCount(totalMessages)} messages, ${formatCount(totalAuthorised)} authorised and ${formatCount(totalSpoofing)} spoofing; ` +
    `authorised fail rate ${peak === null ? 'not measured (no authorised mail)' : `peaking at ${formatPercent(peak)}`}; ` +
    `${inRange.length} stage change${inRange.length === 1 ? '' : 's'} in the period.`;

  return html`<figure class="chart">
<svg class="daily-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" preserveAspectRatio="xMidYMid meet" role="img" aria-label="${summary}">
<title>${summary}</title>
${grid}
<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${TOP + PLOT_H}" y2="${TOP + PLOT_H}" stroke="${COLOURS.text}" stroke-width="1"/>
${bars}
${line}
${dots}
${markers}
${xLabels}
<text transform="translate(14 ${TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="${COLOURS.text}">messages per day</text>
<text transform="translate(${WIDTH - 10} ${TOP + PLOT_H / 2}) rotate(90)" text-anchor="middle" font-size="11" fill="${COLOURS.rate}">authorised fail rate</text>
<text x="${LEFT + PLOT_W / 2}" y="${HEIGHT - 6}" text-anchor="middle" font-size="11" fill="${COLOURS.text}">UTC day the reports cover</text>
</svg>
<figcaption>
<span><span class="swatch swatch-authorised"></span>authorised mail</span>
<span><span class="swatch swatch-other"></span>unaligned and other mail</span>
<span><span class="swatch swatch-spoofing"></span>spoofing (unauthenticated)</span>
<span><span class="swatch swatch-rate"></span>authorised fail rate (right axis)</span>
<span><span class="swatch swatch-stage"></span>stage change</span>
</figcaption>
${dailyTable(points)}
</figure>`;
}

/** The same figures as a table, for exact numbers and for screen readers. */
function dailyTable(points: DailyPoint[]): SafeHtml {
  const rows = [...points]
    .sort((a, b) => (a.day < b.day ? 1 : a.day > b.day ? -1 : 0))
    .map(
      (p) => html`<tr><td>${p.day}</td><td class="num">${formatCount(p.messages)}</td><td class="num">${formatCount(p.authorised)}</td><td class="num">${formatCount(p.authorised_failed)}</td><td class="num">${formatPercent(p.authorised_fail_rate)}</td><td class="num">${formatCount(p.spoofing)}</td><td>${p.stage ?? '—'}</td></tr>`,
    );
  return html`<details class="daily-figures"><summary>Daily figures</summary>
<div class="table-wrap"><table>
<thead><tr><th>Day (UTC)</th><th class="num">Messages</th><th class="num">Authorised</th><th class="num">Authorised failed</th><th class="num">Fail rate</th><th class="num">Spoofing</th><th>Stage</th></tr></thead>
<tbody>${rows}</tbody>
</table></div></details>`;
}

const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);

const r1 = (n: number) => Math.round(n * 10) / 10;

/** A round step (1, 2 or 5 times a power of ten) at least `rough`. */
function niceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return 1;
  const power = 10 ** Math.floor(Math.log10(rough));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough) return m * power;
  return 10 * power;
}

/** Axis labels: 1.5k rather than 1,500 so they fit the margin. */
function compactCount(n: number): string {
  if (n >= 1_000_000) return `${Number((n / 1_000_000).toFixed(1))}M`;
  if (n >= 10_000) return `${Number((n / 1000).toFixed(0))}k`;
  if (n >= 1000) return `${Number((n / 1000).toFixed(1))}k`;
  return String(Number(n.toFixed(2)));
}

/** `0.5%`, `2%`: an axis needs only the digits the step has. */
function axisPercent(rate: number): string {
  return `${Number((rate * 100).toFixed(3))}%`;
}
