import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, type RunningHost } from './support/hosts.js';

/**
 * ExampleService keeps Xenon's version retention (limit 100, floor 20; xenon-core-wire.md §6.3):
 * when a document's version reaches the limit, and then every limit − floor (80) versions, the
 * versions older than `version − floor` are purged. So versions 0..99 are all kept; writing
 * version 100 leaves 80..100 (21 versions); the history grows again to 80..179 (100 versions);
 * version 180 leaves 160..180.
 */
const LINK = '/core/examples/retained';
const OTHER = '/core/examples/short-history';

/** The versions the index holds for a link, oldest first, read with an INCLUDE_ALL_VERSIONS query. */
async function versionsOf(base: string, link: string): Promise<number[]> {
  const r = await http('POST', `${base}/core/query-tasks`, {
    taskInfo: { isDirect: true },
    querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: link } }, options: ['INCLUDE_ALL_VERSIONS', 'EXPAND_CONTENT'] },
  });
  assert.equal(r.status, 200, r.text);
  const docs = Object.values(r.json.results.documents as Record<string, any>);
  assert.equal(r.json.results.documentLinks.length, docs.length);
  for (const d of docs) assert.equal(d.documentSelfLink, link);
  return docs.map((d) => d.documentVersion as number).sort((a, b) => a - b);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** One version of a link from the document index (an empty answer when it is not retained). */
async function indexVersion(base: string, link: string, version: number): Promise<any> {
  const r = await http('GET', `${base}/core/document-index?documentSelfLink=${encodeURIComponent(link)}&documentVersion=${version}`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/** PATCHes the counter up to `to` (one new version per PATCH); returns the last answer. */
async function patchUpTo(base: string, from: number, to: number): Promise<any> {
  let last: any;
  for (let i = from; i <= to; i++) {
    const r = await http('PATCH', `${base}${LINK}`, { counter: i, tags: [`t${i}`] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.documentVersion, i);
    last = r.json;
  }
  return last;
}

describe('ExampleService version retention (limit 100, floor 20)', () => {
  let h: RunningHost;
  before(async () => {
    h = await startHost(['--id=retention']);
    const r = await http('POST', `${h.uri}/core/examples`, { name: 'retained', counter: 0, documentSelfLink: 'retained' });
    assert.equal(r.status, 200, r.text);
    const o = await http('POST', `${h.uri}/core/examples`, { name: 'short', counter: 0, documentSelfLink: 'short-history' });
    assert.equal(o.status, 200, o.text);
    for (let i = 1; i <= 4; i++) assert.equal((await http('PATCH', `${h.uri}${OTHER}`, { counter: i })).status, 200);
  });
  after(async () => {
    await h.stop();
  });

  it('shows the limits in the factory config', async () => {
    const cfg = await http('GET', `${h.uri}/core/examples/config`);
    assert.equal(cfg.json.versionRetentionLimit, 100);
    assert.equal(cfg.json.versionRetentionFloor, 20);
  });

  it('keeps all 100 versions (0..99) until the limit is reached', async () => {
    await patchUpTo(h.uri, 1, 99);
    assert.deepEqual(await versionsOf(h.uri, LINK), range(0, 99));
    assert.equal((await indexVersion(h.uri, LINK, 0)).counter, 0);
    assert.equal((await indexVersion(h.uri, LINK, 0)).documentUpdateAction, 'POST');
  });

  it('purges down to versions 80..100 when version 100 is written, keeping the newest and the latest state', async () => {
    const latest = await patchUpTo(h.uri, 100, 100);
    assert.deepEqual(await versionsOf(h.uri, LINK), range(80, 100));
    assert.equal(await indexVersion(h.uri, LINK, 79), undefined, 'version 79 is gone');
    assert.equal(await indexVersion(h.uri, LINK, 0), undefined, 'version 0 is gone');
    const v80 = await indexVersion(h.uri, LINK, 80);
    assert.equal(v80.counter, 80);
    assert.equal(v80.documentUpdateAction, 'PATCH');
    const g = await http('GET', `${h.uri}${LINK}`);
    assert.equal(g.status, 200);
    assert.deepEqual(g.json, latest, 'the latest state is intact');
    assert.equal(g.json.documentVersion, 100);
    assert.equal(g.json.counter, 100);
    assert.equal(g.json.tags.length, 100, 'tags t1..t100 merged over every PATCH, purged versions included');
    assert.deepEqual(await versionsOf(h.uri, OTHER), range(0, 4), 'another document keeps its whole short history');
  });

  it('lets the history grow to 100 versions again (80..179), then purges to 160..180 at version 180', async () => {
    await patchUpTo(h.uri, 101, 179);
    assert.deepEqual(await versionsOf(h.uri, LINK), range(80, 179));
    const latest = await patchUpTo(h.uri, 180, 180);
    assert.deepEqual(await versionsOf(h.uri, LINK), range(160, 180));
    assert.equal(await indexVersion(h.uri, LINK, 159), undefined);
    assert.equal((await indexVersion(h.uri, LINK, 160)).counter, 160);
    assert.deepEqual((await http('GET', `${h.uri}${LINK}`)).json, latest);
    const list = await http('GET', `${h.uri}/core/examples?expand`);
    assert.equal(list.json.documentCount, 2, 'purging versions never removes a document');
    assert.equal(list.json.documents[LINK].documentVersion, 180);
  });

  it('keeps the same versions after a restart on the same sandbox', async () => {
    const latest = (await http('GET', `${h.uri}${LINK}`)).json;
    await h.stop();
    h = await startHost(['--id=retention'], { sandbox: h.sandbox, port: h.port });
    assert.deepEqual(await versionsOf(h.uri, LINK), range(160, 180));
    assert.deepEqual((await http('GET', `${h.uri}${LINK}`)).json, latest);
    // The next write continues the history from 180; the next purge is due at 260.
    const r = await http('PATCH', `${h.uri}${LINK}`, { counter: 181 });
    assert.equal(r.json.documentVersion, 181);
    assert.deepEqual(await versionsOf(h.uri, LINK), range(160, 181));
  });
});
