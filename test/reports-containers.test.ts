/**
 * Containers, caps and hostile input, built at run time: gzip (nested,
 * concatenated, trailing bytes, truncated), zlib, zip (member choice, path
 * tricks, declared and lying sizes), report mails in several MIME layouts,
 * gzip bombs and billion laughs (refused fast, in bounded memory), and the
 * XML leniency and schema errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, deflateSync } from 'node:zlib';
import { ReportError, readReport, type ReadReport } from '../src/reports/index.js';
import { makeMail, makeZip, recordXml, reportHead, reportXml, REPORT_TAIL } from './fixtures/reports/make.js';
import { tempDir } from './helpers/temp-dirs.js';

const dir = tempDir('dmarc-rollout-containers-');
const xml = Buffer.from(reportXml({ records: 3, count: 2 }));

async function read(bytes: Buffer, limits?: Parameters<typeof readReport>[1]): Promise<ReadReport> {
  return readReport({ bytes }, limits);
}

async function refused(bytes: Buffer | { path: string }, pattern: RegExp, options?: Parameters<typeof readReport>[1]): Promise<ReportError> {
  let caught: unknown;
  try {
    await readReport(Buffer.isBuffer(bytes) ? { bytes } : bytes, options);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ReportError, `expected a ReportError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

function assertFigures(r: ReadReport, records = 3, messages = 6): void {
  assert.equal(r.header.metadata.org, 'receiver.example');
  assert.equal(r.header.metadata.report_id, 'r-1');
  assert.equal(r.figures.records, records);
  assert.equal(r.figures.messages, messages);
}

test('gzip, nested gzip, zlib and gzip inside zip are sniffed by content and chained', async () => {
  assert.equal((await read(xml)).container, null);
  assert.equal((await read(gzipSync(xml))).container, 'gzip');
  const gz2 = await read(gzipSync(gzipSync(xml)));
  assert.equal(gz2.container, 'gzip+gzip');
  assertFigures(gz2);
  assert.equal((await read(deflateSync(xml))).container, 'zlib');
  const zipOfGz = await read(makeZip([{ name: 'report.xml.gz', data: gzipSync(xml) }]));
  assert.equal(zipOfGz.container, 'zip+gzip');
  assertFigures(zipOfGz);
  // The same report in every container is the same normalised content.
  assert.equal(gz2.contentHash, (await read(xml)).contentHash);
});

test('file names do not matter: a zip named .xml is read as a zip', async () => {
  const p = join(dir, 'looks-like.xml');
  writeFileSync(p, makeZip([{ name: 'a.xml', data: xml }]));
  const r = await readReport({ path: p });
  assert.equal(r.container, 'zip');
  assertFigures(r);
});

test('concatenated gzip members are one stream; trailing bytes after the stream are ignored and recorded', async () => {
  const half = Math.floor(xml.length / 2);
  const multi = await read(Buffer.concat([gzipSync(xml.subarray(0, half)), gzipSync(xml.subarray(half))]));
  assertFigures(multi);
  assert.match(multi.repaired ?? '', /2 concatenated members/);
  const trailing = await read(Buffer.concat([gzipSync(xml), Buffer.from('\r\n')]));
  assertFigures(trailing);
  assert.match(trailing.repaired ?? '', /followed by 2 bytes of trailing data/);
  const zeros = await read(Buffer.concat([deflateSync(xml), Buffer.alloc(7)]));
  assert.match(zeros.repaired ?? '', /zlib stream followed by 7 bytes/);
});

test('truncated and corrupt containers are refused with the reason', async () => {
  const gz = gzipSync(xml);
  await refused(gz.subarray(0, gz.length - 20), /truncated gzip stream/);
  await refused(gz.subarray(0, gz.length - 4), /truncated gzip stream: the CRC trailer is missing|corrupt gzip data/);
  const bad = Buffer.from(gz);
  bad.writeUInt32LE((bad.readUInt32LE(bad.length - 8) ^ 1) >>> 0, bad.length - 8);
  await refused(bad, /CRC-32 does not match/);
  await refused(gz.subarray(0, 6), /truncated gzip header/);
  const zip = makeZip([{ name: 'a.xml', data: xml }]);
  await refused(zip.subarray(0, zip.length - 30), /zip/);
  const z = deflateSync(xml);
  await refused(z.subarray(0, z.length - 10), /truncated zlib stream/);
  await refused(xml.subarray(0, xml.length - 40), /not well-formed XML/);
});

test('containers nested deeper than the limit are refused', async () => {
  let b: Buffer = xml;
  for (let i = 0; i < 5; i++) b = gzipSync(b);
  await refused(b, /nested more than 4 deep/);
});

test('a file too big to be read in one piece is streamed from disk: zip, gzip and plain XML read as from bytes; a stored zip member past the token cap is not one token', async () => {
  const { READ_WHOLE_BYTES } = await import('../src/reports/unpack.js');
  const { DEFAULT_LIMITS } = await import('../src/reports/limits.js');
  const large = Buffer.from(reportXml({ records: 2000 }));
  assert.ok(large.length > READ_WHOLE_BYTES && large.length > DEFAULT_LIMITS.maxTokenChars, 'the XML must be past the one-piece size and the token cap');
  // A stored (uncompressed) zip member comes out of yauzl in one piece (it was refused as a token over the cap).
  const cases: Array<[string, Buffer, string | null]> = [
    ['big.zip', makeZip([{ name: 'big.xml', data: large, stored: true }]), 'zip'],
    ['big.xml', large, null],
    ['big-small.xml.gz', gzipSync(large), 'gzip'],
  ];
  const expected = await read(large);
  for (const [name, bytes, container] of cases) {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    const fromDisk = await readReport({ path: p });
    assert.equal(fromDisk.container, container, name);
    assert.equal(fromDisk.figures.records, 2000, name);
    assert.equal(fromDisk.contentHash, expected.contentHash, name);
    assert.equal(fromDisk.contentHash, (await read(bytes)).contentHash, name);
  }
  // A big zip that is cut short is refused as such, from disk too.
  const zipped = makeZip([{ name: 'big.xml', data: large, stored: true }]);
  const cut = join(dir, 'cut.zip');
  writeFileSync(cut, zipped.subarray(0, zipped.length - 40));
  await refused({ path: cut }, /zip/);
});

test('zip: the first XML member is the report; path tricks, oversize and lying members are refused', async () => {
  const r = await read(makeZip([{ name: 'README.txt', data: Buffer.from('hello') }, { name: 'dir/report.xml', data: xml }]));
  assertFigures(r);
  assert.equal(r.member, 'dir/report.xml');
  const stored = await read(makeZip([{ name: 'r.xml', data: xml, stored: true }]));
  assertFigures(stored);
  await refused(makeZip([{ name: '../../etc/report.xml', data: xml }]), /refused zip: invalid relative path/);
  await refused(makeZip([{ name: '/tmp/report.xml', data: xml }]), /refused zip: absolute path/);
  const started = Date.now();
  const e = await refused(makeZip([{ name: 'big.xml', data: xml, declaredSize: 3 * 1024 * 1024 * 1024 }]), /declares 3 GiB uncompressed.*refused without inflating/);
  assert.equal(e.field, 'zip member big.xml');
  assert.ok(Date.now() - started < 1000);
  // Declares 100 bytes, inflates to much more: the stream is cut off at the declared size.
  const big = Buffer.from(reportXml({ records: 50 }));
  await refused(makeZip([{ name: 'liar.xml', data: big, declaredSize: 100 }]), /too many bytes|corrupt zip member/);
  await refused(makeZip([]), /zip holds no file/);
});

test('report mails: attachment last or first, single-part gzip body, quoted-printable XML', async () => {
  const zip = makeZip([{ name: 'receiver.example!example.com!1700000000!1700086399.xml', data: xml }]);
  const last = await read(makeMail(zip, 'r.zip', 'application/zip', 'attachment-last'));
  assert.equal(last.container, 'eml+zip');
  assertFigures(last);
  const first = await read(makeMail(gzipSync(xml), 'r.xml.gz', 'application/gzip', 'attachment-first'));
  assert.equal(first.container, 'eml+gzip');
  assertFigures(first);
  assert.equal(first.member, 'r.xml.gz');
  const single = await read(makeMail(gzipSync(xml), 'r.xml.gz', 'application/gzip', 'single-part'));
  assert.equal(single.container, 'eml+gzip');
  assertFigures(single);
  const qp = await read(makeMail(Buffer.from(reportXml({ records: 3, count: 2, org: 'receiver.example' })), 'r.xml', 'text/xml', 'quoted-printable-xml'));
  assert.equal(qp.container, 'eml');
  assertFigures(qp);
  await refused(makeMail(Buffer.from('just some text'), 'notes.txt', 'text/plain', 'attachment-last'), /no aggregate report attachment/);
});

test('gzip bomb of whitespace (2 GiB) is refused after one token cap, in bounded memory, with default limits', async () => {
  const member = gzipSync(Buffer.alloc(16 * 1024 * 1024, 0x20));
  const bomb = Buffer.concat([gzipSync(Buffer.from('<feedback>')), ...Array.from({ length: 128 }, () => member)]);
  assert.ok(bomb.length < 4 * 1024 * 1024, 'the bomb is small');
  const before = process.resourceUsage().maxRSS;
  const started = Date.now();
  await refused(bomb, /longer than 1048576 characters/);
  assert.ok(Date.now() - started < 5000, 'refused fast');
  const grew = (process.resourceUsage().maxRSS - before) / 1024;
  assert.ok(grew < 150, `peak RSS grew ${grew.toFixed(0)} MB`);
});

test('gzip bomb of small elements is refused at the decompressed-bytes cap, memory flat', async () => {
  const member = gzipSync(Buffer.from('<x/>'.repeat(4 * 1024 * 1024)));
  const bomb = Buffer.concat([gzipSync(Buffer.from(reportHead())), ...Array.from({ length: 64 }, () => member)]);
  const before = process.resourceUsage().maxRSS;
  await refused(bomb, /decompressed report is larger than 8 MiB/, { limits: { maxXmlBytes: 8 * 1024 * 1024 } });
  const grew = (process.resourceUsage().maxRSS - before) / 1024;
  assert.ok(grew < 150, `peak RSS grew ${grew.toFixed(0)} MB`);
});

test('billion laughs and any DTD are refused before anything expands; undeclared entities are not well-formed', async () => {
  const laughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name></report_metadata></feedback>`;
  const started = Date.now();
  const e = await refused(Buffer.from(laughs), /DOCTYPE declarations are refused/);
  assert.equal(e.field, 'DOCTYPE');
  await refused(gzipSync(Buffer.from(laughs)), /DOCTYPE declarations are refused/);
  const xxe = '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><feedback>&x;</feedback>';
  await refused(Buffer.from(xxe), /DOCTYPE/);
  await refused(Buffer.from(reportXml().replace('<org_name>receiver.example', '<org_name>&lol9;')), /undefined entity/);
  assert.ok(Date.now() - started < 1000);
});

test('caps on records, element depth and attributes', async () => {
  await refused(Buffer.from(reportXml({ records: 11 })), /more than 10 records/, { limits: { maxRecords: 10 } });
  assertFigures(await read(Buffer.from(reportXml({ records: 10, count: 1 })), { limits: { maxRecords: 10 } }), 10, 10);
  const deep = reportHead() + '<a>'.repeat(100) + '</a>'.repeat(100) + REPORT_TAIL;
  await refused(Buffer.from(deep), /nested more than 32 deep/);
  const attrs = reportHead().replace('<policy_published>', `<policy_published ${Array.from({ length: 100 }, (_, i) => `a${i}="1"`).join(' ')}>`) + REPORT_TAIL;
  await refused(Buffer.from(attrs), /more than 64 attributes/);
});

test('values are trimmed and compared case-insensitively; report_id stays a string', async () => {
  const doc = reportXml({ records: 2, count: 5, dkim: ' PASS ' })
    .replace('<report_id>r-1</report_id>', '<report_id>\n  28327321193681154911721360800 </report_id>')
    .replace('<org_name>receiver.example</org_name>', '<org_name> receiver.example\t</org_name>');
  const r = await read(Buffer.from(doc));
  assert.equal(r.header.metadata.report_id, '28327321193681154911721360800');
  assert.equal(r.header.metadata.org, 'receiver.example');
  assert.equal(r.figures.dmarc_pass, 10);
  const rows: string[] = [];
  await readReport({ bytes: Buffer.from(doc) }, { sink: { records: (b) => void rows.push(...b.map((x) => x.dkim ?? '')) } });
  assert.deepEqual(rows, ['pass', 'pass']);
});

test('namespaces: none, RFC 7489 draft and RFC 9990 accepted; an unknown one refused; foreign extension elements ignored', async () => {
  const v2 = await read(Buffer.from(reportXml({ ns: 'urn:ietf:params:xml:ns:dmarc-2.0' })));
  assert.equal(v2.header.metadata.namespace, 'urn:ietf:params:xml:ns:dmarc-2.0');
  assert.equal((await read(Buffer.from(reportXml({ ns: 'http://dmarc.org/dmarc-xml/0.1' })))).figures.records, 2);
  const e = await refused(Buffer.from(reportXml({ ns: 'urn:example:other' })), /unknown namespace "urn:example:other"/);
  assert.equal(e.field, 'feedback');
  const ext = reportXml({ ns: 'urn:ietf:params:xml:ns:dmarc-2.0' }).replace(
    '<report_metadata>',
    '<x:extension xmlns:x="urn:example:ext"><x:org_name>not this</x:org_name></x:extension><report_metadata>',
  );
  assert.equal((await read(Buffer.from(ext))).header.metadata.org, 'receiver.example');
});

test('encodings: UTF-16 with a BOM, a declared windows-1252, an unknown encoding refused', async () => {
  const u16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(reportXml().replace('UTF-8', 'UTF-16'), 'utf16le')]);
  assert.equal((await read(u16)).figures.records, 2);
  const cp = Buffer.from(reportXml({ org: 'Receiver \x91Q\x92' }).replace('UTF-8', 'windows-1252'), 'latin1');
  const r = await read(cp);
  assert.equal(r.header.metadata.org, 'Receiver \u2018Q\u2019');
  assert.equal(r.repaired, null);
  await refused(Buffer.from(reportXml().replace('UTF-8', 'x-klingon')), /unsupported encoding "x-klingon"/);
});

test('lenient repairs: closed wrapper, content after </feedback>, invalid UTF-8; each recorded', async () => {
  const wrapped = await read(Buffer.from(`<wrap>${reportXml().replace(/^<\?xml[^>]*>/, '')}</wrap>`));
  assert.match(wrapped.repaired ?? '', /unwrapped <feedback> from <wrap>/);
  const after = await read(Buffer.from(`${reportXml()}garbage<`));
  assert.match(after.repaired ?? '', /ignored content after <\/feedback>/);
  const bad = Buffer.from(reportXml({ org: 'recv-XX' }));
  const at = bad.indexOf('XX');
  bad[at] = 0xff;
  bad[at + 1] = 0xfe;
  const r = await read(bad);
  assert.equal(r.header.metadata.org, 'recv-\uFFFD\uFFFD');
  assert.match(r.repaired ?? '', /replaced 2 invalid UTF-8 byte sequences/);
  // A real U+FFFD in the text is not a repair.
  assert.equal((await read(Buffer.from(reportXml({ org: 'recv-\uFFFD' })))).repaired, null);
});

test('schema errors name the field: missing report_id, bad count, missing domain, bad dates, wrong root', async () => {
  let e = await refused(Buffer.from(reportXml().replace('<report_id>r-1</report_id>', '')), /missing/);
  assert.equal(e.field, 'report_metadata/report_id');
  e = await refused(Buffer.from(reportHead() + recordXml(0, 1) + recordXml(1, 1).replace('<count>1</count>', '<count>many</count>') + REPORT_TAIL), /"many" is not a message count/);
  assert.equal(e.field, 'record[2]/row/count');
  e = await refused(Buffer.from(reportXml().replace('<domain>example.com</domain>\n    <adkim>', '<domain> </domain>\n    <adkim>')), /empty/);
  assert.equal(e.field, 'policy_published/domain');
  e = await refused(Buffer.from(reportXml({ begin: 1700086399, end: 1700000000 })), /end \(1700000000\) is before begin/);
  assert.equal(e.field, 'report_metadata/date_range');
  e = await refused(Buffer.from('<?xml version="1.0"?><html><body/></html>'), /no <feedback> element \(the root element is <html>\)/);
  await refused(Buffer.from('%PDF-1.4 not a report'), /not XML, gzip, zip, zlib or a mail/);
  await refused(Buffer.from('  \n\t '), /empty file \(only whitespace\)/);
});

test('every truncation of a gzip, zip and mail report is refused with a ReportError, never an internal error', async () => {
  const small = Buffer.from(reportXml({ records: 1 }));
  const packed = {
    gzip: gzipSync(small),
    zip: makeZip([{ name: 'r.xml', data: small }]),
    mail: makeMail(gzipSync(small), 'r.xml.gz', 'application/gzip', 'attachment-last'),
  };
  for (const [kind, whole] of Object.entries(packed)) {
    assert.equal((await read(whole)).figures.records, 1, `${kind} whole`);
    const step = kind === 'mail' ? 7 : 1;
    for (let cut = 1; cut < whole.length - (kind === 'mail' ? 40 : 0); cut += step) {
      let outcome: unknown = 'read';
      try {
        await read(whole.subarray(0, cut));
      } catch (e) {
        outcome = e;
      }
      assert.ok(outcome instanceof ReportError, `${kind} cut at ${cut}/${whole.length}: ${String(outcome)}`);
    }
  }
});

test('corrupted bytes anywhere in xml, gzip, zip or mail input end read or refused with a ReportError', async () => {
  const fc = await import('fast-check');
  const small = Buffer.from(reportXml({ records: 2 }));
  const bases = [small, gzipSync(small), makeZip([{ name: 'r.xml', data: small }]), makeMail(makeZip([{ name: 'r.xml', data: small }]), 'r.zip', 'application/zip', 'attachment-first')];
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: bases.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      async (which, flips) => {
        const b = Buffer.from(bases[which]!);
        for (const [at, byte] of flips) b[at % b.length] = byte;
        try {
          const r = await read(b);
          assert.equal(r.figures.dmarc_pass + r.figures.dmarc_fail, r.figures.messages);
        } catch (e) {
          assert.ok(e instanceof ReportError, `internal error on corrupted input: ${String(e)}`);
        }
      },
    ),
    { numRuns: 400, seed: 20261123 },
  );
});
