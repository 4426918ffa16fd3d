/**
 * A domain a big receiver reports in full has thousands of sources; the
 * domain page and `GET /domains/{domain}` list at most SOURCES_LISTED of
 * each class (the sources holding the domain first, then those sending the
 * most) and count the rest, sources and messages, per class. Nothing is lost
 * from the figures: what is listed plus what is counted is what the engine
 * measured. On SQLite and Postgres.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { domainViewSchema } from '../src/api/schemas.js';
import { assessDomain } from '../src/engine/tick.js';
import type { SourceClass, SourceSummary } from '../src/engine/types.js';
import { domainView, listedSources, SOURCES_LISTED, type DomainView } from '../src/fleet/views.js';
import { loadPlan } from '../src/plans/index.js';
import { getDomain } from '../src/store/domains.js';
import type { Store } from '../src/store/open.js';
import { renderDomainPage } from '../src/web/domain-page.js';
import { storeDialects } from './helpers/dialects.js';
import { writeLargeDomain } from './helpers/large-domain.js';

const NOW = new Date('2026-06-15T12:00:00Z');
const D = 'many-sources.example';
const CLASSES: SourceClass[] = ['authorised', 'unaligned', 'forwarded', 'unauthenticated'];

const ofClass = (sources: readonly SourceSummary[], c: SourceClass) => sources.filter((s) => s.class === c);
const sum = (sources: readonly SourceSummary[]) => sources.reduce((n, s) => n + s.messages, 0);

for (const dialect of storeDialects()) {
  describe(`a domain with thousands of sources, on ${dialect.name}`, () => {
    let store: Store;
    let view: DomainView;
    let measured: SourceSummary[];

    before(async () => {
      store = await dialect.open();
      await writeLargeDomain(store, { domain: D, now: NOW, entries: 1_500 });
      view = (await domainView(store, D, NOW, { loadPlan }))!;
      measured = (await assessDomain(store, (await getDomain(store.db, D))!, loadPlan('default'), NOW)).metrics.sources;
    });
    after(async () => {
      await store?.close();
    });

    it('lists at most SOURCES_LISTED of a class and counts the rest, sources and messages, to what the engine measured', () => {
      assert.ok(
        CLASSES.some((c) => ofClass(measured, c).length > SOURCES_LISTED),
        `the fixture has a class past ${SOURCES_LISTED}: ${CLASSES.map((c) => `${c} ${ofClass(measured, c).length}`).join(', ')}`,
      );
      for (const c of CLASSES) {
        const all = ofClass(measured, c);
        const listed = ofClass(view.sources, c);
        assert.equal(listed.length, Math.min(all.length, SOURCES_LISTED), c);
        assert.equal(listed.length + view.sources_omitted[c].sources, all.length, c);
        assert.equal(sum(listed) + view.sources_omitted[c].messages, sum(all), c);
      }
    });

    it('lists the sources sending the most, and the response schema takes the view', () => {
      for (const c of CLASSES) {
        const listed = new Set(ofClass(view.sources, c).map((s) => s.key));
        const left = ofClass(measured, c).filter((s) => !listed.has(s.key) && !s.blocking);
        const leastListed = Math.min(...ofClass(view.sources, c).filter((s) => !s.blocking).map((s) => s.lookbackMessages));
        for (const s of left) assert.ok(s.lookbackMessages <= leastListed, `${c}: ${s.key} (${s.lookbackMessages}) left out before one with ${leastListed}`);
      }
      assert.doesNotThrow(() => domainViewSchema.parse(view));
    });

    it('says on the page how many sources of a class are not listed', () => {
      const page = renderDomainPage({ user: { name: 'vera', role: 'viewer' }, csrfToken: 'csrf' }, view);
      for (const c of CLASSES) {
        const left = view.sources_omitted[c];
        const line = new RegExp(`<p class="muted omitted" data-class="${c}">And ${left.sources.toLocaleString('en')} more source`);
        if (left.sources > 0) assert.match(page, line, c);
        else assert.doesNotMatch(page, line, c);
      }
    });
  });
}

describe('which sources are listed', () => {
  const source = (key: string, cls: SourceClass, lookbackMessages: number, blocking = false): SourceSummary => ({
    key,
    ip: key,
    dkimDomains: [],
    spfDomains: [],
    class: cls,
    classReason: 'test',
    messages: lookbackMessages,
    passed: 0,
    lookbackMessages,
    lookbackPassed: 0,
    daysSeen: 1,
    blocking,
  });

  it('a class’s sources holding the domain come first, whatever their volume; the places left go to the most mail', () => {
    // The engine's order: most look-back mail first.
    const sources = [source('a', 'unaligned', 900), source('b', 'unaligned', 800), source('c', 'unaligned', 50, true), source('d', 'authorised', 40), source('e', 'unaligned', 10, true)];
    const { sources: listed, sources_omitted } = listedSources(sources, 3);
    assert.deepEqual(
      listed.map((s) => s.key),
      ['d', 'c', 'e', 'a'],
    );
    assert.deepEqual(sources_omitted.unaligned, { sources: 1, messages: 800 });
    assert.deepEqual(sources_omitted.authorised, { sources: 0, messages: 0 });
  });
});
