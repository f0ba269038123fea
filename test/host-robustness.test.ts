import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { http, startHost, tempDir } from './support/hosts.js';

/** Sends raw bytes (bad methods, broken JSON) the way a misbehaving client would. */
function raw(port: number, method: string, path: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('bad input never crashes the host nor half-writes', () => {
  it('answers a corpus of bad requests with 4xx ServiceErrorResponses and keeps data unchanged', async () => {
    const h = await startHost(['--requestPayloadSizeLimit=65536']);
    try {
      const seed = await http('POST', `${h.uri}/core/examples`, { name: 'seed', documentSelfLink: 'seed', counter: 5 });
      assert.equal(seed.status, 200);
      const before = (await http('GET', `${h.uri}/core/examples?expand`)).json;
      const corpus: Array<[string, string, string | undefined, Record<string, string>?]> = [
        ['POST', '/core/examples', '{"name": '],
        ['POST', '/core/examples', '[1,2,3]'],
        ['POST', '/core/examples', '"just a string"'],
        ['POST', '/core/examples', '{"name": 42}'],
        ['POST', '/core/examples', '{"name": "x", "counter": "many"}'],
        ['POST', '/core/examples', '{"name": "x", "tags": "notalist"}'],
        ['POST', '/core/examples', '{"name": "x", "keyValues": {"a": 1}}'],
        ['POST', '/core/examples', '{"name": "x", "documentSelfLink": 12}'],
        ['POST', '/core/examples', '{"name": "x", "documentSourceLink": "/core/examples/seed"}'],
        ['POST', '/core/examples', JSON.stringify({ name: 'x'.repeat(70_000) })],
        ['PATCH', '/core/examples/seed', '{"counter": "x"}'],
        ['PATCH', '/core/examples/seed', '{"tags": {"a": 1}}'],
        ['PUT', '/core/examples/seed', '{"counter": 1}'],
        ['PUT', '/core/examples', '{}'],
        ['POST', '/core/nonexistent-factory', '{"name":"x"}'],
        ['GET', '/core/examples/seed/unknown-suffix', undefined],
        ['POST', '/core/query-tasks', '{"querySpec": {"query": {"term": {"propertyName": "name", "matchValue": "x", "matchType": "FUZZY"}}}}'],
        ['POST', '/core/query-tasks', '{"querySpec": {"query": {"term": {"propertyName": "counter", "range": {"type": "LONG", "min": 10, "max": 1}}}}}'],
        ['POST', '/core/query-tasks', '{"querySpec": {"query": {"booleanClauses": [{"occurance": "SOMETIMES", "term": {"propertyName": "name", "matchValue": "x"}}]}}}'],
        ['POST', '/core/query-tasks', '{"querySpec": {"query": {"term": {"propertyName": "name", "matchValue": "x"}, "booleanClauses": []}}}'],
        ['POST', '/core/query-tasks', '{"querySpec": {"query": null}}'],
        ['POST', '/core/query-tasks', '{"taskInfo": {"isDirect": true}}'],
        ['GET', '/core/query-page-forwarding?peer=x&path=123', undefined],
        ['GET', '/core/query-page/424242', undefined],
        ['GET', '/core/examples?$filter=name%20eq', undefined],
        ['GET', '/core/examples?$orderby=name', undefined],
        ['GET', '/core/examples?$limit=abc', undefined],
        ['GET', '/core/examples?$top=2&$limit=2', undefined],
        ['POST', '/management/migration-tasks', '{"sourceFactoryLink": "/core/examples"}'],
        ['POST', '/management/migration-tasks', '{"sourceNodeGroupReference": "not a uri", "destinationNodeGroupReference": "http://x", "sourceFactoryLink": "/a", "destinationFactoryLink": "/b"}'],
        ['POST', '/management/migration-import', '{"documents": 3}'],
        ['POST', '/core/examples', '{"name":"x"}', { 'content-encoding': 'gzip' }],
      ];
      for (const [method, path, body, headers] of corpus) {
        const r = await raw(h.port, method, path, body, headers);
        assert.ok(r.status >= 400 && r.status < 500, `${method} ${path} ${body?.slice(0, 60)} → ${r.status} ${r.body}`);
        const err = JSON.parse(r.body) as { message?: string; statusCode: number; documentKind: string };
        assert.equal(err.documentKind, 'com:vmware:xenon:common:ServiceErrorResponse');
        assert.equal(err.statusCode, r.status);
        assert.ok(err.message && err.message.length > 3, `a useful message for ${method} ${path}`);
      }
      const head = await raw(h.port, 'HEAD', '/core/examples', undefined);
      assert.equal(head.status, 400);
      const after = (await http('GET', `${h.uri}/core/examples?expand`)).json;
      assert.deepEqual(after.documentLinks, before.documentLinks, 'nothing was half-written');
      assert.deepEqual(after.documents, before.documents);
      assert.equal((await http('GET', `${h.uri}/core/examples/seed`)).json.documentVersion, 0);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('keeps every acknowledged write across kill -9 during a write load', async () => {
    const sandbox = tempDir();
    const h = await startHost([], { sandbox });
    const acknowledged: string[] = [];
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await http('POST', `${h.uri}/core/examples`, { name: `w${w}-${i}`, documentSelfLink: `w${w}-${i}` });
          if (r.status === 200) acknowledged.push(r.json.documentSelfLink);
        } catch {
          return; // the connection died with the process
        }
      }
    });
    while (acknowledged.length < 300) await new Promise((r) => setTimeout(r, 5));
    await h.kill();
    stop = true;
    await Promise.all(writers);
    const again = await startHost([], { sandbox });
    try {
      const listed = new Set<string>((await http('GET', `${again.uri}/core/examples`)).json.documentLinks);
      const missing = acknowledged.filter((l) => !listed.has(l));
      assert.deepEqual(missing, [], `${missing.length} of ${acknowledged.length} acknowledged documents lost`);
    } finally {
      await again.stop();
    }
  });
});
