/**
 * The `_dmarc` record module against the stage table of the design (for both
 * kinds of receiver), its editing rules, every validation problem, and the
 * TXT character-string helpers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  RECORD_MAX_RDATA_OCTETS,
  RECORD_UDP_SAFE_RDATA_OCTETS,
  editRecordForStage,
  interpretRecord,
  joinTxtStrings,
  parseRecord,
  parseStageLabel,
  quoteTxt,
  recordForStage,
  serializeRecord,
  splitTxtStrings,
  stageLabel,
  txtRdataOctets,
  unquoteTxt,
  validateRecord,
  type EditResult,
  type Policy,
  type ProblemCode,
  type RecordProblem,
  type StageTarget,
} from '../src/record/index.js';

function record(result: EditResult): string {
  if (!result.ok) assert.fail(`expected a record, got problems: ${JSON.stringify(result.problems)}`);
  return result.record;
}

function problems(result: EditResult): RecordProblem[] {
  if (result.ok) assert.fail(`expected a refusal, got ${JSON.stringify(result.record)}`);
  return result.problems;
}

function codes(list: RecordProblem[]): string[] {
  return list.map((p) => `${p.severity}:${p.code}:${p.tag ?? '-'}`);
}

interface Applied {
  applied: Policy;
  percent: number;
  rest: Policy | null;
}

// The design's table, row by row: what is written, and what each kind of
// receiver does with failing mail from the domain.
const STAGE_TABLE: Array<{ label: string; written: string; rfc7489: Applied; rfc9989: Applied & { testing: boolean } }> = [
  {
    label: 'none:100',
    written: 'v=DMARC1; p=none',
    rfc7489: { applied: 'none', percent: 100, rest: null },
    rfc9989: { applied: 'none', percent: 100, rest: null, testing: false },
  },
  {
    label: 'quarantine:5',
    written: 'v=DMARC1; p=quarantine; pct=5; t=y',
    rfc7489: { applied: 'quarantine', percent: 5, rest: 'none' },
    rfc9989: { applied: 'none', percent: 100, rest: null, testing: true },
  },
  {
    label: 'quarantine:100',
    written: 'v=DMARC1; p=quarantine',
    rfc7489: { applied: 'quarantine', percent: 100, rest: null },
    rfc9989: { applied: 'quarantine', percent: 100, rest: null, testing: false },
  },
  {
    label: 'reject:25',
    written: 'v=DMARC1; p=reject; pct=25; t=y',
    rfc7489: { applied: 'reject', percent: 25, rest: 'quarantine' },
    rfc9989: { applied: 'quarantine', percent: 100, rest: null, testing: true },
  },
  {
    label: 'reject:100',
    written: 'v=DMARC1; p=reject',
    rfc7489: { applied: 'reject', percent: 100, rest: null },
    rfc9989: { applied: 'reject', percent: 100, rest: null, testing: false },
  },
];

describe('stage table', () => {
  for (const row of STAGE_TABLE) {
    test(`${row.label} is written as "${row.written}" and read as the design says`, () => {
      const written = record(recordForStage(parseStageLabel(row.label)));
      assert.equal(written, row.written);
      const meaning = interpretRecord(written);
      assert.equal(meaning.valid, true);
      assert.deepEqual(meaning.problems, []);
      for (const kind of ['rfc7489', 'rfc9989'] as const) {
        const view = meaning[kind];
        assert.equal(view.usesRecord, true);
        const { testing, ...expected } = { testing: false, ...row[kind] };
        assert.equal(view.testing, testing, kind);
        for (const scope of [view.domain, view.subdomains, view.nonExistentSubdomains]) {
          assert.ok(scope);
          assert.deepEqual({ applied: scope.applied, percent: scope.percent, rest: scope.rest }, expected, kind);
        }
      }
    });
  }

  test('every stage of the default plan gives a valid record both receivers read safely', () => {
    const plan = ['none:100', ...[1, 5, 10, 25, 50, 100].map((n) => `quarantine:${n}`), ...[1, 5, 10, 25, 50, 100].map((n) => `reject:${n}`)];
    for (const label of plan) {
      const stage = parseStageLabel(label);
      const written = record(recordForStage(stage));
      const meaning = interpretRecord(written);
      assert.equal(meaning.valid, true, label);
      const r7489 = meaning.rfc7489.domain!;
      const r9989 = meaning.rfc9989.domain!;
      assert.equal(r7489.requested, stage.policy, label);
      if (stage.pct < 100) {
        // Below 100%, neither kind of receiver may apply the stage's full policy to all failing mail.
        assert.equal(r7489.percent, stage.pct, label);
        assert.equal(r9989.applied === stage.policy, false, label);
        assert.match(written, new RegExp(`; pct=${stage.pct}; t=y$`), label);
      } else {
        assert.equal(r7489.applied, stage.policy, label);
        assert.equal(r9989.applied, stage.policy, label);
        assert.doesNotMatch(written, /pct=|t=/, label);
      }
    }
  });

  test('summaries say in words what each receiver does', () => {
    const meaning = interpretRecord('v=DMARC1; p=reject; pct=25; t=y');
    assert.equal(meaning.rfc7489.summary, 'RFC 7489 receiver: failing mail from the domain and its subdomains: 25% rejected, the rest quarantined.');
    assert.match(meaning.rfc9989.summary, /^RFC 9989 receiver \(testing, t=y.*\): failing mail from the domain and its subdomains: quarantined\.$/);
    assert.match(interpretRecord('v=DMARC1; p=none').rfc9989.summary, /monitored only/);
  });
});

describe('stage labels', () => {
  test('read and write policy:pct', () => {
    assert.deepEqual(parseStageLabel('quarantine:5'), { policy: 'quarantine', pct: 5 });
    assert.deepEqual(parseStageLabel('reject'), { policy: 'reject', pct: 100 });
    assert.deepEqual(parseStageLabel('none:100'), { policy: 'none', pct: 100 });
    assert.equal(stageLabel({ policy: 'quarantine', pct: 5 }), 'quarantine:5');
    assert.equal(stageLabel({ policy: 'reject', pct: 100 }), 'reject:100');
  });

  test('refuse what is not a stage, saying why', () => {
    assert.throws(() => parseStageLabel('none:5'), /none:5 is not a stage/);
    assert.throws(() => parseStageLabel('reject:0'), /pct must be an integer from 1 to 100/);
    assert.throws(() => parseStageLabel('reject:101'), /pct must be an integer from 1 to 100/);
    assert.throws(() => parseStageLabel('reject:05'), /expected <policy>:<pct>/);
    assert.throws(() => parseStageLabel('Reject:5'), /expected <policy>:<pct>/);
    assert.throws(() => parseStageLabel('block:5'), /expected <policy>:<pct>/);
    assert.throws(() => parseStageLabel('quarantine:5.5'), /expected <policy>:<pct>/);
    assert.throws(() => parseStageLabel(''), /expected <policy>:<pct>/);
    assert.throws(() => stageLabel({ policy: 'none', pct: 50 }), /not a stage/);
    assert.throws(() => stageLabel({ policy: 'quarantine', pct: 2.5 }), /integer/);
  });
});

describe('editing for a stage', () => {
  const owner = 'v=DMARC1; p=none; rua=mailto:agg@example.com,mailto:agg@vendor.example; ruf=mailto:forensic@example.com; fo=1; adkim=s; aspf=r; xnote=keep me';

  test('changes only the managed tags and keeps every other tag in its order', () => {
    assert.equal(
      record(editRecordForStage(owner, { policy: 'quarantine', pct: 10 })),
      'v=DMARC1; p=quarantine; pct=10; t=y; rua=mailto:agg@example.com,mailto:agg@vendor.example; ruf=mailto:forensic@example.com; fo=1; adkim=s; aspf=r; xnote=keep me',
    );
    assert.equal(
      record(editRecordForStage(owner, { policy: 'reject', pct: 100 })),
      'v=DMARC1; p=reject; rua=mailto:agg@example.com,mailto:agg@vendor.example; ruf=mailto:forensic@example.com; fo=1; adkim=s; aspf=r; xnote=keep me',
    );
  });

  test('a managed tag that exists keeps its place; a new one goes right after p', () => {
    assert.equal(
      record(editRecordForStage('v=DMARC1; p=none; fo=1; pct=100; rua=mailto:a@example.com', { policy: 'quarantine', pct: 5 })),
      'v=DMARC1; p=quarantine; t=y; fo=1; pct=5; rua=mailto:a@example.com',
    );
    assert.equal(
      record(editRecordForStage('v=DMARC1; p=quarantine; fo=1; t=n; adkim=s', { policy: 'reject', pct: 50 })),
      'v=DMARC1; p=reject; pct=50; fo=1; t=y; adkim=s',
    );
  });

  test('pct and t are removed when the stage reaches 100%', () => {
    assert.equal(
      record(editRecordForStage('v=DMARC1; p=reject; pct=50; t=y; rua=mailto:a@example.com', { policy: 'reject', pct: 100 })),
      'v=DMARC1; p=reject; rua=mailto:a@example.com',
    );
    assert.equal(record(editRecordForStage('v=DMARC1; p=reject; t=n', { policy: 'none', pct: 100 })), 'v=DMARC1; p=none');
  });

  test('p is moved to second place and tag names are lowercased', () => {
    assert.equal(
      record(editRecordForStage('V=DMARC1; RUA=mailto:a@example.com; P=none; FO=1', { policy: 'quarantine', pct: 100 })),
      'v=DMARC1; p=quarantine; rua=mailto:a@example.com; fo=1',
    );
  });

  test('a record with rua but no p gets a p', () => {
    assert.equal(record(editRecordForStage('v=DMARC1; rua=mailto:a@example.com', { policy: 'none', pct: 100 })), 'v=DMARC1; p=none; rua=mailto:a@example.com');
  });

  test('whitespace and a trailing separator are normalised', () => {
    assert.equal(
      record(editRecordForStage('v = DMARC1 ;p=none;\trua=mailto:a@example.com ;', { policy: 'reject', pct: 1 })),
      'v=DMARC1; p=reject; pct=1; t=y; rua=mailto:a@example.com',
    );
    assert.equal(record(editRecordForStage(' v=DMARC1; p=none', { policy: 'none', pct: 100 })), 'v=DMARC1; p=none');
  });

  test('sp and np change only when the plan manages them', () => {
    const current = 'v=DMARC1; p=none; sp=none; rua=mailto:a@example.com';
    assert.equal(record(editRecordForStage(current, { policy: 'reject', pct: 100 })), 'v=DMARC1; p=reject; sp=none; rua=mailto:a@example.com');
    assert.equal(
      record(editRecordForStage(current, { policy: 'reject', pct: 10 }, { manage: { sp: 'quarantine', np: 'reject' } })),
      'v=DMARC1; p=reject; pct=10; t=y; np=reject; sp=quarantine; rua=mailto:a@example.com',
    );
    assert.equal(
      record(recordForStage({ policy: 'quarantine', pct: 5 }, { manage: { sp: 'none', np: 'quarantine' } })),
      'v=DMARC1; p=quarantine; pct=5; t=y; sp=none; np=quarantine',
    );
  });

  test('rua is replaced in place, or added after the managed tags', () => {
    assert.equal(
      record(editRecordForStage(owner, { policy: 'none', pct: 100 }, { rua: ['mailto:new@example.com', 'mailto:two@example.com'] })),
      'v=DMARC1; p=none; rua=mailto:new@example.com,mailto:two@example.com; ruf=mailto:forensic@example.com; fo=1; adkim=s; aspf=r; xnote=keep me',
    );
    assert.equal(
      record(editRecordForStage('v=DMARC1; p=none; fo=1', { policy: 'reject', pct: 5 }, { rua: ['mailto:new@example.com'] })),
      'v=DMARC1; p=reject; pct=5; t=y; rua=mailto:new@example.com; fo=1',
    );
    assert.equal(record(recordForStage({ policy: 'reject', pct: 100 }, { rua: ['mailto:r@example.com'] })), 'v=DMARC1; p=reject; rua=mailto:r@example.com');
  });

  test('broken managed values are repaired by the edit', () => {
    assert.equal(
      record(editRecordForStage('v=DMARC1; p=rejet; pct=abc; t=maybe; rua=mailto:a@example.com', { policy: 'quarantine', pct: 25 })),
      'v=DMARC1; p=quarantine; pct=25; t=y; rua=mailto:a@example.com',
    );
    assert.equal(record(editRecordForStage('v=DMARC1; p=; pct=', { policy: 'reject', pct: 100 })), 'v=DMARC1; p=reject');
  });

  test('a blank current record is a fresh one', () => {
    assert.equal(record(editRecordForStage('', { policy: 'none', pct: 100 })), 'v=DMARC1; p=none');
    assert.equal(record(editRecordForStage('  ', { policy: 'reject', pct: 100 })), 'v=DMARC1; p=reject');
  });

  test('warnings about tags the owner wrote come back with the record', () => {
    const result = editRecordForStage('v=DMARC1; p=none; rf=afrf; xnote=1', { policy: 'reject', pct: 100 });
    assert.ok(result.ok);
    assert.deepEqual(codes(result.warnings), ['warning:historic-tag:rf', 'warning:unknown-tag:xnote']);
  });

  test('editing its own output again changes nothing', () => {
    for (const row of STAGE_TABLE) {
      const once = record(editRecordForStage(owner, parseStageLabel(row.label)));
      assert.equal(record(editRecordForStage(once, parseStageLabel(row.label))), once);
    }
  });

  describe('refuses, with the problems and no record', () => {
    test('a stage that is not one', () => {
      assert.deepEqual(codes(problems(recordForStage({ policy: 'none', pct: 5 }))), ['error:bad-stage:-']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 0 }))), ['error:bad-stage:-']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 7.5 }))), ['error:bad-stage:-']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'block' as Policy, pct: 100 }))), ['error:bad-stage:-']);
    });

    test('options that are not valid', () => {
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 100 }, { manage: { sp: 'nope' as Policy } }))), ['error:bad-option:sp']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 100 }, { rua: [] }))), ['error:bad-option:rua']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 100 }, { rua: ['mailto:a@example.com; p=none'] }))), ['error:bad-option:rua']);
    });

    test('a current record an edit cannot repair', () => {
      const junk = problems(editRecordForStage('v=DMARC1; p=none; hello world', { policy: 'reject', pct: 100 }));
      assert.deepEqual(codes(junk), ['error:syntax:-']);
      assert.match(junk[0]!.reason, /^current record: "hello world" is not a tag=value pair$/);
      assert.deepEqual(codes(problems(editRecordForStage('v=DMARC1; p=none; p=reject', { policy: 'reject', pct: 100 }))), ['error:duplicate-tag:p']);
      assert.deepEqual(codes(problems(editRecordForStage('p=none; rua=mailto:a@example.com', { policy: 'reject', pct: 100 }))), ['error:missing-version:v']);
      assert.deepEqual(codes(problems(editRecordForStage('p=none; v=DMARC1', { policy: 'reject', pct: 100 }))), ['error:misplaced-version:v']);
      assert.deepEqual(codes(problems(editRecordForStage('v=spf1 -all', { policy: 'reject', pct: 100 }))), ['error:bad-version:v']);
    });

    test('a result that would be invalid because of a tag the owner wrote', () => {
      const list = problems(editRecordForStage('v=DMARC1; p=none; rua=https://example.com/r; adkim=x', { policy: 'reject', pct: 100 }));
      assert.deepEqual(codes(list), ['error:non-mailto-uri:rua', 'error:bad-alignment:adkim']);
      assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 100 }, { rua: ['dmarc@example.com'] }))), ['error:bad-uri:rua']);
    });
  });
});

describe('validation', () => {
  test('a well-formed record has no problems', () => {
    assert.deepEqual(
      validateRecord('v=DMARC1; p=reject; sp=quarantine; np=reject; psd=n; adkim=s; aspf=r; fo=0:d:s; rua=mailto:a@example.com,mailto:b%2Bx@example.org; ruf=mailto:f@example.com?subject=dmarc;'),
      [],
    );
    assert.deepEqual(validateRecord('v=DMARC1; p=Quarantine; pct=50; t=Y'), []);
  });

  // One record per problem, each differing from a clean record only in what
  // the problem is about, so every row proves its own check fires.
  const cases: Array<[string, ProblemCode, string | null, 'error' | 'warning']> = [
    ['v=DMARC1; p=none; junk', 'syntax', null, 'error'],
    ['v=DMARC1; p=none; =x', 'syntax', null, 'error'],
    ['v=DMARC1; p=none; 9x=1', 'syntax', null, 'error'],
    ['v=DMARC1; p=none; xnote=caf\u00e9', 'bad-characters', 'xnote', 'error'],
    ['v=DMARC1; p=none; xnote=a\u0007b', 'bad-characters', 'xnote', 'error'],
    [' v=DMARC1; p=none', 'leading-space', null, 'error'],
    ['v=DMARC1;; p=none', 'empty-segment', null, 'warning'],
    ['v=DMARC1; p=none; rua=', 'empty-tag', 'rua', 'error'],
    ['v=DMARC1; p=none; fo=1; fo=0', 'duplicate-tag', 'fo', 'error'],
    ['p=none', 'missing-version', 'v', 'error'],
    ['p=none; v=DMARC1', 'misplaced-version', 'v', 'error'],
    ['junk; v=DMARC1; p=none', 'misplaced-version', 'v', 'error'],
    ['v=DMARC2; p=none', 'bad-version', 'v', 'error'],
    ['v=dmarc1; p=none', 'bad-version', 'v', 'error'],
    ['v=DMARC1', 'missing-policy', 'p', 'error'],
    ['v=DMARC1; rua=mailto:a@example.com; p=none', 'misplaced-policy', 'p', 'warning'],
    ['v=DMARC1; p=block', 'bad-policy', 'p', 'error'],
    ['v=DMARC1; p=none; sp=rejet', 'bad-policy', 'sp', 'error'],
    ['v=DMARC1; p=none; np=all', 'bad-policy', 'np', 'error'],
    ['v=DMARC1; p=reject; pct=101; t=y', 'bad-pct', 'pct', 'error'],
    ['v=DMARC1; p=reject; pct=-1; t=y', 'bad-pct', 'pct', 'error'],
    ['v=DMARC1; p=reject; pct=12.5; t=y', 'bad-pct', 'pct', 'error'],
    ['v=DMARC1; p=reject; pct=ten; t=y', 'bad-pct', 'pct', 'error'],
    ['v=DMARC1; p=reject; pct=10; t=yes', 'bad-flag', 't', 'error'],
    ['v=DMARC1; p=reject; psd=x', 'bad-flag', 'psd', 'error'],
    ['v=DMARC1; p=reject; adkim=relaxed', 'bad-alignment', 'adkim', 'error'],
    ['v=DMARC1; p=reject; aspf=x', 'bad-alignment', 'aspf', 'error'],
    ['v=DMARC1; p=reject; fo=2', 'bad-fo', 'fo', 'error'],
    ['v=DMARC1; p=reject; fo=1:', 'bad-fo', 'fo', 'error'],
    ['v=DMARC1; p=reject; fo=1,d', 'bad-fo', 'fo', 'error'],
    ['v=DMARC1; p=reject; rua=dmarc@example.com', 'bad-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; rua=mailto:dmarc', 'bad-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; rua=mailto:dmarc@example', 'bad-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; rua=mailto:a b@example.com', 'bad-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; rua=mailto:a@example.com,', 'bad-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; ruf=mailto:a@example.com!big', 'bad-uri', 'ruf', 'error'],
    ['v=DMARC1; p=reject; rua=https://example.com/dmarc', 'non-mailto-uri', 'rua', 'error'],
    ['v=DMARC1; p=reject; ruf=mailto:a@example.com,ftp://example.com/x', 'non-mailto-uri', 'ruf', 'error'],
    ['v=DMARC1; p=reject; rua=mailto:a@example.com!10m', 'obsolete-size-limit', 'rua', 'warning'],
    ['v=DMARC1; p=reject; rf=afrf', 'historic-tag', 'rf', 'warning'],
    ['v=DMARC1; p=reject; ri=86400', 'historic-tag', 'ri', 'warning'],
    ['v=DMARC1; p=reject; pct=100', 'historic-tag', 'pct', 'warning'],
    ['v=DMARC1; p=reject; xyz=1', 'unknown-tag', 'xyz', 'warning'],
    ['v=DMARC1; p=reject; pct=10', 'receivers-disagree', 'pct', 'warning'],
    ['v=DMARC1; p=reject; t=y', 'receivers-disagree', 't', 'warning'],
  ];
  for (const [text, code, tag, severity] of cases) {
    test(`${severity} ${code} on ${JSON.stringify(text)}`, () => {
      const found = validateRecord(text).filter((p) => p.code === code);
      assert.deepEqual(found.map((p) => [p.severity, p.tag]), [[severity, tag]]);
      assert.ok(found[0]!.reason.length > 10);
      assert.equal(interpretRecord(text).valid, !validateRecord(text).some((p) => p.severity === 'error'));
    });
  }

  test('every problem is returned, not just the first', () => {
    const list = validateRecord('p=rejet; v=DMARC2; pct=200; t=x; adkim=q; fo=9; rua=http://x,mailto:bad; junk');
    assert.deepEqual(codes(list).sort(), [
      'error:bad-alignment:adkim',
      'error:bad-flag:t',
      'error:bad-fo:fo',
      'error:bad-pct:pct',
      'error:bad-policy:p',
      'error:bad-uri:rua',
      'error:bad-version:v',
      'error:misplaced-version:v',
      'error:non-mailto-uri:rua',
      'error:syntax:-',
    ]);
  });

  test('the empty record misses both v and p', () => {
    assert.deepEqual(codes(validateRecord('')), ['error:missing-version:v', 'error:missing-policy:p']);
  });

  test('length: a warning past what fits a 1232-octet UDP answer, an error past what DNS can carry', () => {
    assert.equal(RECORD_UDP_SAFE_RDATA_OCTETS, 938);
    assert.equal(RECORD_MAX_RDATA_OCTETS, 65252);
    const withLocal = (n: number) => `v=DMARC1; p=none; rua=mailto:${'a'.repeat(n)}@example.com`;
    const prefix = withLocal(0).length;
    // 934 octets take 4 strings: 938 octets of RDATA, the most that fits.
    const fits = withLocal(934 - prefix);
    assert.equal(txtRdataOctets(fits), 938);
    assert.deepEqual(validateRecord(fits), []);
    const over = withLocal(935 - prefix);
    assert.equal(txtRdataOctets(over), 939);
    assert.deepEqual(codes(validateRecord(over)), ['warning:long-for-udp:-']);
    // 64997 octets take 255 strings: 65252 octets of RDATA.
    const largest = withLocal(64997 - prefix);
    assert.equal(txtRdataOctets(largest), 65252);
    assert.deepEqual(codes(validateRecord(largest)), ['warning:long-for-udp:-']);
    assert.deepEqual(codes(validateRecord(withLocal(64998 - prefix))), ['error:too-long:-']);
    assert.deepEqual(codes(problems(recordForStage({ policy: 'reject', pct: 100 }, { rua: [`mailto:${'b'.repeat(70000)}@example.com`] }))), ['error:too-long:-']);
  });
});

describe('parsing and serialising', () => {
  test('tags come back in order, names lowercased, values as written', () => {
    const parsed = parseRecord('v=DMARC1; P=Reject ; RUA = mailto:A@Example.com; x_y=a=b');
    assert.deepEqual(parsed.tags, [
      { name: 'v', value: 'DMARC1' },
      { name: 'p', value: 'Reject' },
      { name: 'rua', value: 'mailto:A@Example.com' },
      { name: 'x_y', value: 'a=b' },
    ]);
    assert.deepEqual(parsed.problems, []);
    assert.equal(serializeRecord(parsed.tags), 'v=DMARC1; p=Reject; rua=mailto:A@Example.com; x_y=a=b');
  });

  test('junk is reported and left out of the tags', () => {
    const parsed = parseRecord('v=DMARC1; nonsense; p=none');
    assert.deepEqual(parsed.tags.map((t) => t.name), ['v', 'p']);
    assert.deepEqual(codes(parsed.problems), ['error:syntax:-']);
  });
});

describe('interpretation', () => {
  test('subdomains follow sp, else p; non-existent ones np under RFC 9989 only', () => {
    const meaning = interpretRecord('v=DMARC1; p=reject; sp=quarantine; np=none');
    assert.deepEqual(
      [meaning.rfc7489.domain!.applied, meaning.rfc7489.subdomains!.applied, meaning.rfc7489.nonExistentSubdomains!.applied],
      ['reject', 'quarantine', 'quarantine'],
    );
    assert.equal(meaning.rfc7489.nonExistentSubdomains!.source, 'sp');
    assert.deepEqual(
      [meaning.rfc9989.domain!.applied, meaning.rfc9989.subdomains!.applied, meaning.rfc9989.nonExistentSubdomains!.applied],
      ['reject', 'quarantine', 'none'],
    );
    assert.equal(meaning.rfc9989.nonExistentSubdomains!.source, 'np');
    assert.equal(
      meaning.rfc9989.summary,
      'RFC 9989 receiver: failing mail from the domain: rejected; from existing subdomains: quarantined; from non-existent subdomains: monitored only.',
    );
    const noSp = interpretRecord('v=DMARC1; p=quarantine');
    assert.equal(noSp.rfc9989.nonExistentSubdomains!.source, 'p');
    assert.equal(noSp.rfc9989.nonExistentSubdomains!.applied, 'quarantine');
  });

  test('pct sampling applies to subdomains under RFC 7489, t=y to all policies under RFC 9989', () => {
    const meaning = interpretRecord('v=DMARC1; p=reject; sp=quarantine; pct=20; t=y');
    assert.deepEqual(meaning.rfc7489.subdomains, { requested: 'quarantine', source: 'sp', applied: 'quarantine', percent: 20, rest: 'none' });
    assert.deepEqual(meaning.rfc9989.subdomains, { requested: 'quarantine', source: 'sp', applied: 'none', percent: 100, rest: null });
  });

  test('each kind ignores the other kind\'s tag', () => {
    const pctOnly = interpretRecord('v=DMARC1; p=reject; pct=10');
    assert.equal(pctOnly.rfc7489.domain!.percent, 10);
    assert.deepEqual(pctOnly.rfc9989.domain, { requested: 'reject', source: 'p', applied: 'reject', percent: 100, rest: null });
    const tOnly = interpretRecord('v=DMARC1; p=reject; t=y');
    assert.deepEqual(tOnly.rfc7489.domain, { requested: 'reject', source: 'p', applied: 'reject', percent: 100, rest: null });
    assert.equal(tOnly.rfc9989.domain!.applied, 'quarantine');
  });

  test('an invalid pct counts as 100 for RFC 7489 receivers', () => {
    assert.equal(interpretRecord('v=DMARC1; p=quarantine; pct=abc').rfc7489.domain!.percent, 100);
  });

  test('psd is reported for RFC 9989 receivers', () => {
    const meaning = interpretRecord('v=DMARC1; p=reject; psd=y');
    assert.equal(meaning.rfc9989.psd, 'y');
    assert.equal(meaning.rfc7489.psd, null);
  });

  test('a record without a valid p (or with an invalid sp) is p=none when it has a usable rua, and nothing otherwise', () => {
    const withRua = interpretRecord('v=DMARC1; p=rejet; rua=mailto:a@example.com');
    assert.equal(withRua.valid, false);
    for (const view of [withRua.rfc7489, withRua.rfc9989]) {
      assert.equal(view.usesRecord, true);
      assert.deepEqual(view.domain, { requested: 'none', source: 'fallback', applied: 'none', percent: 100, rest: null });
      assert.match(view.note!, /invalid p/);
    }
    const badSp = interpretRecord('v=DMARC1; p=reject; sp=quarantin; rua=mailto:a@example.com');
    assert.equal(badSp.rfc7489.domain!.applied, 'none');
    const badNp = interpretRecord('v=DMARC1; p=reject; np=x; rua=mailto:a@example.com');
    assert.equal(badNp.rfc7489.domain!.applied, 'reject', 'RFC 7489 has no np and ignores it');
    assert.equal(badNp.rfc9989.domain!.applied, 'none');
    const mixedRua = interpretRecord('v=DMARC1; rua=https://example.com/x, mailto:a@example.com!5m');
    assert.equal(mixedRua.rfc7489.usesRecord, true, 'one usable URI among others is enough');
    const noRua = interpretRecord('v=DMARC1; rua=https://example.com/x');
    for (const view of [noRua.rfc7489, noRua.rfc9989]) {
      assert.equal(view.usesRecord, false);
      assert.equal(view.domain, null);
      assert.match(view.summary, /no DMARC policy/);
    }
  });

  test('a record that does not begin with v=DMARC1 is no DMARC record', () => {
    for (const text of ['p=reject; v=DMARC1', 'v=DMARC2; p=reject', 'spf1 -all', '']) {
      const meaning = interpretRecord(text);
      assert.equal(meaning.rfc7489.usesRecord, false, text);
      assert.equal(meaning.rfc9989.usesRecord, false, text);
    }
  });
});

describe('TXT character-strings', () => {
  test('split into strings of at most 255 octets and join back', () => {
    const text = 'x'.repeat(600);
    const parts = splitTxtStrings(text);
    assert.deepEqual(parts.map((p) => p.length), [255, 255, 90]);
    assert.equal(joinTxtStrings(parts), text);
    assert.deepEqual(splitTxtStrings(''), ['']);
    assert.deepEqual(splitTxtStrings('x'.repeat(255)), ['x'.repeat(255)]);
  });

  test('count UTF-8 octets and never split inside a character', () => {
    const twoOctet = `${'a'.repeat(254)}\u00e9b`;
    assert.deepEqual(splitTxtStrings(twoOctet), ['a'.repeat(254), '\u00e9b']);
    const fourOctet = `${'a'.repeat(253)}\u{1F600}`;
    assert.deepEqual(splitTxtStrings(fourOctet), ['a'.repeat(253), '\u{1F600}']);
    const allMultibyte = '\u20ac'.repeat(200);
    const parts = splitTxtStrings(allMultibyte);
    assert.deepEqual(parts.map((p) => Buffer.byteLength(p)), [255, 255, 90]);
    assert.equal(joinTxtStrings(parts), allMultibyte);
  });

  test('quote and unquote presentation format', () => {
    assert.equal(quoteTxt(['v=DMARC1; p=none', 'a"b\\c']), '"v=DMARC1; p=none" "a\\"b\\\\c"');
    assert.deepEqual(unquoteTxt('"v=DMARC1; p=none" "a\\"b\\\\c"'), ['v=DMARC1; p=none', 'a"b\\c']);
    assert.deepEqual(unquoteTxt('  "a"  bare\t"c"\n'), ['a', 'bare', 'c']);
    assert.deepEqual(unquoteTxt('"caf\\195\\169" "\\065\\x"'), ['caf\u00e9', 'Ax']);
    assert.deepEqual(unquoteTxt('""'), ['']);
    assert.deepEqual(unquoteTxt('"a\\\u{1F600}b" c\\ d'), ['a\u{1F600}b', 'c d']);
    assert.deepEqual(unquoteTxt('v=DMARC1; p=none; rua=mailto:a@example.com'), ['v=DMARC1; p=none; rua=mailto:a@example.com']);
    assert.throws(() => unquoteTxt('"v=DMARC1; p=none'), /unterminated/);
    assert.throws(() => unquoteTxt('"abc\\'), /unterminated|cut off/);
    assert.throws(() => unquoteTxt('"\\256"'), /up to 255/);
  });

  test('a record longer than 255 octets survives split, quote, unquote and join', () => {
    const long = `v=DMARC1; p=reject; rua=${Array.from({ length: 15 }, (_, i) => `mailto:r\u00e9port${i}@example.com`).join(',')}; xnote="quoted\\"`;
    assert.ok(Buffer.byteLength(long) > 255);
    const presentation = quoteTxt(splitTxtStrings(long));
    assert.equal(joinTxtStrings(unquoteTxt(presentation)), long);
  });
});
