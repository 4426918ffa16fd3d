/**
 * Properties of the record module over generated records: parsing and
 * serialising round-trip, a stage edit preserves every tag the owner wrote
 * in its order, and TXT strings split, quote and join back losslessly.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  editRecordForStage,
  interpretRecord,
  joinTxtStrings,
  parseRecord,
  quoteTxt,
  serializeRecord,
  splitTxtStrings,
  unquoteTxt,
  validateRecord,
  type Policy,
  type RecordTag,
  type StageTarget,
} from '../src/record/index.js';

const policy = fc.constantFrom<Policy>('none', 'quarantine', 'reject');

const stage: fc.Arbitrary<StageTarget> = fc.oneof(
  fc.constant<StageTarget>({ policy: 'none', pct: 100 }),
  fc.record({ policy: fc.constantFrom<Policy>('quarantine', 'reject'), pct: fc.integer({ min: 1, max: 100 }) }),
);

const mailto = fc
  .tuple(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,15}$/), fc.stringMatching(/^[a-z0-9]{1,10}\.(com|org|example)$/))
  .map(([local, domain]) => `mailto:${local}@${domain}`);

// A printable-ASCII value without `;` and without whitespace at its ends.
const freeValue = fc.stringMatching(/^[!-:<-~]([ -:<-~]{0,20}[!-:<-~])?$/);

const MANAGED = new Set(['v', 'p', 'pct', 't', 'sp', 'np']);
const KNOWN = new Set([...MANAGED, 'psd', 'adkim', 'aspf', 'fo', 'rua', 'ruf', 'rf', 'ri']);

// fc.record builds null-prototype objects, which deepEqual tells apart from the parser's plain ones.
const tag = (name: fc.Arbitrary<string>, value: fc.Arbitrary<string>): fc.Arbitrary<RecordTag> =>
  fc.tuple(name, value).map(([n, v]) => ({ name: n, value: v }));

/** A tag the owner may write that no stage edit manages, with a valid value. */
const unmanagedTag: fc.Arbitrary<RecordTag> = fc.oneof(
  tag(fc.constant('rua'), fc.array(mailto, { minLength: 1, maxLength: 3 }).map((uris) => uris.join(','))),
  tag(fc.constant('ruf'), mailto),
  tag(fc.constantFrom('adkim', 'aspf'), fc.constantFrom('r', 's', 'R', 'S')),
  tag(fc.constant('fo'), fc.array(fc.constantFrom('0', '1', 'd', 's'), { minLength: 1, maxLength: 4 }).map((o) => o.join(':'))),
  tag(fc.constant('psd'), fc.constantFrom('y', 'n', 'u')),
  tag(fc.constant('rf'), fc.constant('afrf')),
  tag(fc.constant('ri'), fc.integer({ min: 1, max: 604800 }).map(String)),
  tag(fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/).filter((n) => !KNOWN.has(n)), freeValue),
);

const unmanagedTags = fc.uniqueArray(unmanagedTag, { selector: (tag) => tag.name, maxLength: 8 });

/** Managed tags an owner's record may already hold, with any values, valid or not. */
const managedExtras = fc.uniqueArray(
  fc.oneof(
    tag(fc.constant('pct'), fc.oneof(fc.integer({ min: 0, max: 100 }).map(String), fc.constant('abc'))),
    tag(fc.constant('t'), fc.constantFrom('y', 'n', 'maybe')),
    tag(fc.constant('sp'), fc.constantFrom('none', 'quarantine', 'reject')),
    tag(fc.constant('np'), fc.constantFrom('none', 'quarantine', 'reject')),
  ),
  { selector: (tag) => tag.name, maxLength: 4 },
);

/** An owner's record: v, p, then unmanaged and managed tags interleaved at random. */
const ownerRecord = fc
  .tuple(policy, unmanagedTags, managedExtras, fc.infiniteStream(fc.boolean()))
  .map(([p, owned, managed, coin]) => {
    const rest: RecordTag[] = [];
    const a = [...owned];
    const b = [...managed];
    while (a.length > 0 || b.length > 0) {
      const takeA = b.length === 0 || (a.length > 0 && coin.next().value);
      rest.push(takeA ? a.shift()! : b.shift()!);
    }
    return { owned, tags: [{ name: 'v', value: 'DMARC1' }, { name: 'p', value: p }, ...rest] };
  });

/** Writes tags with random spacing, tag-name case and a possible trailing separator, as owners do. */
const untidy = (tags: RecordTag[]) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('', ' ', '\t', '  '), { minLength: tags.length * 4, maxLength: tags.length * 4 }),
      fc.array(fc.boolean(), { minLength: tags.length, maxLength: tags.length }),
      fc.boolean(),
    )
    .map(([spaces, upper, trailing]) => {
      const segments = tags.map((tag, i) => {
        const name = upper[i] && tag.name !== 'v' ? tag.name.toUpperCase() : tag.name;
        // Space before the first tag would hide the record from receivers; it is not owner style we accept.
        const before = i === 0 ? '' : spaces[i * 4]!;
        return `${before}${name}${spaces[i * 4 + 1]}=${spaces[i * 4 + 2]}${tag.value}${spaces[i * 4 + 3]}`;
      });
      return segments.join(';') + (trailing ? ';' : '');
    });

test('parse → serialise → parse gives the same tags, for any text', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
      const first = parseRecord(text);
      const again = parseRecord(serializeRecord(first.tags));
      assert.deepEqual(again.tags, first.tags);
    }),
    { numRuns: 500 },
  );
});

test('parse → serialise → parse round-trips an owner record, however it is spaced and cased', () => {
  fc.assert(
    fc.property(
      ownerRecord.chain(({ tags }) => untidy(tags).map((text) => ({ tags, text }))),
      ({ tags, text }) => {
        const parsed = parseRecord(text);
        assert.deepEqual(parsed.problems, []);
        assert.deepEqual(parsed.tags, tags);
        const canonical = serializeRecord(parsed.tags);
        assert.equal(serializeRecord(parseRecord(canonical).tags), canonical);
        assert.deepEqual(parseRecord(canonical).tags, tags);
      },
    ),
    { numRuns: 300 },
  );
});

test('a stage edit keeps every unmanaged tag, with its value, in its order', () => {
  fc.assert(
    fc.property(
      ownerRecord.chain(({ owned, tags }) => untidy(tags).map((text) => ({ owned, text }))),
      stage,
      ({ owned, text }, target) => {
        const result = editRecordForStage(text, target);
        if (!result.ok) assert.fail(`refused ${JSON.stringify(text)}: ${JSON.stringify(result.problems)}`);
        const tags = parseRecord(result.record).tags;
        assert.deepEqual(tags.slice(0, 2), [
          { name: 'v', value: 'DMARC1' },
          { name: 'p', value: target.policy },
        ]);
        assert.deepEqual(
          tags.filter((tag) => !['p', 'pct', 't'].includes(tag.name) && tag.name !== 'v' && tag.name !== 'sp' && tag.name !== 'np'),
          owned,
        );
        // sp and np are not managed here, so whatever the owner wrote for them stays too.
        const original = parseRecord(text).tags;
        for (const name of ['sp', 'np']) {
          assert.deepEqual(tags.filter((tag) => tag.name === name), original.filter((tag) => tag.name === name));
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('a stage edit gives the stage table\'s managed tags and a valid record that both receivers read as the stage', () => {
  fc.assert(
    fc.property(ownerRecord, stage, ({ tags }, target) => {
      const result = editRecordForStage(serializeRecord(tags), target);
      if (!result.ok) assert.fail(JSON.stringify(result.problems));
      assert.equal(validateRecord(result.record).some((p) => p.severity === 'error'), false);
      const edited = parseRecord(result.record).tags;
      const pct = edited.find((tag) => tag.name === 'pct')?.value;
      const t = edited.find((tag) => tag.name === 't')?.value;
      if (target.pct < 100) {
        assert.equal(pct, String(target.pct));
        assert.equal(t, 'y');
      } else {
        assert.equal(pct, undefined);
        assert.equal(t, undefined);
      }
      const meaning = interpretRecord(result.record);
      assert.equal(meaning.rfc7489.domain!.applied, target.policy);
      assert.equal(meaning.rfc7489.domain!.percent, target.policy === 'none' ? 100 : target.pct);
      assert.equal(meaning.rfc9989.testing, target.pct < 100);
      // Editing the result again for the same stage is a no-op.
      const again = editRecordForStage(result.record, target);
      assert.ok(again.ok);
      assert.equal(again.record, result.record);
    }),
    { numRuns: 300 },
  );
});

test('managed sp and np are set; nothing else the owner wrote moves', () => {
  fc.assert(
    fc.property(ownerRecord, stage, policy, policy, ({ owned, tags }, target, sp, np) => {
      const result = editRecordForStage(serializeRecord(tags), target, { manage: { sp, np } });
      if (!result.ok) assert.fail(JSON.stringify(result.problems));
      const edited = parseRecord(result.record).tags;
      assert.equal(edited.find((tag) => tag.name === 'sp')?.value, sp);
      assert.equal(edited.find((tag) => tag.name === 'np')?.value, np);
      assert.deepEqual(edited.filter((tag) => !MANAGED.has(tag.name)), owned);
    }),
    { numRuns: 200 },
  );
});

test('TXT strings: split, quote, unquote and join give back the record, every string at most 255 octets', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 1500, size: 'max' }), (text) => {
      const parts = splitTxtStrings(text);
      for (const part of parts) assert.ok(Buffer.byteLength(part) <= 255);
      // Only the last string may be short: the split packs greedily.
      for (const part of parts.slice(0, -1)) assert.ok(Buffer.byteLength(part) > 251);
      assert.equal(joinTxtStrings(parts), text);
      assert.deepEqual(unquoteTxt(quoteTxt(parts)), parts);
    }),
    { numRuns: 500 },
  );
});

test('unquote reads back any list of strings quoteTxt wrote', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { minLength: 1, maxLength: 6 }), (parts) => {
      assert.deepEqual(unquoteTxt(quoteTxt(parts)), parts);
    }),
    { numRuns: 500 },
  );
});
