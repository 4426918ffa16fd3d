/**
 * Each channel's format for one message: the versioned JSON webhook payload,
 * Slack's Block Kit, a Microsoft Teams Adaptive Card, and mail as plain text
 * with an HTML part. The summary's chart is a table of coloured cells in
 * HTML (inline SVG and CSS images are dropped by many mail clients) and bars
 * of block characters in text. Every value from reports or people is escaped
 * for the format it lands in.
 */
import { html, raw, type SafeHtml } from '../web/html.js';
import { formatPercent, formatTime } from '../web/format.js';
import type { MessageContent } from './content.js';
import type { FleetSummary } from './summary.js';

/** The webhook payload's version; a change that breaks receivers gets a new number. */
export const PAYLOAD_VERSION = 1;

export interface MessageMeta {
  /** The idempotency key: the same on every attempt of this message. */
  key: string;
  channel: string;
  createdAt: string;
}

/** The generic webhook's JSON body (documented in the README, version 1). */
export function webhookPayload(content: MessageContent, meta: MessageMeta): Record<string, unknown> {
  return {
    version: PAYLOAD_VERSION,
    id: meta.key,
    kind: content.kind,
    channel: meta.channel,
    created_at: meta.createdAt,
    title: content.title,
    severity: content.severity,
    counts: content.counts,
    ...(content.part ? { part: content.part } : {}),
    url: content.baseUrl,
    domains: content.groups.map((g) => ({
      domain: g.domain,
      tags: g.tags,
      events: g.events.map((e) => ({ id: e.id, type: e.type, severity: e.severity, at: e.at, title: e.title, detail: e.detail, data: e.data })),
    })),
    ...(content.summary ? { summary: content.summary } : {}),
  };
}

const SEVERITY_MARK = { critical: '🔴', warning: '🟠', info: '🔵' } as const;

/** Slack's mrkdwn needs &, < and > escaped; nothing else is interpreted once they are. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);

function domainLink(content: MessageContent, domain: string): string | null {
  return content.baseUrl ? `${content.baseUrl}/domains/${encodeURIComponent(domain)}` : null;
}

/** A Slack incoming-webhook body: a header, a section per domain, a footer; within Slack's 50-block and 3000-character limits. */
export function slackPayload(content: MessageContent, meta: MessageMeta): Record<string, unknown> {
  const blocks: Array<Record<string, unknown>> = [{ type: 'header', text: { type: 'plain_text', text: clip(content.title, 150), emoji: true } }];
  const sections = content.summary ? summarySections(content.summary) : content.groups.map((g) => {
    const link = g.domain ? domainLink(content, g.domain) : null;
    const name = g.domain === null ? '*fleet*' : link ? `*<${link}|${slackEscape(g.domain)}>*` : `*${slackEscape(g.domain)}*`;
    const tags = g.tags.length > 0 ? `  _${slackEscape(g.tags.join(', '))}_` : '';
    const lines = g.events.map((e) => `${SEVERITY_MARK[e.severity]} *${slackEscape(e.type)}*: ${slackEscape(e.detail)}`);
    return `${name}${tags}\n${lines.join('\n')}`;
  });
  const room = 47;
  for (const text of sections.slice(0, room)) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(text, 2900) } });
  if (sections.length > room) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `…and ${sections.length - room} more; see the notifications page.` } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `dmarc-rollout · ${meta.channel} · ${meta.key}` }] });
  return { text: slackEscape(content.title), blocks };
}

function summarySections(s: FleetSummary): string[] {
  const out = [summaryHeadline(s)];
  out.push('*Fleet by stage*\n```' + stageBars(s).join('\n') + '```');
  if (s.waiting.length > 0) out.push(`*Waiting for a person*\n${s.waiting.map((w) => `• *${slackEscape(w.domain)}*: ${slackEscape(w.why)}`).join('\n')}${s.omitted.waiting > 0 ? `\n…and ${s.omitted.waiting} more` : ''}`);
  const moved = s.domains.filter((d) => d.moves.length > 0);
  if (moved.length > 0) out.push(`*Moved*\n${moved.map((d) => `• *${slackEscape(d.domain)}*: ${slackEscape(d.moves.map(moveText).join(', '))}`).join('\n')}`);
  return out;
}

/**
 * Adaptive Card text is Markdown: a reporter's org name could carry a link
 * (`[click](https://…)`). A zero-width space after each bracket breaks the
 * link syntax and changes nothing a person reads.
 */
function teamsText(text: string): string {
  return text.replace(/([[\]])/g, '$1\u200b');
}

/** A Teams incoming webhook (Workflows or connector) body: one Adaptive Card. */
export function teamsPayload(content: MessageContent, meta: MessageMeta): Record<string, unknown> {
  const body: Array<Record<string, unknown>> = [
    { type: 'TextBlock', text: teamsText(content.title), weight: 'Bolder', size: 'Medium', wrap: true, color: content.severity === 'critical' ? 'Attention' : content.severity === 'warning' ? 'Warning' : 'Default' },
  ];
  if (content.summary) {
    const s = content.summary;
    body.push({ type: 'TextBlock', text: summaryHeadline(s), wrap: true });
    body.push({ type: 'FactSet', facts: s.stages.map((st) => ({ title: st.stage, value: `${'█'.repeat(barLength(st.domains, s))} ${st.domains}` })) });
    // A card has a size limit (about 28 KB): the first 20, and a count of the rest.
    for (const w of s.waiting.slice(0, 20)) body.push({ type: 'TextBlock', text: `**${w.domain}**: ${teamsText(w.why)}`, wrap: true });
    const more = s.waiting.length - Math.min(20, s.waiting.length) + s.omitted.waiting;
    if (more > 0) body.push({ type: 'TextBlock', text: `…and ${more} more waiting for a person; see the notifications page.`, wrap: true });
  }
  for (const g of content.groups.slice(0, 40)) {
    body.push({ type: 'TextBlock', text: g.domain ?? 'fleet', weight: 'Bolder', wrap: true, spacing: 'Medium', separator: true });
    if (g.tags.length > 0) body.push({ type: 'TextBlock', text: g.tags.join(', '), isSubtle: true, spacing: 'None', wrap: true });
    body.push({ type: 'FactSet', facts: g.events.map((e) => ({ title: `${e.severity} · ${e.type}`, value: teamsText(clip(e.detail, 1000)) })) });
  }
  if (content.groups.length > 40) body.push({ type: 'TextBlock', text: `…and ${content.groups.length - 40} more domains; see the notifications page.`, wrap: true });
  body.push({ type: 'TextBlock', text: `dmarc-rollout · ${meta.channel} · ${meta.key}`, isSubtle: true, size: 'Small', wrap: true });
  const card: Record<string, unknown> = { $schema: 'http://adaptivecards.io/schemas/adaptive-card.json', type: 'AdaptiveCard', version: '1.4', body };
  if (content.baseUrl) card.actions = [{ type: 'Action.OpenUrl', title: 'Open dmarc-rollout', url: content.baseUrl }];
  return { type: 'message', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: card }] };
}

/** A mail: subject, plain text and HTML, the same content in both. */
export function mailParts(content: MessageContent, meta: MessageMeta): { subject: string; text: string; html: string } {
  const subject = content.severity === 'critical' ? `[critical] ${content.title}` : content.title;
  const textParts: string[] = [content.title, ''];
  const htmlParts: SafeHtml[] = [];
  if (content.summary) {
    textParts.push(summaryText(content.summary, content));
    htmlParts.push(summaryHtml(content.summary, content));
  }
  for (const g of content.groups) {
    textParts.push(`== ${g.domain ?? 'fleet'}${g.tags.length > 0 ? ` [${g.tags.join(', ')}]` : ''}`);
    for (const e of g.events) textParts.push(`  ${e.severity.toUpperCase().padEnd(8)} ${e.type} (${formatTime(e.at)})`, `           ${e.detail}`);
    textParts.push('');
  }
  if (content.groups.length > 0) htmlParts.push(eventsHtml(content));
  textParts.push(`--`, `dmarc-rollout · channel ${meta.channel} · message ${meta.key}`);
  if (content.baseUrl) textParts.push(content.baseUrl);
  const page = html`<!doctype html>
<html><head><meta charset="utf-8"><title>${subject}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222;margin:0;padding:16px">
<h2 style="font-size:18px;margin:0 0 12px 0">${content.title}</h2>
${htmlParts}
<p style="color:#777;font-size:12px;margin-top:24px">dmarc-rollout · channel ${meta.channel} · message ${meta.key}${content.baseUrl ? html` · <a href="${content.baseUrl}">${content.baseUrl}</a>` : ''}</p>
</body></html>`;
  return { subject, text: textParts.join('\n'), html: page.toString() };
}

const SEVERITY_COLOUR = { critical: '#b3261e', warning: '#b26a00', info: '#1f5fa8' } as const;

function eventsHtml(content: MessageContent): SafeHtml {
  return html`${content.groups.map((g) => {
    const link = g.domain ? domainLink(content, g.domain) : null;
    const name = g.domain === null ? 'fleet' : g.domain;
    return html`<h3 style="font-size:15px;margin:16px 0 4px 0">${link ? html`<a href="${link}">${name}</a>` : name}${g.tags.length > 0 ? html` <span style="color:#777;font-weight:normal">${g.tags.join(', ')}</span>` : ''}</h3>
<table cellpadding="4" cellspacing="0" border="0" style="border-collapse:collapse">${g.events.map(
      (e) => html`<tr><td valign="top" style="color:${raw(SEVERITY_COLOUR[e.severity])};font-weight:bold;white-space:nowrap">${e.severity}</td><td valign="top" style="white-space:nowrap">${e.type}</td><td valign="top">${e.detail}</td></tr>`,
    )}</table>`;
  })}`;
}

function summaryHeadline(s: FleetSummary): string {
  const b = s.totals.by_state;
  return `${s.totals.domains} domains: ${b.active} active, ${b.completed} complete, ${b.halted} halted, ${b.paused} paused; ${s.totals.at_reject_100} at reject:100; ${s.totals.moved} moved since ${formatTime(s.since)}; ${s.waiting.length} wait for a person.`;
}

const BAR_WIDTH = 30;
function barLength(n: number, s: FleetSummary): number {
  const max = Math.max(1, ...s.stages.map((x) => x.domains));
  return n === 0 ? 0 : Math.max(1, Math.round((n / max) * BAR_WIDTH));
}

function stageBars(s: FleetSummary): string[] {
  const width = Math.max(5, ...s.stages.map((x) => x.stage.length));
  return s.stages.map((st) => `${st.stage.padEnd(width)} ${'█'.repeat(barLength(st.domains, s))} ${st.domains}`);
}

function progress(d: FleetSummary['domains'][number]): string {
  if (!d.stage_count) return '';
  const filled = Math.round((d.stage_number / d.stage_count) * 10);
  return `[${'#'.repeat(filled)}${'.'.repeat(10 - filled)}] ${d.stage_number}/${d.stage_count}`;
}

const moveText = (m: FleetSummary['domains'][number]['moves'][number]) => `${m.from ?? '—'} → ${m.to} (${m.action}, ${formatTime(m.at)})`;

/** The summary as plain text (the mail's text part and `dmarc-rollout summary`). */
export function summaryText(s: FleetSummary, content?: Pick<MessageContent, 'baseUrl'>): string {
  const lines = [summaryHeadline(s), '', 'Fleet by stage:', ...stageBars(s).map((l) => `  ${l}`), ''];
  if (s.waiting.length > 0) lines.push('Waiting for a person:', ...s.waiting.map((w) => `  ${w.domain}: ${w.why}`), ...omittedLine(s.omitted.waiting, content), '');
  else lines.push('Nothing waits for a person.', '');
  lines.push('Domains:');
  const width = Math.max(6, ...s.domains.map((d) => d.domain.length));
  for (const d of s.domains) {
    lines.push(
      `  ${d.domain.padEnd(width)} ${(d.stage ?? 'unknown').padEnd(14)} ${progress(d).padEnd(18)} ${d.state.padEnd(9)} ${d.days_in_stage === null ? '' : `${d.days_in_stage}d in stage`}  fail ${formatPercent(d.authorised_fail_rate)}`,
    );
    for (const m of d.moves) lines.push(`  ${''.padEnd(width)}   moved ${moveText(m)}`);
  }
  lines.push(...omittedLine(s.omitted.domains, content));
  const announced = Object.entries(s.events);
  if (announced.length > 0) lines.push('', `Announced in the period: ${announced.map(([t, n]) => `${t} ${n}`).join(', ')}`);
  if (content?.baseUrl) lines.push('', content.baseUrl);
  return lines.join('\n');
}

/** The line saying how many a large fleet's summary left out, and where they all are; none when nothing was. */
function omittedLine(count: number, content?: Pick<MessageContent, 'baseUrl'>): string[] {
  return count === 0 ? [] : [`  …and ${count} more; every domain is on the page${content?.baseUrl ? ` (${content.baseUrl})` : ''} and in the API.`];
}

/** The summary as mail-safe HTML: tables and coloured cells only, so it renders in Outlook and Gmail alike. */
export function summaryHtml(s: FleetSummary, content?: Pick<MessageContent, 'baseUrl'>): SafeHtml {
  const cell = (width: number, colour: string) =>
    width > 0 ? html`<td width="${String(width * 8)}" bgcolor="${colour}" style="background:${raw(colour)};height:12px;font-size:1px;line-height:1px">&nbsp;</td>` : '';
  const stageColour = (stage: string | null) => (stage?.startsWith('reject') ? '#2e7d32' : stage?.startsWith('quarantine') ? '#f9a825' : '#90a4ae');
  return html`<p>${summaryHeadline(s)}</p>
<h3 style="font-size:15px;margin:16px 0 4px 0">Fleet by stage</h3>
<table cellpadding="2" cellspacing="0" border="0">${s.stages.map(
    (st) =>
      html`<tr><td style="white-space:nowrap;padding-right:8px">${st.stage}</td><td><table cellpadding="0" cellspacing="0" border="0"><tr>${cell(barLength(st.domains, s), stageColour(st.stage))}</tr></table></td><td style="padding-left:6px">${st.domains}</td></tr>`,
  )}</table>
<h3 style="font-size:15px;margin:16px 0 4px 0">Waiting for a person</h3>
${s.waiting.length === 0 ? html`<p>Nothing waits for a person.</p>` : html`<ul>${s.waiting.map((w) => html`<li><b>${w.domain}</b>: ${w.why}</li>`)}</ul>`}
${omittedLine(s.omitted.waiting, content).map((l) => html`<p>${l.trim()}</p>`)}
<h3 style="font-size:15px;margin:16px 0 4px 0">Domains</h3>
<table cellpadding="4" cellspacing="0" border="1" style="border-collapse:collapse;border-color:#ddd">
<tr><th align="left">domain</th><th align="left">stage</th><th align="left">progress</th><th align="left">state</th><th align="right">days</th><th align="right">auth. fail</th><th align="left">moved</th></tr>
${s.domains.map((d) => {
    const done = d.stage_count ? Math.round((d.stage_number / d.stage_count) * 12) : 0;
    const link = content?.baseUrl ? `${content.baseUrl}/domains/${encodeURIComponent(d.domain)}` : null;
    return html`<tr><td>${link ? html`<a href="${link}">${d.domain}</a>` : d.domain}</td><td>${d.stage ?? 'unknown'}</td><td><table cellpadding="0" cellspacing="0" border="0"><tr>${cell(done, stageColour(d.stage))}${cell(12 - done, '#e0e0e0')}</tr></table><span style="font-size:11px;color:#777">${d.stage_number}/${d.stage_count ?? '?'}</span></td><td>${d.state}</td><td align="right">${d.days_in_stage ?? '—'}</td><td align="right">${formatPercent(d.authorised_fail_rate)}</td><td>${d.moves.map((m) => html`${moveText(m)}<br>`)}</td></tr>`;
  })}
</table>
${omittedLine(s.omitted.domains, content).map((l) => html`<p>${l.trim()}</p>`)}`;
}
