import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, type RunningHost } from './support/hosts.js';

/** Wire details a Xenon client relies on: OData filters, request validation, query-task options. */
describe('Xenon conformance of listings, request validation and query tasks', () => {
  let h: RunningHost;
  let base: string;
  const names = ['x1', 'x2', 'x3', 'x4'];
  const direct = (querySpec: unknown, extra: Record<string, unknown> = {}) => http('POST', `${base}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec, ...extra });
  const linksOf = (r: { json: any }) => (r.json.results?.documentLinks ?? r.json.documentLinks) as string[];
  before(async () => {
    h = await startHost(['--id=conformance']);
    base = h.uri;
    for (const name of names) assert.equal((await http('POST', `${base}/core/examples`, { name, documentSelfLink: name })).status, 200);
    for (let i = 1; i <= 12; i++) assert.equal((await http('POST', `${base}/core/examples`, { name: 's', documentSelfLink: `s${i}` })).status, 200);
  });
  after(async () => {
    await h.stop();
  });

  it('keeps a $filter negation: ne excludes, and negations combine as Xenon does', async () => {
    const listed = async (filter: string) => ((await http('GET', `${base}/core/examples?$filter=${encodeURIComponent(filter)}`)).json.documentLinks as string[]).map((l) => l.split('/').pop()).sort();
    const all = [...names, ...Array.from({ length: 12 }, (_, i) => `s${i + 1}`)].sort();
    assert.deepEqual(
      await listed('name ne x1'),
      all.filter((n) => n !== 'x1'),
    );
    assert.deepEqual(
      await listed('name ne x1 and name ne x2'),
      all.filter((n) => n !== 'x1' && n !== 'x2'),
    );
    assert.deepEqual(await listed('name ne x1 or name ne x2'), all);
    assert.deepEqual(await listed('name eq x3'), ['x3']);
  });

  it('answers 400 to $filter groups nested past 100 levels, and serves long and/or chains', async () => {
    const deep = `${'('.repeat(5000)}name eq x1${')'.repeat(5000)}`;
    const r = await http('GET', `${base}/core/examples?$filter=${encodeURIComponent(deep)}`);
    assert.equal(r.status, 400);
    assert.match(r.json.message, /deeper than 100 levels/);
    const chain = Array.from({ length: 600 }, (_, i) => `name eq n${i}`).join(' or ') + ' or name eq x2';
    const ok = await http('GET', `${base}/core/examples?$filter=${encodeURIComponent(chain)}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json.documentLinks, ['/core/examples/x2']);
  });

  it('lists everything for $limit=0 and refuses $orderby on a property the service does not have', async () => {
    const all = await http('GET', `${base}/core/examples?$limit=0`);
    assert.equal(all.status, 200);
    assert.equal(all.json.documentLinks.length, 16);
    assert.equal(all.json.nextPageLink, undefined);
    const bogus = await http('GET', `${base}/core/examples?$orderby=bogus%20asc`);
    assert.equal(bogus.status, 400);
    assert.equal(bogus.json.message, 'Sort term is not a valid property: bogus');
    assert.equal((await http('GET', `${base}/core/examples?$orderby=name%20desc`)).status, 200);
    assert.equal((await http('GET', `${base}/core/examples?$orderby=documentUpdateTimeMicros%20desc`)).status, 200);
  });

  it('links the second page of a $limit listing back to the first, $skip included', async () => {
    const q = `$filter=${encodeURIComponent('name eq s')}&$orderby=${encodeURIComponent('documentSelfLink asc')}&$limit=3&$skip=2`;
    const first = await http('GET', `${base}/core/examples?${q}`);
    assert.equal(first.json.prevPageLink, undefined);
    const second = await http('GET', `${base}${first.json.nextPageLink}`);
    assert.ok(second.json.prevPageLink, 'page 2 has a prevPageLink');
    const back = await http('GET', `${base}${second.json.prevPageLink}`);
    assert.deepEqual(back.json.documentLinks, first.json.documentLinks);
    assert.deepEqual(first.json.documentLinks, ['/core/examples/s11', '/core/examples/s12', '/core/examples/s2']);
  });

  it('refuses non-integers in integer fields instead of storing 0 or a truncated value', async () => {
    const before = await http('GET', `${base}/core/examples/x3`);
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/core/examples', { name: 't1', documentExpirationTimeMicros: 'abc' }, /documentExpirationTimeMicros must be an integer/],
      ['POST', '/core/examples', { name: 't2', counter: 5.5 }, /counter must be an integer/],
      // A Java client's long beyond 2^53, as sent on the wire.
      ['POST', '/core/examples', '{"name": "t3", "counter": 9007199254740993}', /counter must be an integer between/],
      ['POST', '/core/examples', { name: 't4', documentVersion: 'x' }, /documentVersion must be an integer/],
      ['PATCH', '/core/examples/x3', { documentExpirationTimeMicros: 'soon' }, /documentExpirationTimeMicros must be an integer/],
      ['PATCH', '/core/examples/x3', { counter: 1.25 }, /counter must be an integer/],
    ];
    for (const [method, path, body, message] of cases) {
      const r = await http(method, `${base}${path}`, body);
      assert.equal(r.status, 400, `${method} ${JSON.stringify(body)}`);
      assert.match(r.json.message, message);
    }
    assert.equal((await http('GET', `${base}/core/examples?$filter=name%20eq%20t*`)).json.documentLinks.length, 0);
    assert.equal((await http('GET', `${base}/core/examples/x3`)).json.documentVersion, before.json.documentVersion);
    const integral = await http('POST', `${base}/core/examples`, { name: 't5', counter: 7.0, documentSelfLink: 't5' });
    assert.equal(integral.status, 200);
    assert.equal(integral.json.counter, 7);
  });

  it('refuses child ids that name a utility service', async () => {
    for (const id of ['stats', 'template', 'config', 'available', 'subscriptions', '/core/examples/replication']) {
      const r = await http('POST', `${base}/core/examples`, { name: 'u', documentSelfLink: id });
      assert.equal(r.status, 400, id);
      assert.match(r.json.message, /names a utility service of \/core\/examples/);
      assert.equal(r.json.statusCode, 400);
    }
    assert.equal((await http('GET', `${base}/core/examples/stats`)).json.documentKind, 'com:vmware:xenon:common:ServiceStats');
  });

  it('filters P/stats entries by name and latestValue', async () => {
    const stats = `${base}/core/examples/x1/stats`;
    for (const [name, latestValue] of [
      ['myStat', 5],
      ['myOther', 1],
      ['yourStat', 9],
    ] as const)
      assert.equal((await http('POST', stats, { name, latestValue })).status, 200);
    const names = async (filter: string) => Object.keys((await http('GET', `${stats}?$filter=${encodeURIComponent(filter)}`)).json.entries);
    assert.deepEqual(await names('name eq myStat'), ['myStat']);
    assert.deepEqual(await names('name eq my*'), ['myOther', 'myStat']);
    assert.deepEqual(await names('name eq *Stat and latestValue gt 6'), ['yourStat']);
    assert.equal((await http('GET', `${stats}?$filter=${encodeURIComponent('bogus eq 1')}`)).status, 400);
    assert.equal((await http('GET', `${stats}?$top=1`)).status, 400);
  });

  it('keeps at most 1,000 statistics a service, with names of at most 256 characters: more are refused with 400', async () => {
    const stats = `${base}/core/examples/stats`;
    const before = Object.keys((await http('GET', stats)).json.entries).length;
    const long = await http('POST', stats, { name: 'n'.repeat(257), latestValue: 1 });
    assert.equal(long.status, 400);
    assert.match(long.json.message, /at most 256 characters/);
    for (let i = before; i < 1000; i += 50)
      await Promise.all(Array.from({ length: Math.min(50, 1000 - i) }, (_, k) => http('POST', stats, { name: `bulk-${i + k}`, latestValue: 1 }).then((r) => assert.equal(r.status, 200, r.text))));
    const full = await http('POST', stats, { name: 'one-too-many', latestValue: 1 });
    assert.equal(full.status, 400);
    assert.match(full.json.message, /at most 1000 statistics/);
    assert.equal((await http('POST', stats, { name: 'bulk-999', latestValue: 7 })).status, 200, 'an existing statistic still takes new values');
    const after = (await http('GET', stats)).json.entries;
    assert.equal(Object.keys(after).length, 1000);
    assert.equal(after['bulk-999'].latestValue, 7);
    assert.equal(after['one-too-many'], undefined);
  });

  it('answers without a date header and says "Unparseable JSON body" for bad JSON', async () => {
    const r = await http('GET', `${base}/core/examples/x1`);
    assert.equal(r.headers.get('date'), null);
    const bad = await http('POST', `${base}/core/examples`, '{"name": ');
    assert.equal(bad.status, 400);
    assert.match(bad.json.message, /^Unparseable JSON body: /);
  });

  it('applies offset to the first page of a paged query', async () => {
    const spec = { query: { term: { propertyName: 'name', matchValue: 's' } }, options: ['SORT'], sortTerm: { propertyName: 'documentSelfLink', propertyType: 'STRING' } };
    const whole = linksOf(await direct({ ...spec, offset: 10 }));
    assert.deepEqual(whole, ['/core/examples/s8', '/core/examples/s9']);
    const task = await direct({ ...spec, offset: 9, resultLimit: 2 });
    const seen: string[] = [];
    for (let next = task.json.results.nextPageLink as string | undefined; next; ) {
      const page = await http('GET', `${base}${next}`);
      seen.push(...linksOf(page));
      next = page.json.results.nextPageLink;
    }
    assert.deepEqual(seen, ['/core/examples/s7', '/core/examples/s8', '/core/examples/s9']);
  });

  it('gives FORWARD_ONLY pages no prevPageLink; other pages keep theirs', async () => {
    const walk = async (options: string[]) => {
      const task = await direct({ query: { term: { propertyName: 'name', matchValue: 's' } }, options, resultLimit: 5 });
      const first = await http('GET', `${base}${task.json.results.nextPageLink}`);
      const second = await http('GET', `${base}${first.json.results.nextPageLink}`);
      return second.json.results.prevPageLink as string | undefined;
    };
    assert.equal(await walk(['FORWARD_ONLY']), undefined);
    assert.ok(await walk([]));
  });

  it('validates a query task: its id, taskInfo, expiration, and options krypton does not implement', async () => {
    const spec = { query: { term: { propertyName: 'name', matchValue: 'x1' } } };
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ querySpec: spec, documentSelfLink: 'sp ace' }, /sp ace is an invalid id/],
      [{ querySpec: spec, documentSelfLink: 'foo/bar' }, /foo\/bar is an invalid id/],
      [{ querySpec: spec, taskInfo: 'direct' }, /taskInfo must be an object/],
      [{ querySpec: spec, taskInfo: { isDirect: 1 } }, /taskInfo.isDirect must be a boolean/],
      [{ querySpec: spec, documentExpirationTimeMicros: 'abc' }, /documentExpirationTimeMicros must be an integer/],
      [{ querySpec: { ...spec, options: ['CONTINUOUS_STOP_MATCH'] } }, /CONTINUOUS_STOP_MATCH is not supported by krypton/],
      [{ querySpec: { ...spec, options: ['CONTINUOUS'] }, taskInfo: { isDirect: true } }, /CONTINUOUS option is not allowed on direct tasks/],
      [{ querySpec: { ...spec, options: ['TIME_SNAPSHOT'] } }, /timeSnapshotBoundaryMicros is provided/],
      [{ querySpec: { ...spec, resultLimit: 0 } }, /resultLimit must be a positive integer/],
      [{ querySpec: { ...spec, expectedResultCount: -2 } }, /expectedResultCount must not be negative/],
    ];
    for (const [body, message] of cases) {
      const r = await http('POST', `${base}/core/query-tasks`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.json.message, message);
    }
    const named = await http('POST', `${base}/core/query-tasks`, { querySpec: spec, documentSelfLink: '/core/query-tasks/my-task' });
    assert.equal(named.status, 202);
    assert.equal(named.json.documentSelfLink, '/core/query-tasks/my-task');
  });

  it('re-runs a task cloned through documentSourceLink', async () => {
    const source = await http('POST', `${base}/core/query-tasks`, { querySpec: { query: { term: { propertyName: 'name', matchValue: 'x4' } } }, documentSelfLink: 'source-task' });
    assert.equal(source.status, 202);
    const clone = await http('POST', `${base}/core/query-tasks`, { documentSourceLink: '/core/query-tasks/source-task', taskInfo: { isDirect: true } });
    assert.equal(clone.status, 200);
    assert.deepEqual(clone.json.results.documentLinks, ['/core/examples/x4']);
    assert.notEqual(clone.json.documentSelfLink, '/core/query-tasks/source-task');
    const missing = await http('POST', `${base}/core/query-tasks`, { documentSourceLink: '/core/query-tasks/nope', taskInfo: { isDirect: true } });
    assert.equal(missing.status, 400);
    assert.match(missing.json.message, /is not a live task/);
  });

  it('answers 400, not 500, to a query with more values than SQLite binds', async () => {
    const clauses = Array.from({ length: 8200 }, (_, i) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'name', matchValue: `x${i}*y?`, matchType: 'WILDCARD' } }));
    const r = await direct({ query: { booleanClauses: clauses } });
    assert.equal(r.status, 400);
    assert.match(r.json.message, /the query is too large/);
    assert.equal((await http('GET', `${base}/core/examples/x1`)).status, 200);
  });
});
