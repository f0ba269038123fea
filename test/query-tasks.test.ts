import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { importExamples } from './support/cluster.js';

describe('query tasks over HTTP', () => {
  let h: RunningHost;
  const q = (spec: unknown, direct = true, path = '/core/query-tasks') => http('POST', `${h.uri}${path}`, { taskInfo: { isDirect: direct }, querySpec: spec });
  const term = (propertyName: string, matchValue: string, matchType = 'TERM') => ({ term: { propertyName, matchValue, matchType } });

  before(async () => {
    h = await startHost(['--id=qhost']);
    const docs = [
      { documentSelfLink: 'alpha', name: 'alpha', counter: 1, tags: ['red', 'blue'], keyValues: { env: 'prod' } },
      { documentSelfLink: 'beta', name: 'beta', counter: 5, tags: ['red'], keyValues: { env: 'dev' } },
      { documentSelfLink: 'gamma', name: 'gamma ray burst', counter: 10, tags: ['green'] },
      { documentSelfLink: 'delta', name: 'delta', counter: 20 },
    ];
    for (const d of docs) assert.equal((await http('POST', `${h.uri}/core/examples`, d)).status, 200);
    await http('PATCH', `${h.uri}/core/examples/delta`, { counter: 21 });
    await http('DELETE', `${h.uri}/core/examples/delta`);
  });
  after(async () => {
    await h.stop();
  });

  const links = (r: { json: any }) => [...r.json.results.documentLinks].sort();

  it('answers a direct term query at once with FINISHED and the links', async () => {
    const r = await q({ query: term('name', 'alpha') });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.taskInfo.stage, 'FINISHED');
    assert.equal(r.json.documentKind, 'com:vmware:xenon:services:common:QueryTask');
    assert.deepEqual(r.json.results.documentLinks, ['/core/examples/alpha']);
    assert.equal(r.json.querySpec.query.term.matchType, 'TERM');
  });

  it('answers documentKind queries (confined to the one factory of that kind) with the same rows', async () => {
    const kind = term('documentKind', 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState');
    assert.deepEqual(links(await q({ query: kind })), ['/core/examples/alpha', '/core/examples/beta', '/core/examples/gamma']);
    assert.deepEqual(links(await q({ query: kind, options: ['INCLUDE_DELETED'] })), ['/core/examples/alpha', '/core/examples/beta', '/core/examples/delta', '/core/examples/gamma']);
    const both = {
      booleanClauses: [
        { ...kind, occurance: 'MUST_OCCUR' },
        { ...term('name', 'beta'), occurance: 'MUST_OCCUR' },
      ],
    };
    assert.deepEqual(links(await q({ query: both })), ['/core/examples/beta']);
    const elsewhere = {
      booleanClauses: [
        { ...kind, occurance: 'MUST_OCCUR' },
        { ...term('documentSelfLink', '/core/other/', 'PREFIX'), occurance: 'MUST_OCCUR' },
      ],
    };
    assert.deepEqual(links(await q({ query: elsewhere })), []);
    const unknown = term('documentKind', 'no:such:Kind');
    assert.deepEqual(links(await q({ query: unknown })), []);
    const top = await q({ query: kind, options: ['TOP_RESULTS'], resultLimit: 2 });
    assert.equal(top.json.results.documentLinks.length, 2);
  });

  it('runs asynchronous tasks: 202, then FINISHED on poll', async () => {
    const r = await q({ query: term('name', 'beta'), options: ['EXPAND_CONTENT'] }, false);
    assert.equal(r.status, 202);
    assert.equal(r.json.taskInfo.stage, 'CREATED');
    const done = await waitFor(async () => {
      const g = await http('GET', `${h.uri}${r.json.documentSelfLink}`);
      return g.json.taskInfo.stage === 'FINISHED' ? g : undefined;
    }, 'async task');
    assert.equal(done.json.results.documents['/core/examples/beta'].counter, 5);
  });

  it('supports every match type, ranges, nested properties and collection items', async () => {
    assert.deepEqual(links(await q({ query: term('name', 'al', 'PREFIX') })), ['/core/examples/alpha']);
    assert.deepEqual(links(await q({ query: term('name', '*a', 'WILDCARD') })), ['/core/examples/alpha', '/core/examples/beta']);
    assert.deepEqual(links(await q({ query: term('name', 'ray burst', 'PHRASE') })), ['/core/examples/gamma']);
    assert.deepEqual(links(await q({ query: term('tags.item', 'red') })), ['/core/examples/alpha', '/core/examples/beta']);
    assert.deepEqual(links(await q({ query: term('keyValues.env', 'prod') })), ['/core/examples/alpha']);
    const range = (min: number, max: number, incMin: boolean, incMax: boolean) => ({
      term: { propertyName: 'counter', range: { type: 'LONG', min, max, isMinInclusive: incMin, isMaxInclusive: incMax } },
    });
    assert.deepEqual(links(await q({ query: range(1, 10, true, true) })), ['/core/examples/alpha', '/core/examples/beta', '/core/examples/gamma']);
    assert.deepEqual(links(await q({ query: range(1, 10, false, false) })), ['/core/examples/beta']);
    assert.deepEqual(links(await q({ query: term('counter', '5') })), [], 'a TERM query on a numeric field matches nothing');
  });

  it('implements Lucene boolean semantics, nested', async () => {
    const must = (x: object) => ({ occurance: 'MUST_OCCUR', ...x });
    const not = (x: object) => ({ occurance: 'MUST_NOT_OCCUR', ...x });
    const should = (x: object) => ({ occurance: 'SHOULD_OCCUR', ...x });
    assert.deepEqual(links(await q({ query: { booleanClauses: [must(term('tags.item', 'red')), not(term('name', 'beta'))] } })), ['/core/examples/alpha']);
    assert.deepEqual(links(await q({ query: { booleanClauses: [not(term('name', 'beta'))] } })), [], 'a pure MUST_NOT group matches nothing');
    assert.deepEqual(links(await q({ query: { booleanClauses: [should(term('name', 'beta')), should(term('name', 'alpha'))] } })), ['/core/examples/alpha', '/core/examples/beta']);
    assert.deepEqual(links(await q({ query: { booleanClauses: [must(term('name', 'beta')), should(term('name', 'alpha'))] } })), ['/core/examples/beta'], 'SHOULD does not filter next to MUST');
    const nested = { booleanClauses: [must({ booleanClauses: [should(term('tags.item', 'green')), should(term('keyValues.env', 'dev'))] }), not({ booleanClauses: [must(term('name', 'beta'))] })] };
    assert.deepEqual(links(await q({ query: nested })), ['/core/examples/gamma']);
  });

  it('supports COUNT, SORT, TOP_RESULTS, INCLUDE_DELETED and INCLUDE_ALL_VERSIONS', async () => {
    const all = term('documentSelfLink', '/core/examples/', 'PREFIX');
    const c = await q({ query: all, options: ['COUNT'] });
    assert.equal(c.json.results.documentCount, 3);
    assert.deepEqual(c.json.results.documentLinks, []);
    const sorted = await q({ query: all, options: ['SORT'], sortTerm: { propertyName: 'counter', propertyType: 'LONG' }, sortOrder: 'DESC' });
    assert.deepEqual(sorted.json.results.documentLinks, ['/core/examples/gamma', '/core/examples/beta', '/core/examples/alpha']);
    const top = await q({ query: all, options: ['SORT', 'TOP_RESULTS'], resultLimit: 2, sortTerm: { propertyName: 'name', propertyType: 'STRING' } });
    assert.deepEqual(top.json.results.documentLinks, ['/core/examples/alpha', '/core/examples/beta']);
    const del = await q({ query: all, options: ['INCLUDE_DELETED', 'EXPAND_CONTENT'] });
    assert.equal(del.json.results.documents['/core/examples/delta'].documentUpdateAction, 'DELETE');
    const versions = await q({ query: term('documentSelfLink', '/core/examples/delta'), options: ['INCLUDE_ALL_VERSIONS'] });
    assert.deepEqual([...versions.json.results.documentLinks].sort(), ['/core/examples/delta?documentVersion=0', '/core/examples/delta?documentVersion=1', '/core/examples/delta?documentVersion=2']);
  });

  it('pages with keyset paging that neither skips nor repeats documents sharing an update time', async () => {
    const t = 1600000000000000;
    for (let i = 0; i < 25; i++) {
      const r = await http(
        'POST',
        `${h.uri}/core/examples`,
        { name: 'same-time', documentSelfLink: `st-${String(i).padStart(2, '0')}`, documentUpdateTimeMicros: t + (i % 3) },
        { pragma: 'xn-from-migration' },
      );
      assert.equal(r.status, 200);
    }
    const first = await q({
      query: term('name', 'same-time'),
      options: ['EXPAND_CONTENT', 'SORT'],
      resultLimit: 4,
      sortTerm: { propertyName: 'documentUpdateTimeMicros', propertyType: 'LONG' },
      additionalSortTerms: [{ propertyName: 'documentSelfLink', propertyType: 'STRING', sortOrder: 'ASC' }],
    });
    assert.deepEqual(first.json.results.documentLinks, []);
    let next: string | undefined = first.json.results.nextPageLink;
    assert.match(next!, /^\/core\/query-page-forwarding\?peer=qhost&path=\d+$/);
    const seen: string[] = [];
    let pages = 0;
    while (next) {
      const p = await http('GET', `${h.uri}${next}`);
      assert.equal(p.status, 200, p.text);
      assert.ok(p.json.results.documentLinks.length <= 4);
      seen.push(...p.json.results.documentLinks);
      next = p.json.results.nextPageLink;
      pages++;
    }
    assert.equal(pages, 7);
    assert.equal(seen.length, 25);
    assert.equal(new Set(seen).size, 25, 'no document repeated');
    const times = seen.map((l) => Number(l.slice(-2)) % 3);
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'ordered by update time',
    );
  });

  it('keeps at most --queryPageLimit live pages: the oldest is dropped and its link answers 404', async () => {
    const small = await startHost(['--queryPageLimit=3']);
    try {
      for (const id of ['p1', 'p2', 'p3']) assert.equal((await http('POST', `${small.uri}/core/examples`, { name: 'paged', documentSelfLink: id })).status, 200);
      const spec = { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'paged' } }, resultLimit: 2 } };
      const pages: string[] = [];
      for (let i = 0; i < 4; i++) pages.push((await http('POST', `${small.uri}/core/query-tasks`, spec)).json.results.nextPageLink);
      const oldest = await http('GET', `${small.uri}${pages[0]}`);
      assert.equal(oldest.status, 404);
      assert.match(oldest.json.message, /not found or expired/);
      const newest = await http('GET', `${small.uri}${pages[3]}`);
      assert.equal(newest.status, 200, newest.text);
      assert.deepEqual(newest.json.results.documentLinks, ['/core/examples/p1', '/core/examples/p2']);
    } finally {
      await small.stop();
    }
  });

  it('keeps at most --queryTaskLimit asynchronous tasks: the oldest finished one is dropped, and while all still run a new one is refused with 503', async () => {
    const small = await startHost(['--queryTaskLimit=2']);
    try {
      assert.equal((await http('POST', `${small.uri}/core/examples`, { name: 'limited', documentSelfLink: 'l1' })).status, 200);
      const task = (options: string[] = []) =>
        http('POST', `${small.uri}/core/query-tasks`, { taskInfo: { isDirect: false }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'limited' } }, options } });
      const finished = async (link: string) => {
        for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
          const r = await http('GET', `${small.uri}${link}`);
          if (r.json.taskInfo.stage === 'FINISHED') return r;
        }
        throw new Error(`${link} did not finish`);
      };
      const links: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await task();
        assert.equal(r.status, 202);
        links.push(r.json.documentSelfLink);
        await finished(r.json.documentSelfLink);
      }
      // A third: the oldest finished task makes room.
      const third = await task();
      assert.equal(third.status, 202, third.text);
      assert.equal((await http('GET', `${small.uri}${links[0]}`)).status, 404, 'the oldest finished task was dropped');
      assert.deepEqual((await finished(links[1]!)).json.results.documentLinks, ['/core/examples/l1'], 'the others keep their results');
      assert.deepEqual((await finished(third.json.documentSelfLink)).json.results.documentLinks, ['/core/examples/l1']);
      // CONTINUOUS tasks run until deleted: two of them fill the service, and a fifth task is refused.
      const running: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await task(['CONTINUOUS']);
        assert.equal(r.status, 202, r.text);
        running.push(r.json.documentSelfLink);
      }
      const refused = await task();
      assert.equal(refused.status, 503, refused.text);
      assert.match(refused.json.message, /--queryTaskLimit=2/);
      const listed = await http('GET', `${small.uri}/core/query-tasks`);
      assert.deepEqual([...listed.json.documentLinks].sort(), [...running].sort(), 'nothing was created for the refused task');
      // Deleting one makes room again.
      assert.equal((await http('DELETE', `${small.uri}${running[0]}`)).status, 200);
      assert.equal((await task()).status, 202);
    } finally {
      await small.stop();
    }
  });

  it('serves local query tasks and rejects bad queries with 400', async () => {
    const r = await q({ query: term('name', 'alpha') }, true, '/core/local-query-tasks');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.results.documentLinks, ['/core/examples/alpha']);
    const bad = await q({ query: { term: { propertyName: 'counter', range: { type: 'LONG', min: 5, max: 1 } } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.message, 'max must be greater than min');
  });
});

describe('query tasks: unpaged results larger than one batch stream', () => {
  let h: RunningHost;
  const N = 12_000; // more than two 5,000-row batches
  const all = { query: { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } } };
  before(async () => {
    h = await startHost();
    await importExamples(h.uri, N, 's');
  });
  after(async () => {
    await h.stop();
  });

  it('answers an unpaged EXPAND_CONTENT query with every link and document, as the paged query lists them', async () => {
    const direct = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { ...all, options: ['EXPAND_CONTENT'] } });
    assert.equal(direct.status, 200, direct.text.slice(0, 300));
    const r = direct.json.results;
    assert.equal(r.documentCount, N);
    assert.equal(direct.json.taskInfo.stage, 'FINISHED');
    assert.ok(direct.json.taskInfo.durationMicros > 0);
    assert.equal(direct.json.documentKind, 'com:vmware:xenon:services:common:QueryTask');
    assert.equal(direct.json.querySpec.resultLimit, 2147483647);
    const paged: string[] = [];
    const pagedDocs: Record<string, unknown> = {};
    let page = (await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { ...all, options: ['EXPAND_CONTENT'], resultLimit: 5000 } })).json.results;
    while (page.nextPageLink) {
      page = (await http('GET', `${h.uri}${page.nextPageLink}`)).json.results;
      paged.push(...page.documentLinks);
      Object.assign(pagedDocs, page.documents);
    }
    assert.equal(paged.length, N);
    assert.deepEqual(r.documentLinks, paged, 'the same links in the same order');
    assert.deepEqual(Object.keys(r.documents), paged);
    assert.deepEqual(r.documents, pagedDocs);
    assert.equal(r.documents['/core/examples/s-11999'].counter, 11999);
  });

  it('streams pages larger than one batch: the same rows, prev/next links and a following page', async () => {
    const walk = async (resultLimit: number) => {
      const pages: any[] = [];
      let r = (await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { ...all, options: ['EXPAND_CONTENT'], resultLimit } })).json.results;
      while (r.nextPageLink) {
        const page = await http('GET', `${h.uri}${r.nextPageLink}`);
        assert.equal(page.status, 200, page.text.slice(0, 300));
        assert.equal(page.json.taskInfo.stage, 'FINISHED');
        assert.equal(page.json.documentKind, 'com:vmware:xenon:services:common:QueryTask');
        r = page.json.results;
        pages.push(r);
      }
      return pages;
    };
    const big = await walk(7000);
    assert.deepEqual(
      big.map((p) => p.documentCount),
      [7000, 5000],
    );
    assert.equal(big[0].prevPageLink, undefined);
    assert.ok(big[1].prevPageLink, 'the second page links back');
    for (const p of big) assert.deepEqual(Object.keys(p.documents), p.documentLinks);
    const small = await walk(1000);
    assert.equal(small.length, 12);
    assert.deepEqual(
      big.flatMap((p) => p.documentLinks),
      small.flatMap((p) => p.documentLinks),
    );
    assert.deepEqual(Object.assign({}, ...big.map((p) => p.documents)), Object.assign({}, ...small.map((p) => p.documents)));
    const back = await http('GET', `${h.uri}${big[1].prevPageLink}`);
    assert.deepEqual(back.json.results.documentLinks, big[0].documentLinks, 'the previous page serves the same rows again');
  });

  it('keeps a large asynchronous result on disk, not in memory, until the task is deleted', async () => {
    const spill = join(h.sandbox, 'query-results', 'core_query-tasks');
    const created = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: false }, querySpec: { ...all, options: ['EXPAND_CONTENT'] } });
    assert.equal(created.status, 202, created.text.slice(0, 300));
    const link = created.json.documentSelfLink;
    const done = await waitFor(async () => {
      const t = await http('GET', `${h.uri}${link}`);
      return t.json.taskInfo.stage === 'FINISHED' ? t : undefined;
    }, 'the task to finish');
    const direct = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { ...all, options: ['EXPAND_CONTENT'] } });
    assert.equal(done.json.results.documentCount, N);
    assert.deepEqual(done.json.results.documentLinks, direct.json.results.documentLinks);
    assert.deepEqual(done.json.results.documents, direct.json.results.documents);
    assert.equal(done.json.documentSelfLink, link);
    assert.equal(done.json.taskInfo.isDirect, false);
    assert.ok(done.json.taskInfo.durationMicros > 0);
    assert.equal(readdirSync(spill).length, 1, 'one results file while the task lives');
    const again = await http('GET', `${h.uri}${link}`);
    assert.equal(again.text, done.text, 'a second GET answers the same');
    const deleted = await http('DELETE', `${h.uri}${link}`);
    assert.equal(deleted.status, 200);
    assert.equal(deleted.json.results.documentCount, N);
    assert.deepEqual(readdirSync(spill), [], 'deleting the task removes its file');
    assert.equal((await http('GET', `${h.uri}${link}`)).status, 404);
  });

  it('keeps at most 64 MB of asynchronous results in memory: beyond it, results go to files', async () => {
    const spill = join(h.sandbox, 'query-results', 'core_query-tasks');
    // 5,000 expanded documents (about 2.2 MB of JSON): one batch, so kept in memory while the budget lasts.
    const spec = { ...all, options: ['EXPAND_CONTENT', 'TOP_RESULTS'], resultLimit: 5000 };
    const links: string[] = [];
    for (let i = 0; i < 40; i++) {
      const created = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: false }, querySpec: spec });
      assert.equal(created.status, 202, created.text.slice(0, 300));
      links.push(created.json.documentSelfLink);
    }
    const answers = await Promise.all(
      links.map((link) =>
        waitFor(async () => {
          const t = await http('GET', `${h.uri}${link}`);
          return t.json.taskInfo.stage === 'FINISHED' ? t : undefined;
        }, `task ${link} to finish`),
      ),
    );
    const size = answers[0]!.json.results.documentLinks.length;
    assert.equal(size, 5000);
    for (const a of answers) assert.deepEqual(a.json.results.documentLinks, answers[0]!.json.results.documentLinks);
    const files = readdirSync(spill).length;
    const perTask = JSON.stringify(answers[0]!.json.results).length;
    const inMemory = Math.floor((64 * 1024 * 1024) / perTask);
    // ±1: each answer's queryTimeMicros has its own number of digits.
    assert.ok(Math.abs(files - (40 - inMemory)) <= 1, `${files} files: about ${inMemory} tasks fit the budget (${perTask} bytes each), the others are in files`);
    for (const link of links) assert.equal((await http('DELETE', `${h.uri}${link}`)).status, 200);
    assert.deepEqual(readdirSync(spill), [], 'deleting the tasks removes their files');
    const after = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: false }, querySpec: spec });
    await waitFor(async () => (await http('GET', `${h.uri}${after.json.documentSelfLink}`)).json.taskInfo.stage === 'FINISHED', 'a new task to finish');
    assert.deepEqual(readdirSync(spill), [], 'the budget is free again: the new task is kept in memory');
    assert.equal((await http('DELETE', `${h.uri}${after.json.documentSelfLink}`)).status, 200);
  });

  it('streams OData factory queries above one batch: unlimited, $top, $limit pages and $count', async () => {
    const all = await http('GET', `${h.uri}/core/examples?$orderby=counter%20desc&$expand`);
    assert.equal(all.status, 200, all.text.slice(0, 300));
    assert.equal(all.json.documentLinks.length, N);
    assert.equal(all.json.documentCount, N);
    assert.equal(all.json.totalCount, N);
    assert.equal(all.json.documentLinks[0], '/core/examples/s-11999');
    assert.deepEqual(Object.keys(all.json.documents), all.json.documentLinks);
    const top = await http('GET', `${h.uri}/core/examples?$orderby=counter%20asc&$top=7000&$filter=name%20eq%20's-*'`);
    assert.equal(top.json.documentLinks.length, 7000);
    assert.equal(top.json.documentLinks[6999], '/core/examples/s-6999');
    const first = await http('GET', `${h.uri}/core/examples?$limit=7000&$count=true&$orderby=counter%20asc`);
    assert.equal(first.json.totalCount, N, '$count counts every match, not the page');
    assert.equal(first.json.documentLinks.length, 7000);
    assert.deepEqual(Object.keys(first.json.documents), first.json.documentLinks);
    assert.match(first.json.nextPageLink, /^\/core\/examples\?path=\d+&peer=/);
    const second = await http('GET', `${h.uri}${first.json.nextPageLink}`);
    assert.equal(second.status, 200, second.text.slice(0, 300));
    assert.equal(second.json.documentLinks.length, 5000);
    assert.equal(second.json.documentLinks[0], '/core/examples/s-7000');
    assert.equal(second.json.documentCount, 5000);
    assert.deepEqual(Object.keys(second.json.documents), second.json.documentLinks);
    assert.equal(second.json.nextPageLink, undefined);
    assert.equal(second.json.taskInfo, undefined, 'the results alone, not a query task');
    assert.equal(second.headers.get('content-length'), null, 'a later $limit page streams too');
  });

  it('streams TOP_RESULTS above one batch, sorted, and links-only results', async () => {
    const top = await http('POST', `${h.uri}/core/query-tasks`, {
      taskInfo: { isDirect: true },
      querySpec: { ...all, options: ['TOP_RESULTS', 'SORT', 'EXPAND_CONTENT'], resultLimit: 7000, sortTerm: { propertyName: 'counter', propertyType: 'LONG' }, sortOrder: 'DESC' },
    });
    assert.equal(top.status, 200, top.text.slice(0, 300));
    const links: string[] = top.json.results.documentLinks;
    assert.equal(links.length, 7000);
    assert.equal(top.json.results.documentCount, 7000);
    assert.deepEqual(links.slice(0, 2), ['/core/examples/s-11999', '/core/examples/s-11998']);
    assert.equal(links[6999], '/core/examples/s-5000');
    assert.deepEqual(Object.keys(top.json.results.documents), links);
    const linksOnly = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: all });
    assert.equal(linksOnly.json.results.documentLinks.length, N);
    assert.equal(new Set(linksOnly.json.results.documentLinks).size, N);
    assert.equal(linksOnly.json.results.documents, undefined);
  });
});

/**
 * Starts a request and reads only the first bytes of the answer; `rest()` reads the remainder. A
 * large answer meanwhile fills the socket's buffers and the host waits to send the rest.
 */
function openSlowly(url: string, method: string, body?: unknown): Promise<{ status: number; rest: () => Promise<any> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.once('data', (first: Buffer) => {
        chunks.push(first);
        res.pause();
        const rest = () =>
          new Promise<any>((done, failed) => {
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => done(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
            res.on('error', failed);
            res.resume();
          });
        resolve({ status: res.statusCode ?? 0, rest });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('query tasks: a streamed answer is one point in time', () => {
  let h: RunningHost;
  const N = 12_000;
  const all = { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, options: ['EXPAND_CONTENT'] };
  before(async () => {
    h = await startHost();
    // About 24 MB of documents: far more than a socket buffers, so the host sends the answer in steps.
    const padding = 'x'.repeat(2000);
    const t0 = Date.now() * 1000;
    for (let start = 0; start < N; start += 1000) {
      const documents = Array.from({ length: 1000 }, (_, k) => ({
        name: `p-${start + k}`,
        counter: start + k,
        keyValues: { padding },
        documentSelfLink: `/p-${start + k}`,
        documentUpdateTimeMicros: t0 + start + k,
      }));
      const r = await http('POST', `${h.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents });
      assert.equal(r.status, 200, r.text.slice(0, 300));
    }
  });
  after(async () => {
    await h.stop();
  });

  /** Deletes documents that come last in the answer's order, patches others (a new version moves them first) and adds some. */
  async function writeMeanwhile(round: number): Promise<void> {
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i++) {
      writes.push(http('DELETE', `${h.uri}/core/examples/p-${round * 300 + i}`));
      writes.push(http('PATCH', `${h.uri}/core/examples/p-${round * 300 + 100 + i}`, { counter: 1_000_000 }));
      writes.push(http('POST', `${h.uri}/core/examples`, { name: `new-${round}-${i}`, counter: i }));
    }
    for (const r of (await Promise.all(writes)) as Array<{ status: number }>) assert.equal(r.status, 200);
  }

  function assertConsistent(results: any, expected: number): void {
    const links: string[] = results.documentLinks;
    assert.equal(links.length, expected);
    assert.equal(new Set(links).size, links.length, 'no link twice');
    assert.equal(results.documentCount, links.length);
    assert.deepEqual(Object.keys(results.documents), links, 'a document for every link, in the same order');
  }

  it('a direct query streams the documents as they were when it started, whatever is written meanwhile', async () => {
    const answer = await openSlowly(`${h.uri}/core/query-tasks`, 'POST', { taskInfo: { isDirect: true }, querySpec: all });
    assert.equal(answer.status, 200);
    await writeMeanwhile(0);
    const { results } = await answer.rest();
    assertConsistent(results, N);
    for (let i = 0; i < 200; i++) {
      const doc = results.documents[`/core/examples/p-${i}`];
      assert.equal(doc.counter, i, `p-${i} as it was before the delete or patch`);
      assert.equal(doc.documentVersion, 0);
    }
    assert.equal(results.documentLinks.filter((l: string) => l.includes('/new-')).length, 0);
  });

  it('an expanded factory listing and an OData query are each one consistent view too', async () => {
    const now = (await http('GET', `${h.uri}/core/examples`)).json.documentCount;
    const listing = await openSlowly(`${h.uri}/core/examples?expand`, 'GET');
    const odata = await openSlowly(`${h.uri}/core/examples?$filter=${encodeURIComponent("name eq 'p-*'")}&$expand=true`, 'GET');
    await writeMeanwhile(1);
    const listed = await listing.rest();
    assertConsistent(listed, now);
    const queried = await odata.rest();
    assertConsistent(queried, queried.documentLinks.length);
    assert.equal(queried.totalCount, queried.documentLinks.length);
    assert.ok(queried.documentLinks.length >= N - 100, `OData answer: ${queried.documentLinks.length}`);
  });
});

describe('graceful shutdown with an answer still streaming', () => {
  it('sends the whole streamed answer before the host exits (SIGTERM), then exits 0', async () => {
    const h = await startHost();
    const padding = 'y'.repeat(2000);
    for (let start = 0; start < 6000; start += 1000) {
      const documents = Array.from({ length: 1000 }, (_, k) => ({ name: `g-${start + k}`, keyValues: { padding }, documentSelfLink: `/g-${start + k}` }));
      assert.equal((await http('POST', `${h.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents })).status, 200);
    }
    const listing = await openSlowly(`${h.uri}/core/examples?expand`, 'GET');
    assert.equal(listing.status, 200);
    const exited = new Promise<number | null>((resolve) => h.proc.once('exit', (code) => resolve(code)));
    h.proc.kill('SIGTERM');
    const body = await listing.rest();
    assert.equal(body.documentLinks.length, 6000);
    assert.deepEqual(Object.keys(body.documents), body.documentLinks);
    assert.equal(await exited, 0);
  });
});
