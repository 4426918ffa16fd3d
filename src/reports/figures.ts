/**
 * The contract figures of `report parse --json`, one object per input, as
 * defined in the corpus SOURCES.md: org, report_id, domain, begin, end,
 * records, messages, dmarc_pass, dmarc_fail, plus container and repaired when
 * they apply; for an input that cannot be read, file and error.
 */
import type { ReadReport } from './parse.js';

export interface ReportFiguresLine {
  file: string;
  org: string;
  report_id: string;
  domain: string;
  begin: number;
  end: number;
  records: number;
  messages: number;
  dmarc_pass: number;
  dmarc_fail: number;
  namespace?: string;
  container?: string;
  member?: string;
  repaired?: string;
}

export interface ReportErrorLine {
  file: string;
  error: string;
  field?: string;
}

export function figuresLine(file: string, report: ReadReport): ReportFiguresLine {
  const { metadata, policy } = report.header;
  const line: ReportFiguresLine = {
    file,
    org: metadata.org,
    report_id: metadata.report_id,
    domain: policy.domain,
    begin: metadata.begin,
    end: metadata.end,
    records: report.figures.records,
    messages: report.figures.messages,
    dmarc_pass: report.figures.dmarc_pass,
    dmarc_fail: report.figures.dmarc_fail,
  };
  if (metadata.namespace) line.namespace = metadata.namespace;
  if (report.container) line.container = report.container;
  if (report.member) line.member = report.member;
  if (report.repaired) line.repaired = report.repaired;
  return line;
}

export function errorLine(file: string, reason: string, field: string | null): ReportErrorLine {
  return field ? { file, error: `${field}: ${reason}`, field } : { file, error: reason };
}
