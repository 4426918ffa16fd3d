/**
 * The rows digest: what a report says, apart from how it was written. Two
 * reports with equal digests carry the same records (the same sources,
 * counts, results and reasons), whatever their record order, XML layout,
 * report_id or container. The store uses it to recognise a report re-sent by
 * its reporter under a new report_id.
 *
 * Order-independent by construction: each record is hashed on its own and
 * the hashes are added modulo 2^256, so the digest streams in constant memory
 * and a report with its records shuffled has the same digest. Part of stored
 * data (reports.rows_digest): do not change the canonical form.
 */
import { createHash } from 'node:crypto';
import type { ReportRecord } from './model.js';

const MOD = 1n << 256n;

const lower = (s: string | null) => (s === null ? null : s.toLowerCase());
const byJson = (a: unknown, b: unknown) => {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** A record's canonical form: case-insensitive names lowercased, lists sorted (their order carries no meaning). */
export function canonicalRecord(r: ReportRecord): string {
  return JSON.stringify([
    r.source_ip.toLowerCase(),
    r.count,
    r.disposition,
    r.dkim,
    r.spf,
    lower(r.header_from),
    lower(r.envelope_from),
    lower(r.envelope_to),
    r.reasons.map((x) => [lower(x.type), x.comment]).sort(byJson),
    r.auth_dkim.map((x) => [lower(x.domain), lower(x.selector), lower(x.result)]).sort(byJson),
    r.auth_spf.map((x) => [lower(x.domain), lower(x.scope), lower(x.result)]).sort(byJson),
  ]);
}

/** Accumulates records in any order; `digest()` is 64 hex characters. */
export class RowsDigest {
  private sum = 0n;
  private records = 0;

  add(record: ReportRecord): void {
    const h = createHash('sha256').update(canonicalRecord(record)).digest('hex');
    this.sum = (this.sum + BigInt(`0x${h}`)) % MOD;
    this.records++;
  }

  digest(): string {
    // The record count goes in too, so an empty report and a sum that wrapped to zero differ.
    return createHash('sha256').update(`${this.records}:${this.sum.toString(16).padStart(64, '0')}`).digest('hex');
  }
}
