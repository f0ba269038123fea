import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { setImmediate as setImmediatePromise } from 'node:timers/promises';
import type { Action, JsonStream, Reply } from './operation.js';

/**
 * The fast path of the HTTP server: a request that is plain, well formed and wholly arrived (its
 * head and its Content-Length body in the bytes at hand) is read here, and its reply written as one
 * string, without node:http's request and response streams. Measured under the seeds' `ab -c 5`
 * POST load, node:http costs a bare server about 60-70 µs of CPU a request; a connection read this
 * way, 40-58.
 *
 * Anything else goes to node:http, with the bytes not yet read, for the rest of its connection:
 * a request split over several reads (a large body, a slow client), chunked bodies, `Expect`,
 * `Upgrade`, repeated or malformed header lines, heads over 16 KB, bodies over 1 MB, any target
 * that is not a plain path. node:http's parser then answers them as it always did (its limits,
 * timeouts and 4xx), so the fast path never has to refuse a request: it only takes what it reads
 * exactly as node:http would.
 */

/** A request read by the fast path, as handle() needs it. */
export interface FastRequest {
  method: Action;
  url: string;
  headers: IncomingHttpHeaders;
  socket: Socket;
}

/** Where a request's reply goes: a fast connection, or node:http's ServerResponse (see http-server.ts). */
export interface ReplySink {
  readonly headersSent: boolean;
  /** Writes a whole reply: its status line, `headers` (content-length among them) and payload. */
  send(status: number, headers: Record<string, string | number>, payload: string | Buffer): void;
  /** Writes a reply whose body is streamed (no content-length). */
  sendStream(reply: Reply, body: JsonStream): Promise<void>;
  /** Cuts the connection: the reply cannot be completed. */
  abort(): void;
}

export interface FastPathOptions {
  /** Bodies over this size go to node:http, which refuses them (413). */
  requestPayloadSizeLimit: number;
  /** A connection that sent nothing this long after it opened is closed (node:http: headersTimeout). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (node:http: keepAliveTimeout). */
  keepAliveTimeoutMs: number;
  /** How often idle connections are looked for. */
  checkIntervalMs: number;
  track?: (() => () => void) | undefined;
  /** Handles a request read by the fast path (the reply goes to `sink`); `body`: its bytes, if any. */
  serve(request: FastRequest, sink: ReplySink, body: Buffer | undefined): void;
  /** Hands a connection to node:http, with its unread bytes already put back. */
  handOff(socket: Socket): void;
}

/** The head of a request and the head's heaviest limit, as node:http's default maxHeaderSize. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Bodies up to this size may be read here (see SMALL_BODY_BYTES in http-server.ts: no body budget). */
const MAX_FAST_BODY_BYTES = 1024 * 1024;
/** Bytes of pipelined requests held while one is being answered; above it the socket is paused. */
const MAX_PIPELINED_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const REQUEST_LINE = /^(GET|POST|PUT|PATCH|DELETE|OPTIONS) (\/[\x21-\x7e]*) HTTP\/1\.([01])$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Characters node:http refuses in a header value (and in the values it writes). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const DIGITS = /^\d{1,15}$/;

interface ParsedRequest {
  method: Action;
  url: string;
  headers: IncomingHttpHeaders;
  http10: boolean;
  keepAlive: boolean;
  bodyStart: number;
  end: number;
}

/**
 * Reads the request at the start of `buf` if the fast path takes it (see the top of this file);
 * undefined otherwise: not all there yet, or for node:http.
 */
export function parseRequest(buf: Buffer, payloadLimit: number): ParsedRequest | undefined {
  const headEnd = buf.indexOf(HEAD_END);
  if (headEnd < 0 || headEnd > MAX_HEAD_BYTES) return undefined;
  const head = buf.toString('latin1', 0, headEnd);
  let lineEnd = head.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = head.length;
  const line = REQUEST_LINE.exec(head.slice(0, lineEnd));
  if (line === null) return undefined;
  const headers: IncomingHttpHeaders = {};
  for (let pos = lineEnd + 2; pos < head.length; ) {
    let end = head.indexOf('\r\n', pos);
    if (end < 0) end = head.length;
    const colon = head.indexOf(':', pos);
    if (colon <= pos || colon > end) return undefined;
    const name = head.slice(pos, colon);
    if (!TOKEN.test(name)) return undefined;
    // Optional whitespace (spaces and tabs only, as node:http's parser) around the value.
    let from = colon + 1;
    let to = end;
    while (from < to && (head.charCodeAt(from) === 32 || head.charCodeAt(from) === 9)) from++;
    while (to > from && (head.charCodeAt(to - 1) === 32 || head.charCodeAt(to - 1) === 9)) to--;
    const value = head.slice(from, to);
    if (INVALID_VALUE.test(value)) return undefined;
    const key = name.toLowerCase();
    // A repeated header is joined or dropped by rules node:http knows: it reads those.
    if (key === '__proto__' || headers[key] !== undefined) return undefined;
    headers[key] = value;
    pos = end + 2;
  }
  if (headers['transfer-encoding'] !== undefined || headers['expect'] !== undefined || headers['upgrade'] !== undefined) return undefined;
  const http10 = line[3] === '0';
  if (!http10 && headers.host === undefined) return undefined; // node:http answers 400
  let length = 0;
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!DIGITS.test(declared)) return undefined;
    length = Number(declared);
    if (length > MAX_FAST_BODY_BYTES || length > payloadLimit) return undefined;
  }
  const bodyStart = headEnd + 4;
  if (buf.length < bodyStart + length) return undefined;
  const connection = headers.connection;
  const keepAlive = http10 ? connection !== undefined && hasToken(connection, 'keep-alive') : connection === undefined || !hasToken(connection, 'close');
  return { method: line[1] as Action, url: line[2]!, headers, http10, keepAlive, bodyStart, end: bodyStart + length };
}

function hasToken(list: string, token: string): boolean {
  for (const t of list.toLowerCase().split(',')) if (t.trim() === token) return true;
  return false;
}

/** The connections the fast path reads; the rest belong to node:http. */
export class FastConnections {
  private readonly open = new Set<FastConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Set by closeIdle (the server is closing): replies end their connection. */
  closing = false;

  constructor(readonly options: FastPathOptions) {}

  accept(socket: Socket): void {
    const c = new FastConnection(socket, this);
    this.open.add(c);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), this.options.checkIntervalMs);
      this.sweeper.unref();
    }
  }

  forget(c: FastConnection): void {
    this.open.delete(c);
  }

  /** Closes the connections between requests, and every other once its reply is written. */
  closeIdle(): void {
    this.closing = true;
    for (const c of this.open) if (c.idle) c.socket.destroy();
  }

  closeAll(): void {
    this.closing = true;
    for (const c of this.open) c.socket.destroy();
    this.stop();
  }

  stop(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** Closes the connections idle for too long: never used, or kept alive after a reply. */
  private sweep(): void {
    const now = Date.now();
    const { headersTimeoutMs, keepAliveTimeoutMs } = this.options;
    for (const c of this.open) {
      if (!c.idle) continue;
      if (now - c.idleSince >= (c.served === 0 ? headersTimeoutMs : keepAliveTimeoutMs)) c.socket.destroy();
    }
  }
}

function ignoreError(): void {
  // A reset or broken connection: 'close' follows and cleans up.
}

/** One connection read by the fast path: its requests one at a time, in order (pipelined ones wait). */
class FastConnection implements ReplySink {
  private buf: Buffer | undefined;
  private busy = false;
  /** The client has finished sending (half-close): the connection ends after the last reply. */
  private ended = false;
  private handedOff = false;
  private closeAfter = false;
  private http10 = false;
  private done: (() => void) | undefined;
  headersSent = false;
  /** Requests answered so far. */
  served = 0;
  idleSince = Date.now();

  constructor(
    readonly socket: Socket,
    private readonly front: FastConnections,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', ignoreError);
  }

  get idle(): boolean {
    return !this.busy && this.buf === undefined;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.busy) {
      if (this.buf.length > MAX_PIPELINED_BYTES) this.socket.pause();
      return;
    }
    this.next();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (!this.busy) this.next();
  };

  private readonly onClose = (): void => {
    this.front.forget(this);
    this.finishTracking();
  };

  /** Reads the next request at hand, or hands the connection over, or waits for more. */
  private next(): void {
    const buf = this.buf;
    if (buf === undefined) {
      if (this.ended) this.socket.end();
      return;
    }
    const request = parseRequest(buf, this.front.options.requestPayloadSizeLimit);
    if (request === undefined) {
      if (this.ended)
        this.socket.end(); // a request cut short: nobody waits for its answer
      else this.handOff();
      return;
    }
    this.buf = request.end < buf.length ? buf.subarray(request.end) : undefined;
    this.busy = true;
    this.headersSent = false;
    this.http10 = request.http10;
    this.closeAfter = !request.keepAlive || this.front.closing;
    this.done = this.front.options.track?.();
    const body = request.end > request.bodyStart ? buf.subarray(request.bodyStart, request.end) : undefined;
    this.front.options.serve({ method: request.method, url: request.url, headers: request.headers, socket: this.socket }, this, body);
  }

  private handOff(): void {
    this.handedOff = true;
    this.front.forget(this);
    const socket = this.socket;
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('close', this.onClose);
    socket.off('error', ignoreError);
    if (this.buf !== undefined) socket.unshift(this.buf);
    this.buf = undefined;
    if (socket.isPaused()) socket.resume();
    this.front.options.handOff(socket);
  }

  send(status: number, headers: Record<string, string | number>, payload: string | Buffer): void {
    if (this.front.closing) this.closeAfter = true;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    head += headerLines(headers);
    if (headers['connection'] === 'close') this.closeAfter = true;
    else head += this.closeAfter ? 'connection: close\r\n' : `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(this.front.options.keepAliveTimeoutMs / 1000)}\r\n`;
    head += '\r\n';
    this.headersSent = true;
    const socket = this.socket;
    if (socket.destroyed) return;
    if (typeof payload === 'string') this.finish(head + payload);
    else {
      socket.cork();
      socket.write(head, 'latin1');
      this.finish(payload);
      socket.uncork();
    }
  }

  async sendStream(reply: Reply, body: JsonStream): Promise<void> {
    // An HTTP/1.0 client cannot read chunks: the body ends with the connection.
    const chunked = !this.http10;
    if (!chunked || this.front.closing) this.closeAfter = true;
    const headers: Record<string, string> = { 'content-type': 'application/json', ...reply.headers };
    let head = `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? 'unknown'}\r\n${headerLines(headers)}`;
    if (chunked) head += 'transfer-encoding: chunked\r\n';
    head += this.closeAfter ? 'connection: close\r\n\r\n' : `connection: keep-alive\r\nkeep-alive: timeout=${Math.floor(this.front.options.keepAliveTimeoutMs / 1000)}\r\n\r\n`;
    this.headersSent = true;
    const socket = this.socket;
    if (socket.destroyed) return;
    socket.write(head, 'latin1');
    for await (const chunk of body.chunks) {
      if (socket.destroyed) return;
      const bytes = Buffer.byteLength(chunk);
      if (bytes === 0) continue;
      let more: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${bytes.toString(16)}\r\n`);
        socket.write(chunk);
        more = socket.write('\r\n');
        socket.uncork();
      } else more = socket.write(chunk);
      // As node:http's path (see writeStream): wait for a slow reader, let other requests in for a fast one.
      if (!more) await drained(socket);
      else await setImmediatePromise();
    }
    if (socket.destroyed) return;
    this.finish(chunked ? '0\r\n\r\n' : '');
  }

  abort(): void {
    this.socket.destroy();
  }

  /** Writes the last of a reply; once it is out, the next request is read (or the connection ends). */
  private finish(last: string | Buffer): void {
    if (this.closeAfter) this.socket.end(last, this.closed);
    else this.socket.write(last, this.written);
  }

  /** The last reply of a connection is out: closed at once, as node:http does (no wait for the client's FIN). */
  private readonly closed = (): void => {
    this.finishTracking();
    this.socket.destroy();
  };

  private readonly written = (): void => {
    this.finishTracking();
    this.served++;
    this.busy = false;
    this.idleSince = Date.now();
    if (this.socket.isPaused()) this.socket.resume();
    if (!this.handedOff && !this.socket.destroyed) this.next();
  };

  private readonly finishTracking = (): void => {
    const done = this.done;
    this.done = undefined;
    done?.();
  };
}

/** A reply's header lines, each ending in CRLF; throws, as node:http does, on a name or value that would end a line early. */
export function headerLines(headers: Record<string, string | number>): string {
  let lines = '';
  for (const name in headers) {
    const value = String(headers[name]);
    // node:http throws on these (ERR_INVALID_CHAR): a reply must not split into two.
    if (INVALID_VALUE.test(value) || !TOKEN.test(name)) throw new TypeError(`Invalid character in header content ["${name}"]`);
    lines += `${name}: ${value}\r\n`;
  }
  return lines;
}

/** Waits until the socket can take more data, or is closed; leaves no listener behind. */
export function drained(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}
