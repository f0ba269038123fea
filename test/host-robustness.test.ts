import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import { appendFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { http, startHost, tempDir, waitFor, writesTakenAgain, type RunningHost } from './support/hosts.js';
import { encodeRecord } from '../src/store/commit-log.js';
import { fuzzRequests, prng } from './support/fuzz.js';

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

/** POSTs `body` to /core/examples in two parts, the rest `delayMs` after the first `split` characters; resolves with the status. */
function postInTwoParts(port: number, body: string, split: number, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/core/examples', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(body.slice(0, split));
    setTimeout(() => req.end(body.slice(split)), delayMs);
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
        ['GET', '/core/examples?$top=99999999999999999999', undefined],
        ['GET', '/core/examples?$skip=-1', undefined],
        ['DELETE', '/core/examples/seed/stats', undefined],
        ['PATCH', '/core/examples/seed', undefined],
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

  it('answers 2,000 seeded random requests without a 5xx, and keeps serving', async () => {
    const h = await startHost();
    try {
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'fuzz', documentSelfLink: 'fuzz', counter: 1, tags: ['a'] })).status, 200);
      const failures: string[] = [];
      for (const req of fuzzRequests(20261122, 2000)) {
        const r = await raw(h.port, req.method, req.path, req.body, req.headers);
        const what = `${req.method} ${req.path} ${JSON.stringify(req.headers)} ${req.body?.slice(0, 120)} → ${r.status} ${r.body.slice(0, 200)}`;
        if (r.status >= 500 || r.status === 0) failures.push(what);
        else if (r.status >= 400 && !r.body.includes('"documentKind":"com:vmware:xenon:common:ServiceErrorResponse"')) failures.push(`not a ServiceErrorResponse: ${what}`);
      }
      assert.deepEqual(failures, [], 'no request is a server error');
      // Wide queries: 10,000 terms are answered; more are refused before SQLite's parameter limit (it was a 500).
      const wide = (n: number) => ({
        taskInfo: { isDirect: true },
        querySpec: { query: { booleanClauses: Array.from({ length: n }, (_, i) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'name', matchValue: i === 0 ? 'wide-target' : `n${i}` } })) } },
      });
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'wide-target', documentSelfLink: 'wide-target' })).status, 200);
      const fits = await http('POST', `${h.uri}/core/query-tasks`, wide(10_000));
      assert.equal(fits.status, 200, fits.text.slice(0, 200));
      assert.deepEqual(fits.json.results.documentLinks, ['/core/examples/wide-target']);
      const tooWide = await http('POST', `${h.uri}/core/query-tasks`, wide(40_000));
      assert.equal(tooWide.status, 400, tooWide.text.slice(0, 200));
      assert.match(tooWide.json.message, /more than 10000 terms/);
      assert.equal((await http('GET', `${h.uri}/core/examples/available`)).status, 200);
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'after the fuzz' })).status, 200);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('refuses versions and times past 2^53 - 1, so that no request can make the index refuse a write it acknowledged', async () => {
    const h = await startHost();
    try {
      const migrated = { pragma: 'xn-from-migration' };
      // A migrated document keeps its version: 1e308 was taken, and its next version (1e308 + 1 is
      // 1e308) made the index refuse an acknowledged write, which halted every write on the host.
      for (const [field, value] of [
        ['documentVersion', 1e308],
        ['documentVersion', '99999999999999999999'],
        ['documentUpdateTimeMicros', 1e308],
        ['documentExpirationTimeMicros', 2 ** 60],
      ] as const) {
        const r = await http('POST', `${h.uri}/core/examples`, { name: 'big', documentSelfLink: 'big', [field]: value }, migrated);
        assert.equal(r.status, 400, `${field} ${value}: ${r.text.slice(0, 200)}`);
        assert.match(r.json.message, new RegExp(`${field} must be an integer between`));
      }
      assert.equal((await http('GET', `${h.uri}/core/examples/big`)).status, 404);
      // The largest version stored: 2^53 - 2. One more write of it would need a version that is not exact.
      const edge = await http('POST', `${h.uri}/core/examples`, { name: 'edge', documentSelfLink: 'edge', documentVersion: 2 ** 53 - 2 }, migrated);
      assert.equal(edge.status, 200, edge.text.slice(0, 200));
      assert.equal(edge.json.documentVersion, 2 ** 53 - 2);
      for (const [method, body] of [
        ['PATCH', { counter: 5 }],
        ['PUT', { name: 'edge2' }],
        ['DELETE', undefined],
      ] as const) {
        const r = await http(method, `${h.uri}/core/examples/edge`, body);
        assert.equal(r.status, 400, `${method}: ${r.text.slice(0, 200)}`);
        assert.match(r.json.message, /past the largest version krypton stores/);
      }
      const atMax = await http('POST', `${h.uri}/core/examples`, { name: 'max', documentSelfLink: 'max', documentVersion: 2 ** 53 - 1 }, migrated);
      assert.equal(atMax.status, 400, atMax.text.slice(0, 200));
      // Nothing halted: the document is as it was, and the host takes writes and serves the index.
      const after = await http('GET', `${h.uri}/core/examples/edge`);
      assert.equal(after.status, 200);
      assert.equal(after.json.documentVersion, 2 ** 53 - 2);
      assert.equal(after.json.name, 'edge');
      for (let i = 0; i < 3; i++) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: `after-${i}` })).status, 200);
      const listed = await http('GET', `${h.uri}/core/examples?$filter=${encodeURIComponent("name eq 'after-*'")}`);
      assert.equal(listed.json.documentLinks.length, 3);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('keeps request stats for the 10,000 documents used last, so requests to ever more links do not grow its memory', async () => {
    const h = await startHost();
    try {
      for (const id of ['old', 'recent']) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: id, documentSelfLink: id })).status, 200);
      const getCount = async (id: string) => (await http('GET', `${h.uri}/core/examples/${id}/stats`)).json.entries?.GETrequestCount?.latestValue;
      assert.equal((await http('GET', `${h.uri}/core/examples/old`)).status, 200);
      assert.equal(await getCount('old'), 1);
      // 10,000 other links, most of them missing (a 404 counts as a request on the link too).
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < 10_000) {
            const r = await fetch(`${h.uri}/core/examples/other-${next++}`);
            await r.arrayBuffer();
          }
        }),
      );
      assert.equal((await http('GET', `${h.uri}/core/examples/recent`)).status, 200);
      assert.equal(await getCount('recent'), 1, 'a document used lately keeps its stats');
      assert.equal(await getCount('old'), undefined, 'the least recently used document has started over');
      assert.equal((await http('GET', `${h.uri}/core/examples/old`)).status, 200, 'and is served as before');
      assert.equal(await getCount('old'), 1);
      assert.equal((await http('GET', `${h.uri}/core/examples/stats`)).json.entries?.GETrequestCount, undefined, "the factory's own stats are the factory's");
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('refuses JSON nested deeper than 1,000 levels with a 400, even where no schema would stop it', async () => {
    const dir = tempDir();
    const mod = join(dir, 'free.mjs');
    writeFileSync(mod, `export const Free = { type: 'stateful', factoryLink: '/free', documentKind: 'free' };\n`);
    const h = await startHost([`--services=${mod}`]);
    try {
      const nested = (depth: number) => `{"name":"n","deep":${'{"a":'.repeat(depth - 1)}1${'}'.repeat(depth - 1)}}`;
      const fits = await raw(h.port, 'POST', '/free', nested(1000).replace('"name":"n"', '"documentSelfLink":"fits"'));
      assert.equal(fits.status, 200, fits.body.slice(0, 200));
      assert.equal((await http('GET', `${h.uri}/free/fits`)).text.split('{"a":').length - 1, 999, 'stored and served whole');
      // 8,000 levels was a 500 (V8's stack ran out in JSON.stringify); brackets inside strings do not count.
      for (const body of [nested(1001), nested(8000), '['.repeat(50_000)]) {
        const r = await raw(h.port, 'POST', '/free', body);
        assert.equal(r.status, 400, r.body.slice(0, 200));
        assert.match(JSON.parse(r.body).message, /nested deeper than 1000 levels/);
      }
      const strings = await raw(h.port, 'POST', '/free', JSON.stringify({ documentSelfLink: 'brackets', text: '{['.repeat(5000) }));
      assert.equal(strings.status, 200, strings.body.slice(0, 200));
      assert.deepEqual((await http('GET', `${h.uri}/free`)).json.documentLinks.sort(), ['/free/brackets', '/free/fits'], 'nothing else was written');
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

  it('keeps every acknowledged update and deletion across three kill -9 during mixed writes to the same documents', async () => {
    const sandbox = tempDir();
    const r = prng(20261207);
    // The newest acknowledged version of each link: what a restart must give back, or a newer one
    // (a write in flight at the kill), never an older one.
    const acked = new Map<string, { version: number; action: string; counter: number | undefined }>();
    // A write in flight at the kill may or may not be there after it (it was never answered): what
    // is read back may be newer than the acknowledged version, a deletion included, never older.
    const check = async (h: RunningHost) => {
      const q = await http('POST', `${h.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: {
          query: { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } },
          options: ['EXPAND_CONTENT', 'INCLUDE_DELETED'],
        },
      });
      assert.equal(q.status, 200, q.text.slice(0, 200));
      const latest = q.json.results.documents as Record<string, { documentVersion: number; documentUpdateAction: string; counter?: number }>;
      for (const [link, a] of acked) {
        const got = latest[link];
        assert.ok(got, `${link} (acknowledged at version ${a.version}, ${a.action}) lost`);
        assert.ok(got.documentVersion >= a.version, `${link}: version ${got.documentVersion} older than the acknowledged ${a.version}`);
        if (got.documentVersion === a.version) {
          assert.equal(got.documentUpdateAction, a.action, `${link}: action of version ${a.version}`);
          if (a.action !== 'DELETE') assert.equal(got.counter, a.counter, `${link}: content of version ${a.version}`);
        }
      }
    };
    const write = async (h: RunningHost): Promise<boolean> => {
      const id = `m${Math.floor(r() * 40)}`;
      const link = `/core/examples/${id}`;
      const counter = Math.floor(r() * 1_000_000);
      const pick = r();
      const res =
        pick < 0.3
          ? await http('POST', `${h.uri}/core/examples`, { name: id, counter, documentSelfLink: id }, { pragma: 'xn-force-index-update' })
          : pick < 0.55
            ? await http('PUT', `${h.uri}${link}`, { name: id, counter })
            : pick < 0.85
              ? await http('PATCH', `${h.uri}${link}`, { counter })
              : await http('DELETE', `${h.uri}${link}`);
      if (res.status !== 200 || !res.json) return false;
      const prev = acked.get(link);
      if (!prev || res.json.documentVersion >= prev.version) acked.set(link, { version: res.json.documentVersion, action: res.json.documentUpdateAction, counter: res.json.counter });
      return true;
    };
    for (let cycle = 0; cycle < 3; cycle++) {
      const h = await startHost([], { sandbox });
      let writes = 0;
      let stop = false;
      let writers: Promise<void>[] = [];
      try {
        await check(h);
        writers = Array.from({ length: 6 }, async () => {
          try {
            while (!stop) if (await write(h)) writes++;
          } catch {
            // the connection died with the process
          }
        });
        await waitFor(async () => writes >= 200, `200 acknowledged writes (${writes} so far)`, 30_000, 5);
      } finally {
        await h.kill();
        stop = true;
        await Promise.all(writers);
      }
    }
    const last = await startHost([], { sandbox });
    try {
      await check(last);
      assert.ok(acked.size > 20, `${acked.size} documents written`);
    } finally {
      assert.equal(await last.stop(), 0);
    }
  });

  it('serves acknowledged writes before the index has them, and replays them from the commit log after kill -9', async () => {
    const sandbox = tempDir();
    // A flush delay of a minute: every write below stays in the commit log until a read needs the index.
    const h = await startHost(['--indexFlushDelayMs=60000', '--logLevel=info'], { sandbox });
    const acked = new Map<string, Record<string, unknown>>();
    const keep = (r: { status: number; json: Record<string, unknown> }) => {
      assert.equal(r.status, 200);
      acked.set(r.json['documentSelfLink'] as string, r.json);
    };
    try {
      keep(await http('POST', `${h.uri}/core/examples`, { name: 'read-own-write', documentSelfLink: 'row' }));
      // A GET answers from the writes not yet applied; a query makes the index catch up first.
      assert.equal((await http('GET', `${h.uri}/core/examples/row`)).json.name, 'read-own-write');
      const q = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'read-own-write' } } } });
      assert.deepEqual(q.json.results.documentLinks, ['/core/examples/row']);
      // These are acknowledged but only logged when the process dies.
      for (const r of await Promise.all(Array.from({ length: 40 }, (_, i) => http('POST', `${h.uri}/core/examples`, { name: `logged-${i}`, documentSelfLink: `logged-${i}`, counter: i })))) keep(r);
      keep(await http('PATCH', `${h.uri}/core/examples/logged-0`, { counter: 100, tags: ['patched'] }));
      keep(await http('PUT', `${h.uri}/core/examples/logged-1`, { name: 'replaced', counter: 7 }));
      const deleted = await http('DELETE', `${h.uri}/core/examples/logged-2`);
      assert.equal(deleted.status, 200);
      acked.delete('/core/examples/logged-2');
      assert.equal((await http('GET', `${h.uri}/core/examples/logged-0`)).json.counter, 100, 'a patch sees the logged version');
    } finally {
      await h.kill();
    }
    // A record cut short by the crash (never acknowledged) must not stop the replay.
    const logDir = join(sandbox, 'commit-log');
    const segments = readdirSync(logDir).sort();
    assert.ok(segments.length > 0, 'the commit log holds the unapplied writes');
    // Its header line is complete, its document line is not.
    const torn =
      '{"s":999999,"o":[{"t":"w","k":1,"r":null,"l":"/core/examples/torn","f":"/core/examples","n":0,"K":null,"u":1,"a":"POST","e":0,"w":null,"p":null}]}\n{"name":"torn","documentSelfLink":"/core/ex';
    appendFileSync(join(logDir, segments.at(-1)!), torn);
    const again = await startHost(['--logLevel=info'], { sandbox });
    try {
      assert.match(again.output(), /replayed acknowledged writes from the commit log/);
      for (const [link, doc] of acked) {
        const r = await http('GET', `${again.uri}${link}`);
        assert.equal(r.status, 200, link);
        assert.deepEqual(r.json, doc, `${link} is exactly as acknowledged`);
      }
      assert.equal((await http('GET', `${again.uri}/core/examples/logged-2`)).status, 404, 'the delete was replayed');
      assert.equal((await http('GET', `${again.uri}/core/examples/torn`)).status, 404);
      const listed = (await http('GET', `${again.uri}/core/examples`)).json;
      assert.equal(listed.documentLinks.length, acked.size);
      const history = await http('GET', `${again.uri}/core/document-index?documentSelfLink=/core/examples/logged-0&documentVersion=0`);
      assert.equal(history.status, 200);
      assert.equal(history.json.counter, 0, 'both versions of the patched document were replayed');
    } finally {
      assert.equal(await again.stop(), 0);
    }
    assert.deepEqual(readdirSync(logDir), [], 'a clean stop leaves an empty commit log');
  });
  it('keeps answering other requests while a query waits for the index to catch up', async () => {
    const sandbox = tempDir();
    const h = await startHost([], { sandbox });
    // Another process holds the index's write lock for a second: the writer thread waits (busy timeout 5 s).
    const locker = new Database(join(sandbox, 'index.sqlite'));
    let released = false;
    try {
      locker.exec('BEGIN IMMEDIATE');
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'waiting', documentSelfLink: 'waiting' })).status, 200, 'acknowledged from the commit log');
      let queryDone = false;
      const query = http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'name', matchValue: 'waiting' } } } }).finally(
        () => (queryDone = true),
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(queryDone, false, 'the query waits for the index');
      const started = Date.now();
      const get = await http('GET', `${h.uri}/core/examples/waiting`);
      const ready = await http('GET', `${h.uri}/core/node-groups/default`);
      assert.equal(get.status, 200);
      assert.equal(get.json.name, 'waiting');
      assert.equal(ready.status, 200);
      assert.equal(queryDone, false, 'both were answered while the query was still waiting');
      assert.ok(Date.now() - started < 700, `answered in ${Date.now() - started} ms, while the index was locked`);
      setTimeout(() => {
        released = true;
        locker.exec('ROLLBACK');
      }, 800);
      const q = await query;
      assert.ok(released, 'the query was answered after the index caught up');
      assert.equal(q.status, 200, q.text);
      assert.deepEqual(q.json.results.documentLinks, ['/core/examples/waiting'], 'and it sees the acknowledged write');
    } finally {
      if (!released) locker.exec('ROLLBACK');
      locker.close();
      assert.equal(await h.stop(), 0);
    }
  });

  it('skips, and reports, only a logged write that can never be applied when it replays the log', async () => {
    const sandbox = tempDir();
    const logDir = join(sandbox, 'commit-log');
    mkdirSync(logDir);
    const record = (seq: number, id: string, name: string) => {
      const link = `/core/examples/${id}`;
      const json = JSON.stringify({ name, counter: seq, keyValues: {}, tags: [], documentSelfLink: link, documentVersion: 0, documentUpdateTimeMicros: 1_000 + seq });
      const v = { link, factory: '/core/examples', version: 0, kind: null, updateTime: 1_000 + seq, action: 'POST', expiration: 0, owner: 'h', authPrincipal: null, json };
      return encodeRecord(seq, [{ t: 'write', v, knownNew: true }]);
    };
    // #2 writes version 0 of a link #1 already wrote, as new: the index's unique (link, version) refuses it, always.
    writeFileSync(join(logDir, `${'1'.padStart(16, '0')}.log`), record(1, 'a', 'first') + record(2, 'a', 'duplicate') + record(3, 'b', 'after'));
    const h = await startHost(['--logLevel=info'], { sandbox });
    try {
      assert.equal((await http('GET', `${h.uri}/core/examples/a`)).json.name, 'first');
      assert.equal((await http('GET', `${h.uri}/core/examples/b`)).json.name, 'after', 'the replay goes on past it');
      await waitFor(async () => /"error":"#2: UNIQUE constraint failed[^\n]*"msg":"a logged write could not be replayed"/.test(h.output()), 'the skipped write reported');
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  /**
   * Halts a host's writes: another process holds the index's write lock, so the writer thread's
   * commits time out (SQLITE_BUSY). Returns the lock and the writes acknowledged before the refusal.
   */
  async function haltByLock(h: RunningHost): Promise<{ locker: Database.Database; acked: Map<string, Record<string, unknown>> }> {
    const locker = new Database(join(h.sandbox, 'index.sqlite'));
    locker.pragma('busy_timeout = 0');
    locker.exec('BEGIN IMMEDIATE');
    const acked = new Map<string, Record<string, unknown>>();
    let refused: { status: number; json: Record<string, unknown> } | undefined;
    for (let i = 0; !refused; i++) {
      assert.ok(i < 400, 'the host should refuse writes once it knows the index cannot take them');
      const r = await http('POST', `${h.uri}/core/examples`, { name: `w-${i}`, documentSelfLink: `w-${i}`, counter: i });
      if (r.status === 200) acked.set(r.json['documentSelfLink'] as string, r.json);
      else refused = r;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(refused.status, 500);
    assert.match(String(refused.json['message']), /could not apply an acknowledged write \(database is locked\); writes are refused until it does/);
    assert.ok(acked.size > 0);
    // Reads still see every acknowledged write.
    const first = [...acked.keys()][0]!;
    assert.deepEqual((await http('GET', `${h.uri}${first}`)).json, acked.get(first));
    return { locker, acked };
  }

  it('halts writes when the index cannot take an acknowledged write, and takes them again by itself once it can, losing nothing', async () => {
    const h = await startHost(['--logLevel=info']);
    let locker: Database.Database | undefined;
    try {
      const halted = await haltByLock(h);
      locker = halted.locker;
      const acked = halted.acked;
      assert.ok(readdirSync(join(h.sandbox, 'commit-log')).length > 0, 'the unapplied writes are kept in the commit log');
      locker.exec('ROLLBACK');
      locker.close();
      locker = undefined;
      // The host tries every few seconds whether the index takes the writes it lacks, in order.
      const after = await writesTakenAgain(h);
      acked.set('/core/examples/after', after);
      assert.match(h.output(), /"msg":"the index takes writes again/);
      const listed = (await http('GET', `${h.uri}/core/examples?expand`)).json;
      assert.equal(listed.documentCount, acked.size, 'every acknowledged write is in the index, once');
      for (const [link, doc] of acked) assert.deepEqual(listed.documents[link], doc, `${link} is exactly as acknowledged`);
    } finally {
      locker?.close();
      assert.equal(await h.stop(), 0);
    }
    assert.deepEqual(readdirSync(join(h.sandbox, 'commit-log')), [], 'a clean stop leaves an empty commit log');
  });

  it('refuses to start, rather than skip them, while the index still cannot take the acknowledged writes it lacks', async () => {
    const sandbox = tempDir();
    const h = await startHost(['--logLevel=info'], { sandbox });
    const { locker, acked } = await haltByLock(h).catch(async (err) => {
      await h.stop();
      throw err;
    });
    try {
      // Stopped and started while the index is still locked: the start refuses, the log is kept.
      assert.ok([0, 1].includes((await h.stop()) ?? -1));
      await assert.rejects(
        startHost(['--logLevel=info'], { sandbox }),
        /host exited with 1: .*the index cannot take the acknowledged writes of the commit log from #\d+ on \(database is locked\)\. Nothing was skipped/s,
      );
      assert.ok(readdirSync(join(sandbox, 'commit-log')).length > 0, 'the log is kept');
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    const again = await startHost(['--logLevel=info'], { sandbox });
    try {
      for (const [link, doc] of acked) assert.deepEqual((await http('GET', `${again.uri}${link}`)).json, doc, `${link} is exactly as acknowledged`);
      assert.equal((await http('GET', `${again.uri}/core/examples`)).json.documentCount, acked.size);
      assert.equal((await http('POST', `${again.uri}/core/examples`, { name: 'writes again' })).status, 200);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });
});

describe('the largest bodies and shutdown during an upload', () => {
  it('stores a document near the 64 MB body limit and keeps taking writes after it', async () => {
    const h = await startHost();
    try {
      const big = JSON.stringify({ name: 'big', counter: 1, documentSelfLink: 'big', pad: 'x'.repeat(60 * 1024 * 1024) });
      assert.equal((await http('POST', `${h.uri}/core/examples`, big)).status, 200);
      assert.equal((await http('PATCH', `${h.uri}/core/examples/big`, { counter: 2 })).status, 200);
      const small = await http('POST', `${h.uri}/core/examples`, { name: 'after', documentSelfLink: 'after' });
      assert.equal(small.status, 200, small.text.slice(0, 300));
      const listed = await http('GET', `${h.uri}/core/examples`);
      assert.deepEqual([...listed.json.documentLinks].sort(), ['/core/examples/after', '/core/examples/big']);
    } finally {
      await h.stop();
    }
  });

  it('answers 408 to a request whose body stalls past --requestTimeoutMicros, writing nothing, and serves on', async () => {
    const h = await startHost(['--requestTimeoutMicros=1000000']);
    try {
      const started = Date.now();
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = createConnection({ host: '127.0.0.1', port: h.port }, () => {
          socket.write('POST /core/examples HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"name": "stalled", "documentSelfLink": "stalled"');
        });
        let text = '';
        socket.setTimeout(15_000, () => socket.destroy()); // never answered: fails below, does not hang
        socket.on('data', (d) => (text += d));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      const waited = Date.now() - started;
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.equal(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).statusCode, 408);
      assert.ok(waited >= 900 && waited < 10_000, `answered after ${waited} ms`);
      assert.equal((await http('GET', `${h.uri}/core/examples/stalled`)).status, 404, 'nothing half-written');
      // A slow client within the limit is served.
      assert.equal(await postInTwoParts(h.port, JSON.stringify({ name: 'slow-but-in-time', documentSelfLink: 'in-time' }), 10, 300), 200);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('answers a request whose body is still uploading when SIGTERM arrives, then exits 0', async () => {
    const h = await startHost();
    const body = JSON.stringify({ name: 'slow', documentSelfLink: 'slow', pad: 'y'.repeat(200_000) });
    // The rest of the body arrives after the host was told to stop.
    const answered = postInTwoParts(h.port, body, 1000, 500);
    await new Promise((r) => setTimeout(r, 100));
    const stopped = h.stop();
    assert.equal(await answered, 200);
    assert.equal(await stopped, 0);
    const again = await startHost([], { sandbox: h.sandbox });
    try {
      assert.equal((await http('GET', `${again.uri}/core/examples/slow`)).json.name, 'slow');
    } finally {
      await again.stop();
    }
  });
});
