import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, waitFor, type RunningHost } from './support/hosts.js';

const EXAMPLE_KIND = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';

describe('host REST API (Xenon core wire, spec §13 walk-through)', () => {
  let h: RunningHost;
  let base: string;
  before(async () => {
    h = await startHost(['--id=host-a']);
    base = h.uri;
  });
  after(async () => {
    await h.stop();
  });

  it('answers an empty factory listing', async () => {
    const r = await http('GET', `${base}/core/examples`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.documentLinks, []);
    assert.equal(r.json.documentCount, 0);
    assert.equal(r.json.documentOwner, 'host-a');
    assert.equal(r.headers.get('content-type'), 'application/json');
  });

  it('creates a document with every built-in field', async () => {
    const r = await http('POST', `${base}/core/examples`, { name: 'example-1', counter: 1 });
    assert.equal(r.status, 200);
    const d = r.json;
    assert.match(d.documentSelfLink, /^\/core\/examples\/[0-9a-f]+$/);
    assert.equal(d.name, 'example-1');
    assert.equal(d.counter, 1);
    assert.equal(d.documentVersion, 0);
    assert.equal(d.documentKind, EXAMPLE_KIND);
    assert.equal(d.documentUpdateAction, 'POST');
    assert.equal(d.documentOwner, 'host-a');
    assert.equal(d.documentEpoch, 0);
    assert.equal(d.documentExpirationTimeMicros, 0);
    assert.equal(d.isFromMigration, false);
    assert.ok(d.documentUpdateTimeMicros > 1.5e15);
    assert.equal(d.documentAuthPrincipalLink, undefined, 'absent when auth is off');
    const g = await http('GET', `${base}${d.documentSelfLink}`);
    assert.deepEqual(g.json, d);
  });

  it('honours a given documentSelfLink in all three forms and validates it', async () => {
    for (const [given, expected] of [
      ['a1', '/core/examples/a1'],
      ['/a2', '/core/examples/a2'],
      ['/core/examples/a3', '/core/examples/a3'],
    ]) {
      const r = await http('POST', `${base}/core/examples`, { name: 'x', documentSelfLink: given });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.documentSelfLink, expected);
    }
    for (const bad of ['foo/bar', '/other/foo', 'a%20b', '']) {
      const r = await http('POST', `${base}/core/examples`, { name: 'x', documentSelfLink: bad });
      assert.equal(r.status, 400, bad);
      assert.equal(r.json.message, `${bad} is an invalid id`);
    }
  });

  it('follows the spec walk-through: conflicts, patch, put, delete, re-create', async () => {
    let r = await http('POST', `${base}/core/examples`, { name: 'a', documentSelfLink: 'a' });
    assert.equal(r.status, 200);
    r = await http('POST', `${base}/core/examples`, { name: 'a', documentSelfLink: 'a' });
    assert.equal(r.status, 409);
    assert.equal(r.json.errorCode, -2147483645);
    assert.equal(r.json.documentKind, 'com:vmware:xenon:common:ServiceErrorResponse');
    r = await http('POST', `${base}/core/examples`, '{"name":"b"}', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 400);
    assert.equal(r.json.message, 'Unrecognized Content-Type for parsing request body: application/x-www-form-urlencoded');
    r = await http('POST', `${base}/core/examples`, {});
    assert.equal(r.status, 400);
    assert.equal(r.json.message, 'name is required');
    r = await http('PATCH', `${base}/core/examples/a`, { counter: 7, tags: ['x'] });
    assert.equal(r.status, 200);
    assert.equal(r.json.counter, 7);
    assert.deepEqual(r.json.tags, ['x']);
    assert.equal(r.json.documentVersion, 1);
    assert.equal(r.json.documentUpdateAction, 'PATCH');
    r = await http('PATCH', `${base}/core/examples/a`, { counter: 3, tags: ['y'], keyValues: { k: 'v', j: 'w' } });
    assert.equal(r.json.counter, 7, 'counter never decreases');
    assert.deepEqual(r.json.tags, ['x', 'y'], 'tags only grow');
    r = await http('PATCH', `${base}/core/examples/a`, { keyValues: { k: null } });
    assert.deepEqual(r.json.keyValues, { j: 'w' }, 'null removes a key');
    assert.equal(r.json.documentVersion, 3);
    r = await http('PUT', `${base}/core/examples/a`, { counter: 1 });
    assert.equal(r.status, 400);
    assert.equal(r.json.message, 'name must be set');
    r = await http('GET', `${base}/core/examples?expand`);
    assert.ok(r.json.documents['/core/examples/a']);
    r = await http('GET', `${base}/core/examples?$filter=name%20eq%20a&$count=true`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.totalCount, 1);
    assert.equal(r.json.documentCount, 1);
    r = await http('DELETE', `${base}/core/examples/a`);
    assert.equal(r.status, 200);
    assert.equal(r.json.documentUpdateAction, 'DELETE');
    assert.equal(r.json.documentVersion, 4);
    r = await http('GET', `${base}/core/examples/a`);
    assert.equal(r.status, 404);
    assert.equal(r.json.errorCode, -2147483646);
    r = await http('DELETE', `${base}/core/examples/a`);
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    r = await http('POST', `${base}/core/examples`, { name: 'a', documentSelfLink: 'a' });
    assert.equal(r.status, 409);
    assert.equal(r.json.message, 'Service marked deleted: /core/examples/a');
    assert.equal(r.json.errorCode, -2147483646);
    r = await http('POST', `${base}/core/examples`, { name: 'a', documentSelfLink: 'a' }, { pragma: 'xn-force-index-update' });
    assert.equal(r.status, 200);
    assert.equal(r.json.documentVersion, 5);
    r = await http('GET', `${base}/core/examples/nope`);
    assert.equal(r.status, 404);
    assert.equal(r.json.message, `Service not found: http://127.0.0.1:${h.port}/core/examples/nope`);
    assert.equal(r.json.errorCode, -2147483648);
    r = await http('PATCH', `${base}/core/examples`, {});
    assert.equal(r.status, 400);
    assert.equal(r.json.message, 'Action not supported');
    r = await http('POST', `${base}/core/examples/a`, { name: 'z' });
    assert.equal(r.status, 405);
  });

  it('keeps every version: the index answers any version of a link', async () => {
    await http('POST', `${base}/core/examples`, { name: 'v0', documentSelfLink: 'hist' });
    await http('PATCH', `${base}/core/examples/hist`, { name: 'v1' });
    await http('PUT', `${base}/core/examples/hist`, { name: 'v2' });
    const v0 = await http('GET', `${base}/core/document-index?documentSelfLink=/core/examples/hist&documentVersion=0`);
    const v1 = await http('GET', `${base}/core/document-index?documentSelfLink=/core/examples/hist&documentVersion=1`);
    assert.equal(v0.json.name, 'v0');
    assert.equal(v1.json.name, 'v1');
    assert.equal(v1.json.documentUpdateAction, 'PATCH');
  });

  it('honours xn-from-migration: keeps id and update time, visible to the handler', async () => {
    const t = 1546000000123456;
    const r = await http('POST', `${base}/core/examples`, { name: 'm', documentSelfLink: '/mig-1', documentUpdateTimeMicros: t }, { pragma: 'xn-from-migration' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.documentSelfLink, '/core/examples/mig-1');
    assert.equal(r.json.documentUpdateTimeMicros, t);
    assert.equal(r.json.isFromMigration, true);
  });

  it('makes a document with a past expiration disappear', async () => {
    const past = Date.now() * 1000 - 1_000_000;
    const r = await http('POST', `${base}/core/examples`, { name: 'exp', documentSelfLink: 'exp', documentExpirationTimeMicros: past });
    assert.equal(r.status, 200);
    assert.equal((await http('GET', `${base}/core/examples/exp`)).status, 404);
    const list = await http('GET', `${base}/core/examples`);
    assert.ok(!list.json.documentLinks.includes('/core/examples/exp'));
  });

  it('pages OData listings with $limit and nextPageLink', async () => {
    for (let i = 0; i < 5; i++) await http('POST', `${base}/core/examples`, { name: `page-${i}`, documentSelfLink: `p${i}` });
    const seen: string[] = [];
    let r = await http('GET', `${base}/core/examples?$limit=2&$filter=name%20eq%20'page-*'`);
    assert.equal(r.status, 200, r.text);
    seen.push(...r.json.documentLinks);
    while (r.json.nextPageLink) {
      assert.match(r.json.nextPageLink, /^\/core\/examples\?path=\d+&peer=host-a$/);
      r = await http('GET', `${base}${r.json.nextPageLink}`);
      assert.equal(r.status, 200, r.text);
      seen.push(...r.json.documentLinks);
    }
    assert.deepEqual([...seen].sort(), ['/core/examples/p0', '/core/examples/p1', '/core/examples/p2', '/core/examples/p3', '/core/examples/p4']);
  });

  it('serves the core services a Xenon client expects', async () => {
    const ng = await http('GET', `${base}/core/node-groups/default`);
    assert.equal(ng.status, 200);
    assert.equal(ng.json.nodes['host-a'].status, 'AVAILABLE');
    assert.equal(ng.json.nodes['host-a'].membershipQuorum, 1);
    const m = await http('GET', `${base}/core/management`);
    assert.equal(m.json.id, 'host-a');
    assert.equal(m.json.httpPort, h.port);
    const sel = await http('GET', `${base}/core/node-selectors/default`);
    assert.equal(sel.json.status, 'AVAILABLE');
    const root = await http('GET', `${base}/`);
    assert.ok(root.json.documentLinks.includes('/core/examples'));
    assert.ok(root.json.documentLinks.includes('/management/migration-tasks'));
    assert.equal((await http('GET', `${base}/core/examples/available`)).status, 200);
    const cfg = await http('GET', `${base}/core/examples/config`);
    assert.equal(cfg.json.versionRetentionLimit, 100);
    const tpl = await http('GET', `${base}/core/examples/template`);
    const described = tpl.json.documents['/core/examples/child-template'].documentDescription.propertyDescriptions;
    assert.equal(described.counter.typeName, 'LONG');
    assert.equal(described.name.typeName, 'STRING');
    assert.equal(described.isFromMigration.typeName, 'BOOLEAN');
    assert.deepEqual(described.tags.elementDescription, { typeName: 'STRING', exampleValue: 'example string', indexingOptions: [], usageOptions: [] });
    assert.equal(described.tags.typeName, 'COLLECTION');
    assert.equal(described.keyValues.typeName, 'MAP');
    assert.equal(described.keyValues.elementDescription.typeName, 'STRING');
    // Xenon's annotations of ExampleServiceState, and its example values.
    assert.deepEqual(described.keyValues.indexingOptions, ['EXPAND', 'FIXED_ITEM_NAME']);
    assert.deepEqual(described.keyValues.usageOptions, ['OPTIONAL', 'AUTO_MERGE_IF_NOT_NULL']);
    assert.deepEqual(described.name, { typeName: 'STRING', exampleValue: 'myExample', indexingOptions: ['SORT'], usageOptions: ['AUTO_MERGE_IF_NOT_NULL'], propertyDocumentation: '@NAME' });
    assert.deepEqual(described.id.usageOptions, ['ID', 'REQUIRED']);
    assert.match(described.id.exampleValue, /^[0-9a-f-]{36}$/);
    assert.deepEqual(described.isFromMigration.usageOptions, ['SERVICE_USE']);
    // The built-in fields are described too (infrastructure use), and the keys are sorted as Xenon's TreeMap.
    assert.deepEqual(described.documentSelfLink, { typeName: 'STRING', exampleValue: 'some/service', indexingOptions: ['EXCLUDE_FROM_SIGNATURE'], usageOptions: ['INFRASTRUCTURE', 'LINK'] });
    assert.deepEqual(described.documentExpirationTimeMicros.usageOptions, ['INFRASTRUCTURE', 'AUTO_MERGE_IF_NOT_NULL']);
    assert.equal(described.documentUpdateAction, undefined);
    assert.deepEqual(Object.keys(described), [...Object.keys(described)].sort());
    // The template is an instance filled with the example values.
    const instance = tpl.json.documents['/core/examples/child-template'];
    assert.equal(instance.name, 'myExample');
    assert.deepEqual(instance.tags, ['tag1', 'tag2']);
    assert.deepEqual(instance.keyValues, { key1: 'value1', key2: 'value2' });
    assert.equal(instance.counter, 0);
    assert.equal(instance.documentSelfLink, '/core/examples/child-template');
    assert.match(tpl.text, /^\{\n {2}"documentLinks"/, 'pretty-printed');
    // Every service answers /template; one without a state schema describes its built-in fields.
    for (const path of ['/core/query-tasks/template', '/core/node-groups/default/template']) {
      const t = await http('GET', `${base}${path}`);
      assert.equal(t.status, 200, `${path}: ${t.text}`);
      assert.equal(t.json.documentDescription.propertyDescriptions.documentSelfLink.typeName, 'STRING');
    }
    const stats = await http('GET', `${base}/core/examples/a/stats`);
    assert.equal(stats.status, 200);
    for (const method of ['DELETE', 'OPTIONS'] as const) {
      const r = await http(method, `${base}/core/examples/a/stats`);
      assert.equal(r.status, 405, `${method} on stats is a client error (Xenon answered 500): ${r.text}`);
      assert.match(r.json.message, new RegExp(`Action not supported on stats: ${method}`));
    }
  });
});

describe('OData listings and query expiry', () => {
  let h: RunningHost;
  before(async () => {
    h = await startHost(['--queryTaskExpirationMicros=300000']);
    for (const [id, counter] of [
      ['o1', 3],
      ['o2', 1],
      ['o3', 2],
      ['o4', 5],
    ] as const)
      await http('POST', `${h.uri}/core/examples`, { name: `odata-${id}`, counter, documentSelfLink: id });
  });
  after(async () => {
    await h.stop();
  });

  it('supports $top, $skip, $orderby, $select and $expand', async () => {
    let r = await http('GET', `${h.uri}/core/examples?$orderby=counter%20desc&$top=2`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.documentLinks, ['/core/examples/o4', '/core/examples/o1']);
    assert.equal(r.json.documents, undefined, 'OData results have links only without $expand');
    r = await http('GET', `${h.uri}/core/examples?$orderby=counter%20asc&$skip=1&$top=2&$expand`);
    assert.deepEqual(r.json.documentLinks, ['/core/examples/o3', '/core/examples/o1']);
    assert.equal(r.json.documents['/core/examples/o3'].counter, 2);
    r = await http('GET', `${h.uri}/core/examples?$select=name&$filter=counter%20ge%203`);
    assert.deepEqual(Object.keys(r.json.documents).sort(), ['/core/examples/o1', '/core/examples/o4']);
    assert.equal(r.json.documents['/core/examples/o1'].counter, undefined);
    assert.equal(r.json.documents['/core/examples/o1'].name, 'odata-o1');
    r = await http('GET', `${h.uri}/core/examples?$orderby=counter`);
    assert.equal(r.status, 400);
    assert.match(r.json.message, /invalid expression/);
  });

  it('expires query tasks and their pages (404 afterwards)', async () => {
    const t = await http('POST', `${h.uri}/core/query-tasks`, {
      querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, resultLimit: 1 },
    });
    assert.equal(t.status, 202);
    const done = await waitFor(async () => {
      const g = await http('GET', `${h.uri}${t.json.documentSelfLink}`);
      return g.json?.taskInfo?.stage === 'FINISHED' ? g : undefined;
    }, 'task');
    const page = done.json.results.nextPageLink;
    assert.equal((await http('GET', `${h.uri}${page}`)).status, 200);
    await waitFor(async () => ((await http('GET', `${h.uri}${t.json.documentSelfLink}`)).status === 404 ? true : undefined), 'task expiry', 10_000);
    assert.equal((await http('GET', `${h.uri}${page}`)).status, 404);
  });
});

describe('default order, as in Xenon', () => {
  let h: RunningHost;
  before(async () => {
    h = await startHost();
    for (const id of ['a', 'b', 'c', 'd', 'e']) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: id, documentSelfLink: id })).status, 200);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/d`, { counter: 1 })).status, 200);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/b`, { counter: 1 })).status, 200);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/b`, { counter: 2 })).status, 200);
  });
  after(async () => {
    await h.stop();
  });

  // Version descending; documents of the same version in index (insertion) order, oldest first.
  const expected = ['b', 'd', 'a', 'c', 'e'].map((id) => `/core/examples/${id}`);

  it('lists a factory by version descending, ties in insertion order', async () => {
    assert.deepEqual((await http('GET', `${h.uri}/core/examples`)).json.documentLinks, expected);
    assert.deepEqual(Object.keys((await http('GET', `${h.uri}/core/examples?expand`)).json.documents), expected);
  });

  it('pages a query without a sort term, and an OData $limit listing, in the same order', async () => {
    const links: string[] = [];
    let page = (
      await http('POST', `${h.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, resultLimit: 2 },
      })
    ).json.results;
    while (page.nextPageLink) {
      page = (await http('GET', `${h.uri}${page.nextPageLink}`)).json.results;
      links.push(...page.documentLinks);
    }
    assert.deepEqual(links, expected);
    const odata: string[] = [];
    let r = (await http('GET', `${h.uri}/core/examples?$limit=2`)).json;
    odata.push(...r.documentLinks);
    while (r.nextPageLink) {
      r = (await http('GET', `${h.uri}${r.nextPageLink}`)).json;
      odata.push(...r.documentLinks);
    }
    assert.deepEqual(odata, expected);
  });
});
