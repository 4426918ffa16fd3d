/**
 * Mail (RFC 5322 / MIME) containers: finds the aggregate report inside a
 * report mail of any layout (multipart/mixed with the attachment first or
 * last, a top-level application/gzip body, base64 or quoted-printable), and
 * recognises failure (ruf) reports and bounces, which are not aggregate data.
 * The MIME parsing itself is mailparser's.
 */
// mailparser (and the HTML and charset libraries under it) loads on the first mail, not with the
// module: `report parse` of an XML or gzip file never pays for it.
import type { Attachment, ParsedMail } from 'mailparser';
import { errorMessage } from '../errors.js';
import { FAILURE_REPORT_REASON, ReportError } from './errors.js';
import { sniff } from './sniff.js';

export interface MailReport {
  /** The attachment's bytes (still packed: zip, gzip, xml ...). */
  bytes: Buffer;
  /** Its file name when the mail gave one. */
  filename: string | null;
}

type HeaderValue = { value?: string; params?: Record<string, string> } | string | undefined;

function contentTypeOf(mail: ParsedMail): { value: string; params: Record<string, string> } {
  const ct = mail.headers.get('content-type') as HeaderValue;
  if (!ct) return { value: 'text/plain', params: {} };
  if (typeof ct === 'string') return { value: ct.toLowerCase(), params: {} };
  return { value: (ct.value ?? '').toLowerCase(), params: ct.params ?? {} };
}

const RUF_TEXT = /\b(forensic report|failure report|feedback-type:\s*auth-failure|failed the published dmarc policy)\b/i;

/** True when the mail is a DMARC failure (ruf) report rather than an aggregate (rua) one. */
function isFailureReport(mail: ParsedMail, ct: { value: string; params: Record<string, string> }): boolean {
  const reportType = (ct.params['report-type'] ?? '').toLowerCase();
  if (ct.value === 'multipart/report' && reportType === 'feedback-report') return true;
  if (mail.attachments.some((a) => typeOf(a) === 'message/feedback-report')) return true;
  return false;
}

function looksLikeFailureReport(mail: ParsedMail, ct: { value: string; params: Record<string, string> }): boolean {
  const reportType = (ct.params['report-type'] ?? '').toLowerCase();
  if (ct.value !== 'multipart/report' && !RUF_TEXT.test(mail.subject ?? '')) return false;
  if (reportType && reportType !== 'feedback-report') return false;
  return RUF_TEXT.test(mail.subject ?? '') || RUF_TEXT.test(mail.text ?? '');
}

/** An attachment's content type, lowercase; '' when a broken mail gave none. */
function typeOf(a: Attachment): string {
  return typeof a.contentType === 'string' ? a.contentType.toLowerCase() : '';
}

function isReportPayload(a: Attachment): boolean {
  if (!Buffer.isBuffer(a.content)) return false;
  const kind = sniff(a.content.subarray(0, 512));
  return kind === 'xml' || kind === 'gzip' || kind === 'zip' || kind === 'zlib';
}

/** Finds the aggregate report in a mail, or throws a ReportError saying why there is none. */
export async function extractMailReport(raw: Buffer): Promise<MailReport> {
  const { simpleParser } = await import('mailparser');
  let mail: ParsedMail;
  try {
    mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  } catch (e) {
    throw new ReportError('container', `mail could not be parsed: ${errorMessage(e)}`, 'mail', { cause: e });
  }
  const ct = contentTypeOf(mail);
  if (isFailureReport(mail, ct)) throw new ReportError('failure-report', FAILURE_REPORT_REASON, null);
  const reportType = (ct.params['report-type'] ?? '').toLowerCase();
  if (ct.value === 'multipart/report' && reportType === 'delivery-status') {
    throw new ReportError('not-a-report', 'delivery status notification (bounce), not aggregate data', 'mail');
  }
  // Attachments in mail order; the report is the first one whose content is a report container.
  const payload = mail.attachments.find(
    (a) => typeOf(a) !== 'message/rfc822' && isReportPayload(a),
  );
  if (payload) return { bytes: payload.content, filename: payload.filename ?? null };
  // Some reporters put the XML inline as the text body.
  const text = mail.text?.trimStart() ?? '';
  if (text.startsWith('<?xml') || text.startsWith('<feedback')) return { bytes: Buffer.from(text, 'utf8'), filename: null };
  if (looksLikeFailureReport(mail, ct)) throw new ReportError('failure-report', FAILURE_REPORT_REASON, null);
  const names = mail.attachments.map((a) => `${a.filename ?? '(unnamed)'} (${typeOf(a) || 'no content type'})`);
  throw new ReportError(
    'not-a-report',
    names.length
      ? `mail has no aggregate report attachment (attachments: ${names.join(', ')})`
      : 'mail has no aggregate report attachment (no attachments)',
    'mail',
  );
}
