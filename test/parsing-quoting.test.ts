/**
 * Parsing and quoting found wrong against other implementations: an RFC
 * 9990 report names its identifiers `<identities>`, RFC 9989 narrows `fo`,
 * and a report's header_from must survive either spelling.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateRecord } from '../src/record/index.js';
import { readReport, type ReportRecord } from '../src/reports/index.js';
import { aggregateReportXml, cleanRow } from './helpers/reports.js';

async function rowsOf(xml: string): Promise<ReportRecord[]> {
  const rows: ReportRecord[] = [];
  await readReport({ bytes: Buffer.from(xml) }, { sink: { records: (batch) => void rows.push(...batch) } });
  return rows;
}

describe('aggregate reports', () => {
  it('reads header_from and the envelope from <identities> (RFC 9990) as from <identifiers>', async () => {
    const classic = aggregateReportXml({ reporter: 'mx.example', domain: 'shop.example', day: '2026-05-01', rows: [cleanRow('shop.example', '192.0.2.1', 7)] });
    const rfc9990 = classic.replace('<identifiers><header_from>shop.example</header_from></identifiers>', '<identities><header_from>Shop.Example</header_from><envelope_from>bounce.shop.example</envelope_from></identities>');
    assert.notEqual(rfc9990, classic);
    const [a] = await rowsOf(classic);
    const [b] = await rowsOf(rfc9990);
    assert.equal(a!.header_from, 'shop.example');
    assert.equal(b!.header_from, 'shop.example');
    assert.equal(b!.envelope_from, 'bounce.shop.example');
  });
});

describe('fo against RFC 9989', () => {
  const foProblems = (fo: string) => validateRecord(`v=DMARC1; p=none; rua=mailto:a@x.example; fo=${fo}`).filter((p) => p.tag === 'fo');
  it('warns where RFC 7489 allowed a value RFC 9989 does not: an option twice, or 0 with 1', () => {
    for (const fo of ['0:1', 'd:d', '1:s:1']) {
      const problems = foProblems(fo);
      assert.ok(problems.length > 0, fo);
      assert.ok(problems.every((p) => p.severity === 'warning' && p.code === 'fo-rfc9989'), JSON.stringify(problems));
    }
    assert.match(foProblems('0:1')[0]!.reason, /both 0 .* and 1 .*write fo=1/);
    assert.match(foProblems('d:d')[0]!.reason, /names d more than once/);
  });
  it('accepts what both allow, and still refuses what neither does', () => {
    for (const fo of ['0', '1', 'd', 's', 'd:s', '1:d:s']) assert.deepEqual(foProblems(fo), [], fo);
    assert.equal(foProblems('2')[0]?.severity, 'error');
  });
});
