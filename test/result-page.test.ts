import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KryptonError } from '../src/core/errors.js';
import { ResultPage } from '../src/migration/result-page.js';

/** A QueryTask as a source answers a page GET (members in Xenon's order unless reordered). */
function queryTask(documents: Record<string, unknown> | undefined, links = Object.keys(documents ?? {}), extra: Record<string, unknown> = {}) {
  return {
    taskInfo: { stage: 'FINISHED', isDirect: true },
    querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/*', matchType: 'WILDCARD' } }, resultLimit: 3 },
    results: { documentLinks: links, ...(documents ? { documents } : {}), nextPageLink: '/core/query-page/17', queryTimeMicros: 812, ...extra },
    documentSelfLink: '/core/query-page/16',
  };
}

const tricky = {
  '/core/examples/a': { name: 'braces } { ] [ and "quotes"', counter: -1.5e3, tags: ['x', '\\', '\\"'], keyValues: { '}': '{' }, isFromMigration: false, nothing: null },
  '/core/examples/b"q': { name: 'escaped key', nested: { deeper: [{ a: [1, [2, [3]]] }, {}] }, emptyArr: [], unicode: 'é\u2028\n\t\u0000' },
  '/core/examples/c': { name: 'ends with a backslash \\', last: true },
};

describe('ResultPage: a source page read a slice at a time', () => {
  for (const [layout, indent] of [
    ['compact (krypton)', undefined],
    ['pretty-printed', 2],
    ['tab-indented', '\t'],
  ] as const) {
    it(`returns the documents JSON.parse would, in link order, from a ${layout} page`, () => {
      const task = queryTask(tricky);
      const page = ResultPage.parse(JSON.stringify(task, null, indent));
      assert.deepEqual(page.links, Object.keys(tricky));
      assert.equal(page.nextPageLink, '/core/query-page/17');
      assert.equal(page.queryTimeMicros, 812);
      assert.deepEqual(page.documents(page.links), Object.values(tricky));
      assert.deepEqual(page.documents(['/core/examples/c', '/core/examples/a']), [tricky['/core/examples/c'], tricky['/core/examples/a']]);
    });
  }

  it('finds the right documents when one holds the text that follows it (\',"<next link>":\'), whatever order they are asked in', () => {
    const sneaky = {
      '/x/1': { m: { a: 1, '/x/2': { fake: true } }, s: ',"/x/2":{"fake":2}' },
      '/x/2': { real: 2, also: { b: 0, '/x/3': 'not the third' } },
      '/x/3': { real: 3 },
    };
    const text = JSON.stringify(queryTask(sneaky));
    assert.ok(text.includes(',"/x/2":{"fake":true}'), 'the first document holds a key equal to the second link, after a comma');
    const later = ResultPage.parse(text);
    assert.deepEqual(later.documents(['/x/2']), [sneaky['/x/2']]);
    assert.deepEqual(later.documents(['/x/3', '/x/1']), [sneaky['/x/3'], sneaky['/x/1']]);
    const inOrder = ResultPage.parse(text);
    assert.deepEqual(inOrder.documents(inOrder.links), Object.values(sneaky));
    // Documents in another order than documentLinks, and a link without its document.
    const shuffled = ResultPage.parse(JSON.stringify(queryTask({ '/x/3': { v: 3 }, '/x/1': { v: 1 } }, ['/x/1', '/x/2', '/x/3'])));
    assert.deepEqual(shuffled.documents(shuffled.links), [{ v: 1 }, { v: 3 }]);
  });

  it('returns the same documents a slice at a time (documentsBetween) as by link, whatever the layout', () => {
    for (const indent of [undefined, 2]) {
      const many: Record<string, unknown> = {};
      for (let i = 0; i < 25; i++) many[`/core/examples/d${i}`] = { name: `d${i}`, counter: i, ...(i % 3 === 0 ? tricky['/core/examples/a'] : {}) };
      const page = ResultPage.parse(JSON.stringify(queryTask(many), null, indent));
      const sliced = [0, 7, 14, 21].flatMap((at) => page.documentsBetween(at, at + 7));
      assert.deepEqual(sliced, Object.values(many));
      assert.deepEqual(page.documentsBetween(24, 100), [many['/core/examples/d24']]);
      assert.deepEqual(page.documentsBetween(30, 40), []);
    }
    // A wrong split boundary found in the middle of slices: the rest of the page is scanned instead.
    const sneaky = { '/x/1': { s: ',"/x/2":{"fake":2}' }, '/x/2': { real: 2 }, '/x/3': { real: 3 } };
    const page = ResultPage.parse(JSON.stringify(queryTask(sneaky)));
    assert.deepEqual([...page.documentsBetween(0, 1), ...page.documentsBetween(1, 3)], Object.values(sneaky));
  });

  it('does not take a nested "documentLinks" member for the page\'s links', () => {
    const text = JSON.stringify({ results: { documentLinks: ['/x/1', '/x/2'], extra: { documentLinks: ['/x/2'] }, documents: { '/x/2': { v: 2 } } } });
    const page = ResultPage.parse(text);
    assert.deepEqual(page.links, ['/x/1', '/x/2']);
    assert.deepEqual(page.documentsBetween(0, 2), [{ v: 2 }]);
    assert.deepEqual(page.documents(['/x/2', '/x/1']), [{ v: 2 }]);
  });

  it('skips links without a document, and documents that are not objects', () => {
    const page = ResultPage.parse(
      JSON.stringify(
        queryTask({ '/core/examples/a': { name: 'a' }, '/core/examples/n': null, '/core/examples/s': 'text' }, ['/core/examples/a', '/core/examples/gone', '/core/examples/n', '/core/examples/s']),
      ),
    );
    assert.deepEqual(page.documents(page.links), [{ name: 'a' }]);
  });

  it('reads pages whose members come in another order, and pages without documents (no EXPAND_CONTENT)', () => {
    const reordered = { results: { documents: { '/x/1': { v: 1 } }, queryTimeMicros: 5, documentLinks: ['/x/1'] }, taskInfo: { stage: 'FINISHED' } };
    const page = ResultPage.parse(JSON.stringify(reordered));
    assert.deepEqual(page.documents(page.links), [{ v: 1 }]);
    assert.equal(page.nextPageLink, undefined);
    const bare = ResultPage.parse(JSON.stringify(queryTask(undefined, ['/x/1', '/x/2'])));
    assert.deepEqual(bare.links, ['/x/1', '/x/2']);
    assert.deepEqual(bare.documents(bare.links), []);
    assert.deepEqual(ResultPage.parse('{"taskInfo":{}}').links, []);
  });

  it('agrees with JSON.parse on 300 random pages', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const chars = ['a', 'Z', '"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\n', 'é', '\u0001', '/'];
    const str = () => Array.from({ length: rnd(8) }, () => chars[rnd(chars.length)]).join('');
    const value = (depth: number): unknown => {
      switch (rnd(depth > 2 ? 4 : 6)) {
        case 0:
          return str();
        case 1:
          return rnd(2) ? rnd(1e6) - 5e5 : (rnd(1e6) - 5e5) / 7;
        case 2:
          return [true, false, null][rnd(3)];
        case 3:
          return str();
        case 4:
          return Array.from({ length: rnd(4) }, () => value(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), value(depth + 1)]));
      }
    };
    for (let p = 0; p < 300; p++) {
      const documents: Record<string, unknown> = {};
      for (let d = rnd(6); d > 0; d--) documents[`/core/examples/${str()}`] = Object.fromEntries(Array.from({ length: rnd(5) }, () => [str(), value(0)]));
      const text = JSON.stringify(queryTask(documents), null, [undefined, 1, ' \n '][rnd(3)]);
      const page = ResultPage.parse(text);
      const expected = JSON.parse(text).results;
      assert.deepEqual(page.links, expected.documentLinks);
      assert.deepEqual(
        page.documents(page.links),
        expected.documentLinks.map((l: string) => expected.documents[l]),
      );
      const again = ResultPage.parse(text);
      assert.deepEqual([...again.documentsBetween(0, 2), ...again.documentsBetween(2, 99)], page.documents(page.links));
    }
  });

  it('answers a REMOTE error for a page that splits but holds a document that is not JSON', () => {
    const page = ResultPage.parse('{"results":{"documentLinks":["/a","/b"],"documents":{"/a":{"x":1,},"/b":{"y":2}}}}');
    assert.deepEqual(page.links, ['/a', '/b']);
    assert.throws(
      () => page.documentsBetween(0, 2),
      (err: unknown) => err instanceof KryptonError && /unreadable document \/a/.test(err.message),
    );
  });

  it('refuses what is not a QueryTask with an error that names the source', () => {
    for (const text of ['', 'not json', '{"results":{"documents":{"/a":{"x":1}', '{"results":{"documents":{"/a":{"x":"unterminated}}}', '[1,2]', '{"results":{"documents":{"/a" {}}}}']) {
      assert.throws(
        () => ResultPage.parse(text).documents(['/a']),
        (err: unknown) => err instanceof KryptonError && /the source answered a query page/.test(err.message),
        JSON.stringify(text),
      );
    }
  });
});
