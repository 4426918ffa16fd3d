/**
 * Hostile inputs benchmark: what a bomb costs to refuse, against the cost of
 * parsing an honest report of the same compressed size, in the same process.
 * The attack pass measured 35 s of CPU for a 1 MB gzip of XML comments; within
 * the budgets it should cost about what an honest megabyte does, or less.
 *
 *  - comment bomb: 1 MB of gzip that inflates to about 1 GiB of comments
 *  - rows bomb: a gzip of 200,000 identical rows (a ~300 KB mail's worth)
 *  - baseline: an honest report of varied rows, gzipped to about 1 MB
 *
 * Run: node --import tsx bench/hostile-inputs.ts
 */
import { gzipSync } from 'node:zlib';
import { ReportError } from '../src/reports/errors.js';
import { readReport } from '../src/reports/parse.js';
import { aggregateReportXml, cleanRow, spoofRow } from '../test/helpers/reports.js';

async function timed(bytes: Buffer): Promise<{ ms: number; outcome: string }> {
  const start = process.hrtime.bigint();
  let outcome: string;
  try {
    const r = await readReport({ bytes });
    outcome = `parsed ${r.figures.records} records`;
  } catch (error) {
    outcome = error instanceof ReportError ? `refused (${error.kind}): ${error.message.slice(0, 90)}` : `error: ${(error as Error).message}`;
  }
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, outcome };
}

const comments = '<!-- padding padding padding padding padding padding padding -->\n'.repeat(16_384);
const member = gzipSync(Buffer.from(comments));
const commentBomb = Buffer.concat([gzipSync(Buffer.from(`<?xml version="1.0"?>\n${comments}`)), ...Array.from({ length: Math.floor((1024 * 1024) / member.length) }, () => member)]);

const rowsBomb = gzipSync(aggregateReportXml({ reporter: 'isp.example', domain: 'example.com', day: '2026-05-01', rows: Array.from({ length: 200_000 }, () => cleanRow('example.com', '192.0.2.1', 1)) }), { level: 9 });

// Honest: varied addresses and counts compress about 15 to 1, like real reports.
const honestRows = [];
for (let i = 0; honestRows.length < 40_000; i++) {
  const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  honestRows.push(i % 7 === 0 ? spoofRow('example.com', ip, 1 + ((i * 7919) % 977)) : cleanRow('example.com', ip, 1 + ((i * 104729) % 9973)));
}
const honest = gzipSync(aggregateReportXml({ reporter: 'isp.example', domain: 'example.com', day: '2026-05-01', rows: honestRows }));

await timed(honest); // warm-up
const base = await timed(honest);
const bomb = await timed(commentBomb);
const rows = await timed(rowsBomb);
console.log(`baseline: ${honest.length} bytes of honest gzip, ${base.outcome}: ${base.ms.toFixed(0)} ms`);
console.log(`comment bomb: ${commentBomb.length} bytes of gzip, ${bomb.outcome}: ${bomb.ms.toFixed(0)} ms, ratio ${(bomb.ms / base.ms).toFixed(2)} of baseline`);
console.log(`rows bomb: ${rowsBomb.length} bytes of gzip, ${rows.outcome}: ${rows.ms.toFixed(0)} ms, ratio ${(rows.ms / base.ms).toFixed(2)} of baseline`);
