import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { importExamples } from './support/cluster.js';
import { startListener } from './support/listener.js';

const EXAMPLE_KIND = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';

/** Xenon query options beyond the core set: SELECT_LINKS / EXPAND_LINKS, TIME_SNAPSHOT, SINGLE_USE, expectedResultCount. */
describe('query options over HTTP', () => {
  let h: RunningHost;
  const q = (spec: unknown, extra: Record<string, unknown> = {}, direct = true) => http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: direct }, querySpec: spec, ...extra });
  const link = (id: string) => `/core/examples/${id}`;
  const selfLink = (id: string) => ({ term: { propertyName: 'documentSelfLink', matchValue: link(id) } });
  const post = async (body: Record<string, unknown>) => {
    const r = await http('POST', `${h.uri}/core/examples`, body);
    assert.equal(r.status, 200, r.text);
    return r.json;
  };

  before(async () => {
    h = await startHost(['--id=options', '--maintenanceIntervalMicros=100000']);
  });
  after(async () => {
    await h.stop();
  });

  it('SELECT_LINKS reports the link fields of each result, EXPAND_LINKS the documents they name (or the error a GET of them answers)', async () => {
    await post({ documentSelfLink: 'target-1', name: 'first target', counter: 1 });
    await post({ documentSelfLink: 'target-2', name: 'second target', counter: 2 });
    await post({ documentSelfLink: 'ref-a', name: link('target-1'), tags: [link('target-1'), link('target-2'), link('missing')] });
    await post({ documentSelfLink: 'ref-b', name: link('target-2'), counter: 7 });
    const query = { term: { propertyName: 'documentSelfLink', matchValue: `${link('ref-')}*`, matchType: 'WILDCARD' } };
    const spec = { query, options: ['SELECT_LINKS', 'EXPAND_LINKS'], linkTerms: [{ propertyName: 'name' }, { propertyName: 'tags' }, { propertyName: 'counter' }] };

    const r = await q(spec);
    assert.equal(r.status, 200, r.text);
    const res = r.json.results;
    assert.deepEqual([...res.documentLinks].sort(), [link('ref-a'), link('ref-b')]);
    assert.deepEqual(res.selectedLinksPerDocument, {
      [link('ref-a')]: { name: link('target-1'), 'tags.item.0': link('target-1'), 'tags.item.1': link('target-2'), 'tags.item.2': link('missing') },
      [link('ref-b')]: { name: link('target-2') },
    });
    assert.deepEqual([...res.selectedLinks].sort(), [link('missing'), link('target-1'), link('target-2')]);
    assert.equal(res.selectedDocuments[link('target-1')].name, 'first target');
    assert.equal(res.selectedDocuments[link('target-2')].counter, 2);
    assert.equal(res.selectedDocuments[link('missing')].statusCode, 404);
    assert.equal(res.documents, undefined, 'no documents without EXPAND_CONTENT');

    // Without EXPAND_LINKS: the links only.
    const plain = await q({ ...spec, options: ['SELECT_LINKS'] });
    assert.equal(plain.json.results.selectedDocuments, undefined);
    assert.equal(Object.keys(plain.json.results.selectedLinksPerDocument).length, 2);

    // Paged: each page carries the selections of its own documents.
    const paged = await q({ ...spec, resultLimit: 1, sortTerm: { propertyName: 'documentSelfLink', propertyType: 'STRING' } });
    assert.equal(paged.status, 200, paged.text);
    const first = await http('GET', `${h.uri}${paged.json.results.nextPageLink}`);
    assert.deepEqual(first.json.results.documentLinks, [link('ref-a')]);
    assert.deepEqual(Object.keys(first.json.results.selectedLinksPerDocument), [link('ref-a')]);
    assert.equal(first.json.results.selectedDocuments[link('target-2')].name, 'second target');
    const second = await http('GET', `${h.uri}${first.json.results.nextPageLink}`);
    assert.deepEqual(second.json.results.selectedLinksPerDocument, { [link('ref-b')]: { name: link('target-2') } });

    // An asynchronous task keeps them in its results.
    const task = await q(spec, {}, false);
    assert.equal(task.status, 202);
    const done = await waitFor(async () => {
      const g = await http('GET', `${h.uri}${task.json.documentSelfLink}`);
      return g.json.taskInfo.stage === 'FINISHED' && g;
    }, 'async SELECT_LINKS task');
    assert.equal(done.json.results.selectedDocuments[link('target-1')].name, 'first target');
  });

  it('answers SELECT_LINKS over more than 5,000 documents in pages only (400 naming resultLimit), so memory stays bounded', async () => {
    await importExamples(h.uri, 5_001, 'bulk');
    const query = { term: { propertyName: 'documentSelfLink', matchValue: link('bulk-'), matchType: 'PREFIX' } };
    const spec = { query, options: ['SELECT_LINKS'], linkTerms: [{ propertyName: 'name' }] };
    const whole = await q(spec);
    assert.equal(whole.status, 400, whole.text.slice(0, 300));
    assert.match(whole.json.message, /SELECT_LINKS results of more than 5000 documents are answered in pages: set querySpec.resultLimit/);
    const paged = await q({ ...spec, resultLimit: 5_000 });
    assert.equal(paged.status, 200);
    const page = await http('GET', `${h.uri}${paged.json.results.nextPageLink}`);
    assert.equal(Object.keys(page.json.results.selectedLinksPerDocument).length, 5_000);
    const big = await http('GET', `${h.uri}${paged.json.results.nextPageLink}&$limit=6000`);
    assert.equal(big.status, 400);
    const rest = await http('GET', `${h.uri}${page.json.results.nextPageLink}`);
    assert.equal(rest.json.results.documentLinks.length, 1);
    assert.equal(Object.keys(rest.json.results.selectedLinksPerDocument).length, 1);
    const seen = new Set([...page.json.results.selectedLinks, ...rest.json.results.selectedLinks]);
    assert.equal(seen.size, 5_001, 'every document named once across the pages');
  });

  it('TIME_SNAPSHOT answers the documents as they were at the boundary, matching the query against that version', async () => {
    const v0 = await post({ documentSelfLink: 'snap', name: 'snap', counter: 1 });
    const t0 = v0.documentUpdateTimeMicros as number;
    const v1 = (await http('PATCH', `${h.uri}${link('snap')}`, { counter: 5 })).json;
    const t1 = v1.documentUpdateTimeMicros as number;
    assert.ok(t1 > t0);
    const gone = await post({ documentSelfLink: 'snap-gone', name: 'snap', counter: 3 });
    assert.equal((await http('DELETE', `${h.uri}${link('snap-gone')}`)).status, 200);
    const byName = { term: { propertyName: 'name', matchValue: 'snap' } };
    const at = (boundary: number, query: unknown = byName, options: string[] = []) => q({ query, options: ['TIME_SNAPSHOT', 'EXPAND_CONTENT', ...options], timeSnapshotBoundaryMicros: boundary });

    const before0 = await at(t0 - 1);
    assert.equal(before0.status, 200, before0.text);
    assert.deepEqual(before0.json.results.documentLinks, []);

    const atT0 = (await at(t0)).json.results;
    assert.deepEqual(atT0.documentLinks, [link('snap')]);
    assert.equal(atT0.documents[link('snap')].counter, 1);
    assert.equal(atT0.documents[link('snap')].documentVersion, 0);

    // snap-gone existed between its POST and its DELETE: a snapshot then shows it, with snap's second version.
    const mid = (await at(gone.documentUpdateTimeMicros)).json.results;
    assert.deepEqual([...mid.documentLinks].sort(), [link('snap'), link('snap-gone')]);
    assert.equal(mid.documents[link('snap')].counter, 5);

    // Now: snap-gone is deleted (shown only with INCLUDE_DELETED, as its DELETE version).
    const now = Date.now() * 1000 + 60_000_000;
    assert.deepEqual((await at(now)).json.results.documentLinks, [link('snap')]);
    const withDeleted = (await at(now, byName, ['INCLUDE_DELETED'])).json.results;
    assert.equal(withDeleted.documents[link('snap-gone')].documentUpdateAction, 'DELETE');

    // The query matches the snapshot's version, not the current one.
    const counter5 = {
      booleanClauses: [
        { occurance: 'MUST_OCCUR', ...byName },
        { occurance: 'MUST_OCCUR', term: { propertyName: 'counter', range: { type: 'LONG', min: 5, max: 5, isMinInclusive: true, isMaxInclusive: true } } },
      ],
    };
    assert.deepEqual((await at(t0, counter5)).json.results.documentLinks, []);
    assert.deepEqual((await at(t1, counter5)).json.results.documentLinks, [link('snap')]);
    const counted = await q({ query: byName, options: ['TIME_SNAPSHOT', 'COUNT'], timeSnapshotBoundaryMicros: t1 });
    assert.equal(counted.json.results.documentCount, 1);

    // With INCLUDE_ALL_VERSIONS: every version written by the boundary.
    const versions = await q({ query: selfLink('snap'), options: ['TIME_SNAPSHOT', 'INCLUDE_ALL_VERSIONS'], timeSnapshotBoundaryMicros: t1 });
    assert.deepEqual([...versions.json.results.documentLinks].sort(), [`${link('snap')}?documentVersion=0`, `${link('snap')}?documentVersion=1`]);
  });

  it('GROUP_BY answers a first page per group value, groups paged by groupResultLimit, documents by resultLimit', async () => {
    const colours = ['red', 'blue', 'green', 'blue', 'red', 'red', 'blue', 'red'];
    for (const [i, c] of colours.entries()) await post({ documentSelfLink: `grouped-${i}`, name: 'grouped', id: c, counter: 100 + i });
    await post({ documentSelfLink: 'grouped-none', name: 'grouped', counter: 1 }); // no id: in no group
    const query = { term: { propertyName: 'name', matchValue: 'grouped' } };
    const spec = { query, options: ['GROUP_BY'], groupByTerm: { propertyName: 'id' }, sortTerm: { propertyName: 'counter', propertyType: 'LONG' }, resultLimit: 2, groupResultLimit: 2 };
    const r = await q(spec);
    assert.equal(r.status, 200, r.text);
    const perGroup = r.json.results.nextPageLinksPerGroup as Record<string, string>;
    assert.deepEqual(Object.keys(perGroup), ['blue', 'green'], 'two groups a page, in value order');
    assert.deepEqual(r.json.results.documentLinks, []);
    const page = async (l: string) => {
      const g = await http('GET', `${h.uri}${l}`);
      assert.equal(g.status, 200, g.text);
      return g.json.results;
    };
    // A group's documents: sorted by sortTerm, resultLimit a page.
    const blue1 = await page(perGroup['blue']!);
    assert.deepEqual(blue1.documentLinks, [link('grouped-1'), link('grouped-3')]);
    const blue2 = await page(blue1.nextPageLink);
    assert.deepEqual(blue2.documentLinks, [link('grouped-6')]);
    assert.equal(blue2.nextPageLink, undefined);
    assert.deepEqual((await page(perGroup['green']!)).documentLinks, [link('grouped-2')]);
    // The next page of groups holds the rest.
    const more = await page(r.json.results.nextPageLink);
    assert.deepEqual(Object.keys(more.nextPageLinksPerGroup), ['red']);
    assert.equal(more.nextPageLink, undefined);
    const red = await page(more.nextPageLinksPerGroup.red);
    assert.deepEqual(red.documentLinks, [link('grouped-0'), link('grouped-4')]);

    // Descending groups; numeric groups (a LONG groupByTerm); an async task answers the same.
    const desc = await q({ ...spec, groupSortOrder: 'DESC', groupResultLimit: 10 });
    assert.deepEqual(Object.keys(desc.json.results.nextPageLinksPerGroup), ['red', 'green', 'blue']);
    const byCounter = await q({ ...spec, query: { term: { propertyName: 'id', matchValue: 'red' } }, groupByTerm: { propertyName: 'counter', propertyType: 'LONG' }, groupResultLimit: 10 });
    const counters = byCounter.json.results.nextPageLinksPerGroup as Record<string, string>;
    assert.deepEqual(Object.keys(counters).sort(), ['100', '104', '105', '107']);
    assert.deepEqual((await page(counters['105']!)).documentLinks, [link('grouped-5')]);
    const task = await q(spec, {}, false);
    const done = await waitFor(async () => {
      const g = await http('GET', `${h.uri}${task.json.documentSelfLink}`);
      return g.json.taskInfo.stage === 'FINISHED' && g;
    }, 'async GROUP_BY task');
    assert.deepEqual(Object.keys(done.json.results.nextPageLinksPerGroup), ['blue', 'green']);
  });

  it('SINGLE_USE pages are served once and offer no way back', async () => {
    for (const id of ['once-1', 'once-2', 'once-3']) await post({ documentSelfLink: id, name: 'once' });
    const r = await q({ query: { term: { propertyName: 'name', matchValue: 'once' } }, options: ['SINGLE_USE'], resultLimit: 1 });
    assert.equal(r.status, 200, r.text);
    const firstLink = r.json.results.nextPageLink as string;
    const first = await http('GET', `${h.uri}${firstLink}`);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.results.documentLinks.length, 1);
    const again = await http('GET', `${h.uri}${firstLink}`);
    assert.equal(again.status, 404, 'a SINGLE_USE page is gone once served');
    const second = await http('GET', `${h.uri}${first.json.results.nextPageLink}`);
    assert.equal(second.status, 200);
    assert.equal(second.json.results.prevPageLink, undefined);
    const third = await http('GET', `${h.uri}${second.json.results.nextPageLink}`);
    const seen = [first, second, third].flatMap((p) => p.json.results.documentLinks as string[]).sort();
    assert.deepEqual(seen, [link('once-1'), link('once-2'), link('once-3')]);
    assert.equal(third.json.results.nextPageLink, undefined);
  });

  it('expectedResultCount waits until enough documents match, and times out (408) when the task expires first', async () => {
    const query = { term: { propertyName: 'name', matchValue: 'awaited' } };
    const task = await q({ query, expectedResultCount: 2 }, {}, false);
    assert.equal(task.status, 202, task.text);
    const taskLink = task.json.documentSelfLink as string;
    await post({ name: 'awaited' });
    await new Promise((r) => setTimeout(r, 400)); // several maintenance intervals: one match is not enough
    assert.equal((await http('GET', `${h.uri}${taskLink}`)).json.taskInfo.stage, 'STARTED');
    await post({ name: 'awaited' });
    const done = await waitFor(async () => {
      const g = await http('GET', `${h.uri}${taskLink}`);
      return g.json.taskInfo.stage !== 'STARTED' && g;
    }, 'the task to finish once two documents match');
    assert.equal(done.json.taskInfo.stage, 'FINISHED');
    assert.equal(done.json.results.documentLinks.length, 2);

    // A direct task waits in its POST; one that can never be satisfied answers 408 when it expires.
    const started = Date.now();
    const late = await q({ query, expectedResultCount: 3 }, { documentExpirationTimeMicros: (Date.now() + 800) * 1000 });
    assert.equal(late.status, 408, late.text);
    assert.match(late.json.message, /2 documents match, expectedResultCount is 3/);
    assert.ok(Date.now() - started >= 500, 'it waited for the count');

    const waiting = q({ query, expectedResultCount: 3 });
    await new Promise((r) => setTimeout(r, 300));
    await post({ name: 'awaited' });
    const answered = await waiting;
    assert.equal(answered.status, 200, answered.text);
    assert.equal(answered.json.results.documentLinks.length, 3);
  });
  it("expectedResultCount stops waiting once nobody waits: the task deleted, or a direct task's client gone", async () => {
    const query = { term: { propertyName: 'name', matchValue: 'never-enough' } };
    const waits = async () => ((await http('GET', `${h.uri}/core/query-tasks/stats`)).json.entries?.expectedResultCountWaits?.latestValue as number | undefined) ?? 0;
    const task = await q({ query, expectedResultCount: 1000 }, {}, false);
    assert.equal(task.status, 202, task.text);
    await waitFor(async () => (await waits()) === 1, 'the task to wait for its count');
    // While nothing is written the count is not run again (matches cannot grow); a write makes it run.
    const checks = async () => (await http('GET', `${h.uri}/core/query-tasks/stats`)).json.entries.expectedResultCountChecks.latestValue as number;
    const idle = await checks();
    await new Promise((r) => setTimeout(r, 500)); // five maintenance intervals
    assert.equal(await checks(), idle, 'no count while the host is idle');
    await post({ name: 'unrelated' });
    await waitFor(async () => (await checks()) > idle, 'a count after a write');
    assert.equal((await http('GET', `${h.uri}${task.json.documentSelfLink}`)).json.taskInfo.stage, 'STARTED', 'still waiting: the write does not match');
    assert.equal((await http('DELETE', `${h.uri}${task.json.documentSelfLink}`)).status, 200);
    await waitFor(async () => (await waits()) === 0, 'the deleted task to stop counting', 5_000);
    // A direct task waits inside its POST: when its client leaves, it stops too.
    const leaving = new AbortController();
    const direct = fetch(`${h.uri}/core/query-tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ taskInfo: { isDirect: true }, querySpec: { query, expectedResultCount: 1000 } }),
      signal: leaving.signal,
    }).catch((err: Error) => err);
    await waitFor(async () => (await waits()) === 1, 'the direct task to wait for its count');
    leaving.abort();
    assert.ok((await direct) instanceof Error);
    await waitFor(async () => (await waits()) === 0, 'the abandoned direct task to stop counting', 5_000);
    assert.equal((await http('GET', `${h.uri}/core/query-tasks`)).status, 200, 'the host serves on');
  });

  it('CONTINUOUS: the task stays STARTED, and each matching update PATCHes it and its subscribers (added, updated, deleted counted)', async () => {
    const listener = await startListener();
    try {
      await post({ documentSelfLink: 'cq-1', name: 'cq', counter: 1 });
      const query = {
        booleanClauses: [
          { occurance: 'MUST_OCCUR', term: { propertyName: 'name', matchValue: 'cq' } },
          { occurance: 'MUST_OCCUR', term: { propertyName: 'documentKind', matchValue: EXAMPLE_KIND } },
        ],
      };
      const created = await q({ query, options: ['CONTINUOUS', 'EXPAND_CONTENT'] }, { documentExpirationTimeMicros: (Date.now() + 60_000) * 1000 }, false);
      assert.equal(created.status, 202, created.text);
      const task = `${h.uri}${created.json.documentSelfLink}`;
      const initial = await waitFor(async () => {
        const t = (await http('GET', task)).json;
        return t.results && t;
      }, 'initial results');
      assert.equal(initial.taskInfo.stage, 'STARTED', 'a continuous task does not finish');
      assert.deepEqual(initial.results.documentLinks, [link('cq-1')]);
      const sub = await http('POST', `${task}/subscriptions`, { reference: listener.url('/cq') });
      assert.equal(sub.status, 200, sub.text);

      await post({ documentSelfLink: 'cq-2', name: 'cq', counter: 2 });
      await post({ documentSelfLink: 'not-cq', name: 'other' });
      assert.equal((await http('PATCH', `${h.uri}/core/examples/cq-2`, { counter: 5 })).status, 200);
      assert.equal((await http('PATCH', `${h.uri}/core/examples/not-cq`, { counter: 5 })).status, 200);
      assert.equal((await http('DELETE', `${h.uri}/core/examples/cq-1`)).status, 200);
      const got = await waitFor(async () => listener.at('/cq').length >= 3 && listener.at('/cq'), '3 notifications');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(listener.at('/cq').length, 3, 'documents that do not match are not reported');
      assert.ok(got.every((n) => n.method === 'PATCH' && n.pragma.includes('xn-nt') && n.body.documentKind === 'com:vmware:xenon:services:common:QueryTask'));
      assert.deepEqual(
        got.map((n) => [n.body.results.documentLinks, n.body.results.documents[n.body.results.documentLinks[0]].counter, n.body.results.continuousResults]),
        [
          [[link('cq-2')], 2, { documentCountAdded: 1, documentCountUpdated: 0, documentCountDeleted: 0 }],
          [[link('cq-2')], 5, { documentCountAdded: 1, documentCountUpdated: 1, documentCountDeleted: 0 }],
          [[link('cq-1')], 1, { documentCountAdded: 1, documentCountUpdated: 1, documentCountDeleted: 1 }],
        ],
      );
      const now = (await http('GET', task)).json;
      assert.equal(now.taskInfo.stage, 'STARTED');
      assert.deepEqual(now.results.continuousResults, { documentCountAdded: 1, documentCountUpdated: 1, documentCountDeleted: 1 });
      assert.ok(now.documentVersion > initial.documentVersion);

      // A COUNT task keeps the number of matches current.
      const counting = await q({ query, options: ['CONTINUOUS', 'COUNT'] }, {}, false);
      const countTask = `${h.uri}${counting.json.documentSelfLink}`;
      await waitFor(async () => (await http('GET', countTask)).json.results?.documentCount === 1, 'initial count 1 (cq-2)');
      await post({ documentSelfLink: 'cq-3', name: 'cq' });
      await post({ documentSelfLink: 'cq-4', name: 'cq' });
      assert.equal((await http('DELETE', `${h.uri}/core/examples/cq-2`)).status, 200);
      const counted = await waitFor(async () => {
        const r = (await http('GET', countTask)).json.results;
        return r.continuousResults?.documentCountDeleted === 1 && r;
      }, 'the count task to see the delete');
      assert.equal(counted.documentCount, 2);
      assert.deepEqual(counted.continuousResults, { documentCountAdded: 2, documentCountUpdated: 0, documentCountDeleted: 1 });

      // The first task saw those too (2 added, 1 deleted); deleting it ends it and its subscriptions.
      await waitFor(async () => listener.at('/cq').length === 6, 'the first task to report cq-3, cq-4 and the delete of cq-2');
      assert.deepEqual(listener.at('/cq')[5]!.body.results.continuousResults, { documentCountAdded: 3, documentCountUpdated: 1, documentCountDeleted: 2 });
      assert.equal((await http('DELETE', task)).status, 200);
      await post({ documentSelfLink: 'cq-5', name: 'cq' });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(listener.at('/cq').length, 6, 'nothing after the task is deleted');
      assert.equal((await http('GET', task)).status, 404);
    } finally {
      await listener.close();
    }
  });
});
