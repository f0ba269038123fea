import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { headerLines, parseRequest } from '../src/core/fast-http.js';
import { http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { prng } from './support/fuzz.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Reads HTTP responses off raw bytes: each by its content-length, its chunks, or (no length) to
 * the end of the connection. Returns those complete so far and whether the bytes end mid-response.
 */
function parseResponses(bytes: Buffer, closed: boolean): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const [statusLine, ...lines] = bytes.toString('latin1', pos, headEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const status = Number(statusLine!.split(' ')[1]);
    let at = headEnd + 4;
    let body: Buffer;
    if (headers['content-length'] !== undefined) {
      const end = at + Number(headers['content-length']);
      if (bytes.length < end) break;
      body = bytes.subarray(at, end);
      at = end;
    } else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      let done = false;
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', at);
        if (lineEnd < 0) break;
        const size = Number.parseInt(bytes.toString('latin1', at, lineEnd), 16);
        if (bytes.length < lineEnd + 2 + size + 2) break;
        parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
        if (size === 0) {
          done = true;
          break;
        }
      }
      if (!done) break;
      body = Buffer.concat(parts);
    } else if (status === 100) {
      body = Buffer.alloc(0);
    } else {
      if (!closed) break;
      body = bytes.subarray(at);
      at = bytes.length;
    }
    out.push({ status, headers, body: body.toString('utf8') });
    pos = at;
  }
  return out;
}

/** A raw client connection: writes bytes as given, collects what comes back. */
class RawClient {
  private readonly socket: Socket;
  private received: Buffer[] = [];
  closed = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = createConnection({ host: '127.0.0.1', port });
    this.ready = new Promise((resolve) => this.socket.once('connect', () => resolve()));
    this.socket.on('data', (d: Buffer) => this.received.push(d));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Sends the last bytes and half-closes (no more requests come). */
  end(text?: string): void {
    this.socket.end(text);
  }

  text(): string {
    return Buffer.concat(this.received).toString('latin1');
  }

  responses(): RawResponse[] {
    return parseResponses(Buffer.concat(this.received), this.closed);
  }

  async waitResponses(n: number, what: string): Promise<RawResponse[]> {
    return waitFor(async () => (this.responses().length >= n ? this.responses() : undefined), what, 10_000, 10);
  }

  async waitClosed(what: string, timeoutMs = 10_000): Promise<void> {
    await waitFor(async () => this.closed, what, timeoutMs, 10);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const post = (body: string, extra = '') => `POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The same behaviour whoever reads the requests: the fast path (handing over what it does not
// take), or node:http alone (--httpFastPath=false).
for (const fastPath of [true, false]) {
  describe(`HTTP with --httpFastPath=${fastPath}: pipelining, HTTP/1.0, streaming, what node:http reads`, () => {
    let h: RunningHost;
    before(async () => {
      h = await startHost(['--requestTimeoutMicros=2000000', `--httpFastPath=${fastPath}`]);
    });
    after(async () => {
      await h.stop();
    });

    it('answers pipelined requests in order on one connection, and closes it after the one that asks', async () => {
      const c = new RawClient(h.port);
      await c.ready;
      c.write(
        post('{"name":"piped","documentSelfLink":"piped","counter":3}') + get('/core/examples/piped') + get('/core/examples/nothing-here') + get('/core/examples?$count=true', 'Connection: close\r\n'),
      );
      const rs = await c.waitResponses(4, 'four responses');
      assert.deepEqual(
        rs.map((r) => r.status),
        [200, 200, 404, 200],
      );
      assert.equal(JSON.parse(rs[0]!.body).documentSelfLink, '/core/examples/piped');
      assert.equal(JSON.parse(rs[1]!.body).counter, 3);
      assert.equal(JSON.parse(rs[2]!.body).statusCode, 404);
      assert.ok(JSON.parse(rs[3]!.body).documentCount >= 1);
      assert.equal(rs[0]!.headers['connection'], 'keep-alive');
      assert.equal(rs[3]!.headers['connection'], 'close');
      await c.waitClosed('the connection closed after Connection: close');
    });

    it('answers 150 connections of pipelined requests cut at random bytes, each request in order (seeded)', async () => {
      const r = prng(fastPath ? 20261207 : 20261208);
      const int = (n: number) => Math.floor(r() * n);
      const failures: string[] = [];
      for (let round = 0; round < 15; round++) {
        const connections = Array.from({ length: 10 }, async (_, k) => {
          // 1–12 requests: POSTs (now and then one of 100–300 KB, which node:http reads), GETs of
          // a missing link, listings; the last may ask to close.
          const n = 1 + int(12);
          const reqs = Array.from({ length: n }, (_, i) => {
            const id = `cut-${fastPath}-${round}-${k}-${i}`;
            const close = i === n - 1 && r() < 0.3 ? 'Connection: close\r\n' : '';
            const kind = int(4);
            if (kind <= 1) {
              const pad = 'x'.repeat(r() < 0.1 ? 100_000 + int(200_000) : int(60));
              return { text: post(JSON.stringify({ name: id, documentSelfLink: id, pad }), close), status: 200, link: `/core/examples/${id}`, close };
            }
            if (kind === 2) return { text: get(`/core/examples/${id}-none`, close), status: 404, link: undefined, close };
            return { text: get('/core/examples?$top=1', close), status: 200, link: undefined, close };
          });
          const bytes = Buffer.from(reqs.map((q) => q.text).join(''));
          const cuts = [...new Set([0, ...Array.from({ length: int(4) }, () => int(bytes.length)), bytes.length])].sort((a, b) => a - b);
          const c = new RawClient(h.port);
          await c.ready;
          for (let i = 0; i + 1 < cuts.length; i++) {
            c.write(bytes.subarray(cuts[i], cuts[i + 1]));
            if (r() < 0.5) await sleep(int(3));
          }
          const rs = await c.waitResponses(n, `${n} responses on connection ${round}/${k}`);
          c.destroy();
          rs.forEach((res, i) => {
            const q = reqs[i]!;
            if (res.status !== q.status) failures.push(`${round}/${k} #${i}: ${res.status}, expected ${q.status}: ${res.body.slice(0, 120)}`);
            else if (q.link && JSON.parse(res.body).documentSelfLink !== q.link) failures.push(`${round}/${k} #${i}: answered for another request`);
          });
          if (rs.length !== n) failures.push(`${round}/${k}: ${rs.length} responses to ${n} requests`);
        });
        await Promise.all(connections);
      }
      assert.deepEqual(failures, []);
    });

    it('hands a request split over several writes to node:http, which answers it and the next ones', async () => {
      const c = new RawClient(h.port);
      await c.ready;
      const body = '{"name":"split","documentSelfLink":"split"}';
      const whole = post(body);
      c.write(whole.slice(0, 20));
      await sleep(50);
      c.write(whole.slice(20, whole.length - 5));
      await sleep(50);
      c.write(whole.slice(whole.length - 5));
      await c.waitResponses(1, 'the split POST answered');
      c.write(get('/core/examples/split', 'Connection: close\r\n'));
      const rs = await c.waitResponses(2, 'the GET after it answered');
      assert.deepEqual(
        rs.map((r) => r.status),
        [200, 200],
      );
      assert.equal(JSON.parse(rs[1]!.body).name, 'split');
      await c.waitClosed('closed after Connection: close');
    });

    it('serves HTTP/1.0: closes after a reply unless asked to keep the connection', async () => {
      const once = new RawClient(h.port);
      await once.ready;
      once.write('GET /core/examples?$count=true HTTP/1.0\r\n\r\n');
      await once.waitClosed('an HTTP/1.0 connection closed after its reply');
      const [r] = once.responses();
      assert.equal(r!.status, 200);
      assert.equal(r!.headers['connection'], 'close');

      const kept = new RawClient(h.port);
      await kept.ready;
      kept.write('GET /core/examples/nothing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      const [first] = await kept.waitResponses(1, 'first reply');
      assert.equal(first!.status, 404);
      assert.equal(first!.headers['connection'], 'keep-alive');
      assert.equal(kept.closed, false);
      // A streamed listing to an HTTP/1.0 client has no chunks: it ends with the connection.
      kept.write('GET /core/examples?expand HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
      await kept.waitClosed('closed after a streamed reply');
      const rs = kept.responses();
      assert.equal(rs.length, 2);
      assert.equal(rs[1]!.status, 200);
      assert.ok(Array.isArray(JSON.parse(rs[1]!.body).documentLinks));
    });

    it('streams a listing in chunks on a kept-alive HTTP/1.1 connection, then serves the next request', async () => {
      for (let i = 0; i < 30; i++) assert.equal((await http('POST', `${h.uri}/core/examples`, { name: `stream-${i}` })).status, 200);
      const c = new RawClient(h.port);
      await c.ready;
      c.write(get('/core/examples?expand') + get('/core/examples?$count=true'));
      const rs = await c.waitResponses(2, 'both replies');
      assert.equal(rs[0]!.headers['transfer-encoding'], 'chunked');
      const listing = JSON.parse(rs[0]!.body);
      assert.equal(listing.documentLinks.length, JSON.parse(rs[1]!.body).documentCount);
      assert.ok(listing.documentLinks.length >= 30);
      c.destroy();
    });

    it('leaves chunked bodies, Expect: 100-continue and half-closed clients to the right reader', async () => {
      const chunked = new RawClient(h.port);
      await chunked.ready;
      const body = '{"name":"chunked","documentSelfLink":"chunked"}';
      chunked.end(
        `POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      );
      await chunked.waitClosed('chunked POST answered');
      assert.equal(chunked.responses()[0]!.status, 200);
      assert.equal((await http('GET', `${h.uri}/core/examples/chunked`)).status, 200);

      const expect = new RawClient(h.port);
      await expect.ready;
      const b2 = '{"name":"expect","documentSelfLink":"expect"}';
      expect.write(`POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${b2.length}\r\n\r\n`);
      const [cont] = await expect.waitResponses(1, '100 Continue');
      assert.equal(cont!.status, 100);
      expect.end(b2);
      const rs = await expect.waitResponses(2, 'the POST answered after 100 Continue');
      assert.equal(rs[1]!.status, 200);
      assert.equal(JSON.parse(rs[1]!.body).name, 'expect');

      // A client that sends its request and half-closes still gets the reply; then the connection ends.
      const half = new RawClient(h.port);
      await half.ready;
      half.end(post('{"name":"half","documentSelfLink":"half"}'));
      await half.waitClosed('closed once answered');
      assert.equal(half.responses()[0]!.status, 200);
    });

    it('answers malformed and ambiguous requests with 400 ServiceErrorResponses, and keeps serving', async () => {
      const bad = [
        'POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}',
        'POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        'GET /core/examples HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n',
        'GET /core/examples HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n',
        'GET /core/examples HTTP/1.1\r\n\r\n',
        'GET /core/exa mples HTTP/1.1\r\nHost: x\r\n\r\n',
        'POST /core/examples HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      ];
      for (const request of bad) {
        const c = new RawClient(h.port);
        await c.ready;
        c.write(request);
        await c.waitClosed(`closed after ${JSON.stringify(request)}`);
        const [r] = c.responses();
        assert.equal(r?.status, 400, JSON.stringify(request));
        assert.equal(JSON.parse(r!.body).statusCode, 400);
      }
      const unsupported = new RawClient(h.port);
      await unsupported.ready;
      unsupported.write('HEAD /core/examples HTTP/1.1\r\nHost: x\r\n\r\n');
      await unsupported.waitClosed('HEAD refused');
      assert.match(unsupported.text(), /^HTTP\/1\.1 400 /); // a reply to HEAD has no body

      assert.equal((await http('GET', `${h.uri}/core/examples/piped`)).status, 200);
    });

    it('writes replies with headers of their own (a redirect) as node:http did', async () => {
      const c = new RawClient(h.port);
      await c.ready;
      c.write(get('/core/examples/ui', 'Connection: close\r\n'));
      await c.waitClosed('the redirect answered');
      const [r] = c.responses();
      assert.equal(r!.status, 302);
      assert.equal(r!.headers['location'], '/core/ui/default/#/core/examples/home');
    });

    it('closes a connection that sends nothing within the headers timeout', async () => {
      const c = new RawClient(h.port);
      await c.ready;
      // --requestTimeoutMicros=2000000 bounds the headers timeout to 2 s.
      await c.waitClosed('an idle new connection closed', 8_000);
    });
  });
}

describe('HTTP: stopping a host with kept-alive connections', () => {
  it('closes idle kept-alive connections at SIGTERM and exits 0 at once', async () => {
    const h = await startHost();
    const c = new RawClient(h.port);
    await c.ready;
    c.write(get('/core/examples'));
    await c.waitResponses(1, 'a kept-alive reply');
    assert.equal(c.closed, false);
    const t0 = Date.now();
    assert.equal(await h.stop(), 0);
    assert.ok(Date.now() - t0 < 5_000, `stopped in ${Date.now() - t0} ms`);
    await c.waitClosed('the idle connection closed');
  });
});

describe('HTTP fast path: the requests it reads', () => {
  const parse = (text: string) => parseRequest(Buffer.from(text, 'latin1'), 1_000_000);

  it('reads a plain request: method, target, headers (names lowercase, values trimmed of spaces and tabs only)', () => {
    const r = parse('PATCH /core/examples/a?x=1 HTTP/1.1\r\nHost: h\r\nX-Value:\t a\xa0b \t\r\nContent-Length: 2\r\n\r\n{}GET');
    assert.ok(r);
    assert.equal(r.method, 'PATCH');
    assert.equal(r.url, '/core/examples/a?x=1');
    assert.equal(r.headers['x-value'], 'a\xa0b');
    assert.equal(r.keepAlive, true);
    assert.equal(r.end - r.bodyStart, 2);
    assert.equal(r.end, Buffer.byteLength('PATCH /core/examples/a?x=1 HTTP/1.1\r\nHost: h\r\nX-Value:\t a\xa0b \t\r\nContent-Length: 2\r\n\r\n{}', 'latin1'));
    assert.equal(parse('GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Close\r\n\r\n')?.keepAlive, false);
    assert.equal(parse('GET / HTTP/1.0\r\n\r\n')?.keepAlive, false);
    assert.equal(parse('GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n')?.keepAlive, true);
  });

  it('writes reply headers as lines, and refuses a name or value that would split the reply', () => {
    assert.equal(headerLines({ 'content-type': 'application/json', 'content-length': 12 }), 'content-type: application/json\r\ncontent-length: 12\r\n');
    assert.throws(() => headerLines({ location: '/a\r\nset-cookie: x' }), /Invalid character in header content \["location"\]/);
    assert.throws(() => headerLines({ 'x-a\r\nb': 'v' }), /Invalid character/);
    assert.throws(() => headerLines({ 'x-a': 'v\n' }), /Invalid character/);
  });

  it('leaves to node:http whatever is incomplete, unusual or ambiguous', () => {
    const forNode = [
      'GET / HTTP/1.1\r\nHost: h\r\n', // head not complete
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n{}', // body not complete
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}',
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\n X: folded\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: h\r\nX: a\nb\r\n\r\n',
      'GET / HTTP/1.1\r\n\r\n', // no Host
      'HEAD / HTTP/1.1\r\nHost: h\r\n\r\n',
      'GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n',
      'GET /a b HTTP/1.1\r\nHost: h\r\n\r\n',
      'GET / HTTP/2.0\r\nHost: h\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +2\r\n\r\n{}',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n',
      'GET / HTTP/1.1\r\n__proto__: x\r\nHost: h\r\n\r\n',
      `GET / HTTP/1.1\r\nHost: h\r\nX: ${'a'.repeat(17_000)}\r\n\r\n`,
    ];
    for (const text of forNode) assert.equal(parse(text), undefined, JSON.stringify(text.slice(0, 80)));
  });
});
