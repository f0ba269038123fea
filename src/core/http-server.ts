import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { kryptonError, toServiceErrorResponse } from './errors.js';
import { drained, FastConnections, type FastRequest, type ReplySink } from './fast-http.js';
import { ACTIONS, JsonStream, Operation, RawJson, type Action, type Reply } from './operation.js';

export type Dispatcher = (op: Operation) => Promise<Reply>;

export interface HttpServerOptions {
  requestPayloadSizeLimit: number;
  /** A request whose headers and body have not all arrived this long after it began is answered 408 and its connection closed. */
  requestTimeoutMs: number;
  /** Request bodies held at once, over all requests (see BodyBudget). */
  bodyBudget: BodyBudget;
  onError: (err: unknown, op: Operation | undefined) => void;
  /** Called when a request arrives (its body may still be uploading); the result when its response is done or cut. */
  track?: () => () => void;
  /** false: node:http reads every request (see fast-http.ts). Default true. */
  fastPath?: boolean;
}

/**
 * The HTTP server: request → Operation → dispatcher → Reply → response, Xenon's header rules. Plain
 * requests are read by the fast path (fast-http.ts); node:http reads the rest, and every connection
 * the fast path hands over. The result is node:http's Server (it listens and counts connections);
 * its closeIdleConnections and closeAllConnections close the fast path's connections too.
 */
export function createHttpServer(dispatch: Dispatcher, options: HttpServerOptions): Server {
  // Idle keep-alive connections close after 60 s; a request must bring its headers within 65 s (and
  // within the request timeout), and all of its body within the request timeout. Node checks these
  // deadlines every connectionsCheckingInterval, here a tenth of the request timeout (at most 30 s).
  const requestTimeout = options.requestTimeoutMs;
  const keepAliveTimeout = 60_000;
  const headersTimeout = Math.min(65_000, requestTimeout);
  const connectionsCheckingInterval = Math.min(30_000, Math.max(50, Math.floor(requestTimeout / 10)));
  // An HTTP/1.1 request without a Host header is refused in receive, with a ServiceErrorResponse
  // (node:http's own refusal has no body).
  const server = createServer({ keepAliveTimeout, headersTimeout, requestTimeout, connectionsCheckingInterval, requireHostHeader: false }, (req, res) => {
    res.sendDate = false; // Xenon's responses carry no date (spec §1.3)
    const done = options.track?.();
    if (done) res.on('close', done); // emitted once
    receive(req, res, dispatch, options);
  });
  // Bytes that are not HTTP never reach a handler: answer them with a ServiceErrorResponse too.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const body = toServiceErrorResponse(kryptonError(timedOut ? 'TIMEOUT' : 'BAD_REQUEST', `malformed HTTP request (${err.code ?? err.message})`));
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${body.statusCode} ${timedOut ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  });
  if (options.fastPath !== false) installFastPath(server, dispatch, options, { keepAliveTimeout, headersTimeout, connectionsCheckingInterval });
  return server;
}

/**
 * Puts the fast path in front of node:http's connection listener: node:http gets a connection only
 * when the fast path hands it over. If node:http's listener is not where expected (another Node.js
 * release), the server stays node:http alone.
 */
function installFastPath(server: Server, dispatch: Dispatcher, options: HttpServerOptions, timeouts: { keepAliveTimeout: number; headersTimeout: number; connectionsCheckingInterval: number }): void {
  const listeners = server.listeners('connection');
  if (listeners.length !== 1) return;
  const nodeConnection = listeners[0] as (socket: Socket) => void;
  const fast = new FastConnections({
    requestPayloadSizeLimit: options.requestPayloadSizeLimit,
    headersTimeoutMs: timeouts.headersTimeout,
    keepAliveTimeoutMs: timeouts.keepAliveTimeout,
    checkIntervalMs: timeouts.connectionsCheckingInterval,
    track: options.track,
    serve: (request, sink, body) => {
      let bodyText: string | undefined;
      if (body !== undefined) {
        try {
          bodyText = decodeBody(body, request.headers, options.requestPayloadSizeLimit);
        } catch (err) {
          deliver(sink, request.headers, errorReply(err));
          return;
        }
      }
      serve(request, sink, dispatch, options, bodyText);
    },
    handOff: (socket) => nodeConnection.call(server, socket),
  });
  server.removeListener('connection', nodeConnection);
  server.on('connection', (socket: Socket) => fast.accept(socket));
  const closeIdle = server.closeIdleConnections.bind(server);
  const closeAll = server.closeAllConnections.bind(server);
  server.closeIdleConnections = () => {
    fast.closeIdle();
    closeIdle();
  };
  server.closeAllConnections = () => {
    fast.closeAll();
    closeAll();
  };
  server.on('close', () => fast.stop());
}

/**
 * Bodies up to this size are neither counted nor refused: the request path of ordinary documents
 * (a few hundred bytes) pays nothing for the budget, and many small bodies at once stay bounded by
 * the number of connections, as before.
 */
const SMALL_BODY_BYTES = 1024 * 1024;

/**
 * The large request bodies (over 1 MB) a host holds in memory at once: a body is held several
 * times over while it is parsed, handled and stored (its text, the parsed document, the stored
 * text, the commit-log record), until its response is sent. A large body that does not fit beside
 * the large ones already held is refused with 503 at once, unless it would be alone: measured,
 * 24 POSTs of 50 MB at once ran the process out of memory (10 took 3.2 GB of RSS). A body is
 * counted by its Content-Length from its first byte, or as it arrives when it has none.
 */
export class BodyBudget {
  private held = 0;
  constructor(readonly limitBytes: number) {}

  /** Takes `more` bytes for a large body holding `mine` already, or refuses (false) and takes nothing. */
  take(more: number, mine: number): boolean {
    const others = this.held - mine;
    if (others > 0 && others + mine + more > this.limitBytes) return false;
    this.held += more;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}

function tooBusy(budget: BodyBudget): Error {
  return kryptonError('UNAVAILABLE', `too many large request bodies at once (at most ${Math.round(budget.limitBytes / (1024 * 1024))} MB are held together); retry later`);
}

/**
 * Reads a request's body, then handles it (see serve). Callbacks, not a promise per body: this
 * runs for every request node:http reads, and the body usually arrives in one chunk.
 */
function receive(req: IncomingMessage, res: ServerResponse, dispatch: Dispatcher, options: HttpServerOptions): void {
  const sink = nodeSink(res);
  const method = req.method as Action;
  if (!ACTIONS.includes(method)) {
    req.resume();
    refuse(req, res, kryptonError('BAD_REQUEST', `Unsupported method: ${req.method}`));
    return;
  }
  if (req.httpVersion === '1.1' && req.headers.host === undefined) {
    req.resume();
    refuse(req, res, kryptonError('BAD_REQUEST', 'an HTTP/1.1 request must carry a Host header'));
    return;
  }
  const limit = options.requestPayloadSizeLimit;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    refuse(req, res, kryptonError('PAYLOAD_TOO_LARGE', `Content-Length ${declared} is greater than max size allowed ${limit}`));
    return;
  }
  const budget = options.bodyBudget;
  let held = 0;
  if (declared > SMALL_BODY_BYTES) {
    if (!budget.take(declared, 0)) {
      // Answered at once, but the body (at most the size limit) is read and dropped, so the client
      // gets the answer, not a connection reset in the middle of its upload; the connection stays.
      req.resume();
      deliver(sink, req.headers, errorReply(tooBusy(budget)));
      return;
    }
    held = declared;
  }
  // Given back once the response is sent (or the connection is gone): the body is held until then.
  const giveBack = () => budget.give(held);
  if (held > 0) res.on('close', giveBack);
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  let size = 0;
  let failed = false;
  req.on('data', (c: Buffer) => {
    if (failed) return;
    size += c.length;
    if (size > limit) {
      failed = true;
      refuse(req, res, kryptonError('PAYLOAD_TOO_LARGE', `request body is greater than max size allowed ${limit}`));
      return;
    }
    // No Content-Length (chunked), or more than it said: counted as it comes.
    if (size > held && size > SMALL_BODY_BYTES) {
      if (!budget.take(size - held, held)) {
        failed = true; // the rest is read and dropped, as above
        deliver(sink, req.headers, errorReply(tooBusy(budget)));
        return;
      }
      if (held === 0) res.on('close', giveBack);
      held = size;
    }
    if (first === undefined) first = c;
    else if (more === undefined) more = [first, c];
    else more.push(c);
  });
  // A body cut short (the client left): 'end' never comes and nobody is left to answer. No 'error'
  // listener: node:http emits a request's errors only to listeners, and there is nothing to do.
  req.on('end', () => {
    if (failed) return;
    let bodyText: string | undefined;
    if (first !== undefined && size > 0) {
      try {
        bodyText = decodeBody(more ? Buffer.concat(more, size) : first, req.headers, limit);
      } catch (err) {
        refuse(req, res, err);
        return;
      }
    }
    serve({ method, url: req.url ?? '/', headers: req.headers, socket: req.socket }, sink, dispatch, options, bodyText);
  });
}

/** A body's text: its bytes as UTF-8, after gunzip for `content-encoding: gzip` (400 if that fails). */
function decodeBody(buf: Buffer, headers: IncomingHttpHeaders, limit: number): string {
  if (headers['content-encoding'] === 'gzip') {
    try {
      buf = gunzipSync(buf, { maxOutputLength: limit });
    } catch (cause) {
      throw kryptonError('BAD_REQUEST', 'invalid gzip request body', { cause });
    }
  }
  return buf.toString('utf8');
}

/** Answers a request that cannot be read (its connection is closed after the answer). */
function refuse(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (res.headersSent) return;
  res.setHeader('connection', 'close');
  deliver(nodeSink(res), req.headers, errorReply(err));
}

/** node:http's response as a ReplySink. */
function nodeSink(res: ServerResponse): ReplySink {
  return {
    get headersSent() {
      return res.headersSent;
    },
    send(status, headers, payload) {
      // Headers set earlier on `res` (e.g. connection: close) are merged by writeHead.
      res.writeHead(status, headers);
      res.end(payload);
    },
    sendStream: (reply, body) => writeStream(res, reply, body),
    abort: () => res.destroy(),
  };
}

/** Handles a request whose body is read, whichever path read it; answers on `sink` whatever happens. */
function serve(request: FastRequest, sink: ReplySink, dispatch: Dispatcher, options: HttpServerOptions, bodyText: string | undefined): void {
  handle(request, sink, dispatch, options, bodyText).catch((err) => {
    options.onError(err, undefined);
    if (!sink.headersSent) deliver(sink, request.headers, errorReply(err));
    else sink.abort();
  });
}

async function handle(request: FastRequest, sink: ReplySink, dispatch: Dispatcher, options: HttpServerOptions, bodyText: string | undefined): Promise<void> {
  const url = request.url;
  const q = url.indexOf('?');
  let path = q < 0 ? url : url.slice(0, q);
  try {
    path = decodeURIComponent(path);
  } catch {
    /* keep the raw path: it will 404 */
  }
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  // Socket addresses cost a syscall each: read them only when a message or a check needs them.
  const socket = request.socket;
  const headers = request.headers;
  const op = new Operation({
    action: request.method,
    path,
    rawQuery,
    headers,
    bodyText,
    contentType: headers['content-type'],
    uri: () => `http://127.0.0.1:${socket.localPort ?? 0}${path}${rawQuery ? `?${safeDecode(rawQuery)}` : ''}`,
    remoteAddress: () => socket.remoteAddress,
    clientGone: () => socket.destroyed,
  });
  let reply: Reply;
  try {
    reply = await dispatch(op);
  } catch (err) {
    options.onError(err, op);
    reply = errorReply(err);
  }
  // A plain reply is written at once; only a stream is awaited (one await and promise less a request).
  if (reply.body instanceof JsonStream) await sink.sendStream(reply, reply.body);
  else deliver(sink, headers, reply);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function errorReply(err: unknown): Reply {
  const body = toServiceErrorResponse(err);
  return { status: body.statusCode, body };
}

function serialize(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (body instanceof RawJson) return body.text;
  if (typeof body === 'string') return body;
  return JSON.stringify(body);
}

function wantsGzip(headers: IncomingHttpHeaders): boolean {
  const ae = headers['accept-encoding'];
  return typeof ae === 'string' && ae.split(',').some((e) => e.split(';')[0]!.trim() === 'gzip');
}

/** Writes a whole reply: JSON text, gzipped over 4 KB for a client that accepts it, with its length. */
function deliver(sink: ReplySink, requestHeaders: IncomingHttpHeaders, reply: Reply): void {
  let payload: string | Buffer = serialize(reply.body);
  const headers: Record<string, string | number> = { 'content-type': 'application/json' };
  if (reply.headers) Object.assign(headers, reply.headers);
  if (payload.length > 4096 && wantsGzip(requestHeaders)) {
    payload = gzipSync(payload);
    headers['content-encoding'] = 'gzip';
  }
  headers['content-length'] = Buffer.byteLength(payload);
  sink.send(reply.status, headers, payload);
}

async function writeStream(res: ServerResponse, reply: Reply, body: JsonStream): Promise<void> {
  res.statusCode = reply.status;
  res.setHeader('content-type', 'application/json');
  if (reply.headers) for (const [k, v] of Object.entries(reply.headers)) res.setHeader(k, v);
  for await (const chunk of body.chunks) {
    if (res.destroyed) return;
    // A fast reader takes every chunk at once, so nothing here would ever wait for I/O: let other
    // requests in between chunks (each is a batch of rows) instead of serving this one to its end.
    if (!res.write(chunk)) await drained(res);
    else await setImmediatePromise();
  }
  res.end();
}
