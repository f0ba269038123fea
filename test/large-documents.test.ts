import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { http, startHost, waitFor } from './support/hosts.js';
import { migrationTask } from './support/data.js';

/** POSTs `body` (already JSON) with a Content-Length; resolves with the status and the answer. */
function postRaw(port: number, path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('large documents', () => {
  it('pages of large documents end at 32 MB of text, and a migration of them with the default page size completes', async () => {
    const blue = await startHost();
    const green = await startHost();
    const N = 100;
    const big = (i: number) => `${String(i).padStart(6, '0')}${'z'.repeat(1_500_000)}`;
    try {
      for (let i = 0; i < N; i += 10) {
        const documents = Array.from({ length: 10 }, (_, k) => ({ name: `big-${i + k}`, documentSelfLink: `/big-${i + k}`, keyValues: { big: big(i + k) } }));
        const r = await http('POST', `${blue.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents });
        assert.equal(r.status, 200, r.text);
      }
      // A page asked for 100 expanded documents of 1.5 MB holds about 32 MB of them, then links on.
      const task = await http('POST', `${blue.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: {
          query: { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } },
          options: ['EXPAND_CONTENT'],
          resultLimit: N,
        },
      });
      const seen = new Set<string>();
      let pages = 0;
      for (let next: string | undefined = task.json.results.nextPageLink; next; pages++) {
        const page = await http('GET', `${blue.uri}${next}`);
        assert.equal(page.status, 200);
        const links = page.json.results.documentLinks as string[];
        assert.ok(links.length >= 1 && links.length <= 23, `a page of ${links.length} documents of 1.5 MB`);
        for (const l of links) {
          assert.equal((page.json.results.documents[l] as { keyValues: { big: string } }).keyValues.big.length, 1_500_006);
          seen.add(l);
        }
        next = page.json.results.nextPageLink;
      }
      assert.equal(seen.size, N, 'every document once');
      assert.ok(pages >= 5, `${pages} pages`);
      // A page of more than 5,000 rows is streamed: it ends at 32 MB all the same (its later batches
      // are read in smaller pieces, but the page is not cut shorter by them).
      const streamedPages = await http('POST', `${blue.uri}/core/query-tasks`, {
        taskInfo: { isDirect: true },
        querySpec: { query: { term: { propertyName: 'name', matchValue: 'big-*', matchType: 'WILDCARD' } }, options: ['EXPAND_CONTENT'], resultLimit: 6000 },
      });
      const firstStreamed = await http('GET', `${blue.uri}${streamedPages.json.results.nextPageLink}`);
      assert.equal(firstStreamed.headers.get('transfer-encoding'), 'chunked', 'streamed');
      const held = firstStreamed.json.results.documentLinks.length;
      assert.ok(held >= 21 && held <= 23, `a streamed page of ${held} documents of 1.5 MB`);
      assert.equal(Object.keys(firstStreamed.json.results.documents).length, held);
      assert.ok(firstStreamed.json.results.nextPageLink, 'the next page goes on after it');
      // Answers that no next page completes hold every document, however large (50 MB here).
      const kinds = (prefixes: string[]) => ({
        occurance: 'MUST_OCCUR',
        booleanClauses: prefixes.map((p) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'name', matchValue: p, matchType: 'PREFIX' } })),
      });
      const direct = await http('POST', `${blue.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { query: kinds(['big-1', 'big-2', 'big-3']), options: ['EXPAND_CONTENT'] } });
      assert.equal(direct.json.results.documentLinks.length, 33);
      assert.equal(Object.keys(direct.json.results.documents).length, 33);
      // TOP_RESULTS and `$top` of 30 (45 MB): streamed once their first 32 MB are read, not built as
      // one string (which fails beyond V8's 512 MB string limit: a 500 before).
      const topSpec = { query: kinds(['big-']), options: ['EXPAND_CONTENT', 'TOP_RESULTS'], resultLimit: 30 };
      const top = await http('POST', `${blue.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: topSpec });
      assert.equal(top.status, 200);
      assert.equal(top.headers.get('transfer-encoding'), 'chunked', 'streamed');
      assert.equal(top.json.taskInfo.stage, 'FINISHED');
      assert.equal(top.json.results.documentLinks.length, 30);
      assert.equal(top.json.results.documentCount, 30);
      for (const l of top.json.results.documentLinks) assert.equal(top.json.results.documents[l].keyValues.big.length, 1_500_006, l);
      const odata = await http('GET', `${blue.uri}/core/examples?$top=30&$expand`);
      assert.equal(odata.headers.get('transfer-encoding'), 'chunked', 'streamed');
      assert.equal(odata.json.documentLinks.length, 30);
      assert.equal(Object.keys(odata.json.documents).length, 30);
      assert.deepEqual(Object.keys(odata.json.documents), odata.json.documentLinks);
      // An asynchronous TOP_RESULTS task keeps such results in a file, and answers them whole.
      const asyncTop = await http('POST', `${blue.uri}/core/query-tasks`, { querySpec: topSpec });
      assert.equal(asyncTop.status, 202);
      const finished = await waitFor(async () => {
        const t = await http('GET', `${blue.uri}${asyncTop.json.documentSelfLink}`);
        return t.json.taskInfo.stage !== 'CREATED' && t.json.taskInfo.stage !== 'STARTED' && t;
      }, 'the TOP_RESULTS task to finish');
      assert.equal(finished.json.taskInfo.stage, 'FINISHED', JSON.stringify(finished.json.taskInfo));
      assert.deepEqual(finished.json.results.documentLinks, top.json.results.documentLinks);
      assert.equal(Object.keys(finished.json.results.documents).length, 30);
      // Below 32 MB they are answered whole, as any small answer.
      const small = await http('POST', `${blue.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: { ...topSpec, resultLimit: 5 } });
      assert.ok(small.headers.get('content-length'), 'answered whole');
      assert.deepEqual(small.json.results.documentLinks, top.json.results.documentLinks.slice(0, 5));
      const smallOdata = await http('GET', `${blue.uri}/core/examples?$top=5&$expand`);
      assert.ok(smallOdata.headers.get('content-length'), 'answered whole');
      assert.deepEqual(smallOdata.json.documentLinks, odata.json.documentLinks.slice(0, 5));

      // The migration reads pages of 10,000 documents by default: cut by size, it goes through.
      const posted = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green));
      assert.equal(posted.status, 200, posted.text);
      const done = await waitFor(
        async () => {
          const t = await http('GET', `${green.uri}${posted.json.documentSelfLink}`);
          return ['FINISHED', 'FAILED'].includes(t.json.taskInfo.stage) && t.json;
        },
        'the migration to end',
        120_000,
        200,
      );
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      assert.equal(done.progress.processedServiceCount, N);
      const copy = await http('GET', `${green.uri}/core/examples/big-57`);
      assert.equal(copy.json.keyValues.big, big(57));
      assert.equal((await http('GET', `${green.uri}/core/examples`)).json.documentCount, N);
    } finally {
      assert.equal(await blue.stop(), 0);
      assert.equal(await green.stop(), 0);
    }
  });

  it('streams large documents to many readers at once within a small heap', async () => {
    // 6 expanded listings of 150 documents of 1 MB at once on a 384 MB heap: each answer held whole
    // batches of 32 MB two or three times over, and the host ran out of memory (a FATAL error).
    const h = await startHost([], { env: { NODE_OPTIONS: '--max-old-space-size=384' } });
    const N = 150;
    const big = 'y'.repeat(1024 * 1024);
    try {
      for (let i = 0; i < N; i += 10) {
        const documents = Array.from({ length: 10 }, (_, k) => ({ name: `m-${i + k}`, documentSelfLink: `/m-${i + k}`, keyValues: { big } }));
        const r = await http('POST', `${h.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents });
        assert.equal(r.status, 200, r.text);
      }
      /** Reads a whole answer without holding it: its status, size and last characters. */
      const read = async () => {
        const res = await fetch(`${h.uri}/core/examples?expand`);
        let bytes = 0;
        let tail = '';
        for await (const chunk of res.body!) {
          bytes += chunk.length;
          tail = (tail + Buffer.from(chunk).toString('latin1')).slice(-300);
        }
        return { status: res.status, bytes, tail };
      };
      const answers = await Promise.all(Array.from({ length: 6 }, read));
      for (const a of answers) {
        assert.equal(a.status, 200);
        assert.ok(a.bytes > N * big.length, `${a.bytes} bytes`);
        assert.match(a.tail, new RegExp(`"documentCount":${N}\\b`));
      }
      assert.equal((await http('GET', `${h.uri}/core/examples`)).json.documentCount, N, 'the host serves on');
    } finally {
      assert.equal(await h.stop(), 0, h.output());
    }
  });

  it('refuses large bodies beyond its memory budget with 503 at once, and serves on', async () => {
    // A small heap (256 MB: a budget of max(body limit, heap / 10) = 25.6 MB) and a 16 MB body limit.
    const h = await startHost(['--requestPayloadSizeLimit=16777216'], { env: { NODE_OPTIONS: '--max-old-space-size=256' } });
    try {
      const body = (i: number) => JSON.stringify({ name: `large-${i}`, documentSelfLink: `large-${i}`, keyValues: { big: 'q'.repeat(10_000_000) } });
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => postRaw(h.port, '/core/examples', body(i))));
      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.includes(200) && statuses.includes(503), `statuses ${statuses}`);
      for (const [i, a] of answers.entries()) {
        if (a.status === 503) {
          assert.equal(a.json['documentKind'], 'com:vmware:xenon:common:ServiceErrorResponse');
          assert.match(String(a.json['message']), /too many large request bodies at once.*retry later/);
          assert.equal((await http('GET', `${h.uri}/core/examples/large-${i}`)).status, 404, 'a refused body wrote nothing');
        } else assert.equal(a.status, 200);
      }
      // Alone, the same body is taken; small requests never wait for the budget.
      assert.equal((await postRaw(h.port, '/core/examples', body(9))).status, 200);
      assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'small' })).status, 200);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });
});
