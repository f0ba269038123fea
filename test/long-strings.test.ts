import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ROOT, http, startHost, tempDir, waitFor } from './support/hosts.js';

const KIND = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';
/** 5,000 characters, distinct per `i` only at the end (past any index prefix). */
const longText = (i: number, words = 'the quick brown fox jumps over the lazy dog '): string => `${words.repeat(115).slice(0, 4990)}#${String(i).padStart(9, '0')}`;

function openIndex(sandbox: string): Database.Database {
  return new Database(join(sandbox, 'index.sqlite'), { readonly: true });
}

describe('long string values', () => {
  it('take about their own size on disk, and every query reads them whole', async () => {
    const h = await startHost();
    const N = 300;
    try {
      for (let i = 0; i < N; i++) {
        const r = await http('POST', `${h.uri}/core/examples`, { documentSelfLink: `l${i}`, name: `long-${i % 3}`, counter: i, keyValues: { text: longText(i) } });
        assert.equal(r.status, 200, r.text);
      }
      const q = async (spec: Record<string, unknown>) => {
        const r = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: spec });
        assert.equal(r.status, 200, r.text);
        return r.json.results;
      };
      // Values that share their first 4,990 characters are still told apart.
      assert.deepEqual((await q({ query: { term: { propertyName: 'keyValues.text', matchValue: longText(7) } } })).documentLinks, ['/core/examples/l7']);
      assert.deepEqual((await q({ query: { term: { propertyName: 'keyValues', matchValue: longText(8) } } })).documentLinks, ['/core/examples/l8'], 'FIXED_ITEM_NAME');
      assert.deepEqual((await q({ query: { term: { propertyName: 'keyValues.text', matchValue: longText(7).slice(0, 4000) } } })).documentLinks, []);
      assert.deepEqual((await q({ query: { term: { propertyName: 'keyValues.text', matchValue: '*#000000123', matchType: 'WILDCARD' } } })).documentLinks, ['/core/examples/l123']);
      const prefixed = (await q({ query: { term: { propertyName: 'keyValues.text', matchValue: longText(42).slice(0, 4999), matchType: 'PREFIX' } } })).documentLinks as string[];
      assert.deepEqual(
        [...prefixed].sort(),
        Array.from({ length: 10 }, (_, i) => `/core/examples/l${40 + i}`),
      );
      const filtered = await http('GET', `${h.uri}/core/examples?$filter=${encodeURIComponent(`keyValues.text eq '${longText(9)}'`)}`);
      assert.deepEqual(filtered.json.documentLinks, ['/core/examples/l9'], 'OData $filter');

      // Sorted by the whole value, descending, five a page: every document once, in order.
      const sorted = { query: { term: { propertyName: 'name', matchValue: 'long-1' } }, sortTerm: { propertyName: 'keyValues.text', propertyType: 'STRING' }, sortOrder: 'DESC', resultLimit: 5 };
      const first = await q(sorted);
      const seen: string[] = [];
      let next: string | undefined = first.nextPageLink;
      while (next) {
        const page = await http('GET', `${h.uri}${next}`);
        assert.equal(page.status, 200, page.text);
        seen.push(...(page.json.results.documentLinks as string[]));
        next = page.json.results.nextPageLink;
      }
      const want = Array.from({ length: N }, (_, i) => i)
        .filter((i) => i % 3 === 1)
        .reverse()
        .map((i) => `/core/examples/l${i}`);
      assert.deepEqual(seen, want);

      // Groups by a long value: one group per document, named by its whole value.
      const groups = await q({
        query: { term: { propertyName: 'name', matchValue: 'long-2' } },
        options: ['GROUP_BY'],
        groupByTerm: { propertyName: 'keyValues.text' },
        sortTerm: { propertyName: 'counter', propertyType: 'LONG' },
        resultLimit: 1,
        groupResultLimit: 3,
      });
      const perGroup = groups.nextPageLinksPerGroup as Record<string, string>;
      assert.deepEqual(Object.keys(perGroup), [longText(2), longText(5), longText(8)]);
      const group = await http('GET', `${h.uri}${perGroup[longText(5)]}`);
      assert.deepEqual(group.json.results.documentLinks, ['/core/examples/l5']);
    } finally {
      assert.equal(await h.stop(), 0);
    }
    // Format 1 stored such a value in four b-tree rows of 16 KB pages, an overflow page each: about
    // 83 KB a document. Now the text is kept twice (the document, and its long_strings row).
    const bytes = statSync(join(h.sandbox, 'index.sqlite')).size;
    assert.ok(bytes < N * 20_000, `index of ${N} documents with a 5 KB value: ${bytes} bytes (${Math.round(bytes / N)} a document)`);
  });

  it('keeps old versions queryable and removes a long value with the last version that holds it', async () => {
    const h = await startHost();
    const base = `${h.uri}/core/examples`;
    try {
      assert.equal((await http('POST', base, { documentSelfLink: 'v', name: 'v', keyValues: { text: longText(1) } })).status, 200);
      assert.equal((await http('PATCH', `${base}/v`, { keyValues: { text: longText(2) } })).status, 200);
      const find = async (value: string, options: string[] = []) => {
        const r = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'keyValues.text', matchValue: value } }, options } });
        return r.json.results.documentLinks as string[];
      };
      assert.deepEqual(await find(longText(1)), []);
      assert.deepEqual(await find(longText(1), ['INCLUDE_ALL_VERSIONS']), ['/core/examples/v?documentVersion=0']);
      assert.deepEqual(await find(longText(2)), ['/core/examples/v']);
      // Deleted, then created again with xn-force-index-update: every old version is purged.
      assert.equal((await http('DELETE', `${base}/v`)).status, 200);
      assert.equal((await http('POST', base, { documentSelfLink: 'v', name: 'v', keyValues: { text: longText(3) } }, { pragma: 'xn-force-index-update' })).status, 200);
      assert.deepEqual(await find(longText(2), ['INCLUDE_ALL_VERSIONS', 'INCLUDE_DELETED']), []);
      assert.deepEqual(await find(longText(3)), ['/core/examples/v']);
    } finally {
      assert.equal(await h.stop(), 0);
    }
    const db = openIndex(h.sandbox);
    try {
      const texts = (db.prepare('SELECT value FROM long_strings').all() as { value: string }[]).map((r) => r.value);
      assert.deepEqual(texts, [longText(3)], 'only the live version holds a long value');
    } finally {
      db.close();
    }
  });

  it('a format-1 sandbox is upgraded in place at start: its long values are moved and stay queryable', async () => {
    const sandbox = tempDir();
    cpSync(join(ROOT, 'test', 'fixtures', 'sandbox-format-1'), sandbox, { recursive: true });
    // A document as release 0.1.x stored it: every string value whole in its props rows.
    const doc = {
      keyValues: { text: longText(5) },
      counter: 5,
      name: longText(6, 'lorem ipsum '),
      tags: [],
      isFromMigration: false,
      documentVersion: 0,
      documentEpoch: 0,
      documentKind: KIND,
      documentSelfLink: '/core/examples/old-long',
      documentUpdateTimeMicros: 1795290012950000,
      documentUpdateAction: 'POST',
      documentExpirationTimeMicros: 0,
      documentOwner: 'fixture-host',
    };
    const v1 = new Database(join(sandbox, 'index.sqlite'));
    try {
      const id = v1
        .prepare(
          `INSERT INTO docs (link, factory, version, kind, update_time, action, expiration, owner, auth_principal, latest, json)
           VALUES (?, '/core/examples', 0, ?, ?, 'POST', 0, 'fixture-host', NULL, 1, ?)`,
        )
        .run(doc.documentSelfLink, KIND, doc.documentUpdateTimeMicros, JSON.stringify(doc)).lastInsertRowid;
      const prop = v1.prepare('INSERT INTO props (doc_id, name, seq, sval, nval) VALUES (?, ?, ?, ?, ?)');
      prop.run(id, 'keyValues.text', 0, doc.keyValues.text, null);
      prop.run(id, 'counter', 1, null, 5);
      prop.run(id, 'name', 2, doc.name, null);
      prop.run(id, 'isFromMigration', 3, 'false', null);
      prop.run(id, 'keyValues', 4, 'text', null);
      prop.run(id, 'keyValues', 5, doc.keyValues.text, null);
    } finally {
      v1.close();
    }
    const h = await startHost(['--logLevel=info'], { sandbox });
    try {
      await waitFor(async () => /"from":1,"to":2,"longStrings":3,.*upgraded the index from format 1 to 2/.test(h.output()), 'the upgrade in the log');
      const q = async (propertyName: string, matchValue: string) => {
        const r = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName, matchValue } } } });
        return r.json.results.documentLinks as string[];
      };
      assert.deepEqual(await q('keyValues.text', longText(5)), ['/core/examples/old-long']);
      assert.deepEqual(await q('keyValues', longText(5)), ['/core/examples/old-long']);
      assert.deepEqual(await q('name', longText(6, 'lorem ipsum ')), ['/core/examples/old-long']);
      assert.deepEqual(await q('name', 'fixture-1'), ['/core/examples/f1'], 'short values as before');
      assert.deepEqual((await http('GET', `${h.uri}/core/examples/old-long`)).json, doc);
      assert.equal((await http('POST', `${h.uri}/core/examples`, { documentSelfLink: 'new-long', name: longText(7) })).status, 200);
      assert.deepEqual(await q('name', longText(7)), ['/core/examples/new-long']);
    } finally {
      assert.equal(await h.stop(), 0);
    }
    const db = openIndex(sandbox);
    try {
      assert.equal((db.prepare("SELECT value FROM meta WHERE key = 'formatVersion'").get() as { value: string }).value, '2');
      assert.equal((db.prepare('SELECT count(*) AS n FROM long_strings').get() as { n: number }).n, 4);
      assert.ok((db.prepare('SELECT max(length(sval)) AS n FROM props').get() as { n: number }).n <= 256);
    } finally {
      db.close();
    }
    // The next start finds format 2: nothing to upgrade.
    const again = await startHost(['--logLevel=info'], { sandbox });
    try {
      assert.deepEqual((await http('GET', `${again.uri}/core/examples/old-long`)).json, doc);
    } finally {
      assert.equal(await again.stop(), 0);
    }
    assert.doesNotMatch(again.output(), /upgraded the index/);
  });
});
