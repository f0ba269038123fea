import { isAscii } from 'node:buffer';
import { Pool, type Dispatcher } from 'undici';
import { fromServiceErrorResponse, kryptonError, type KryptonError } from './errors.js';
import { useRecent } from './recently-used.js';

export interface ClientRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  body?: unknown;
  /** Milliseconds until the request is abandoned with 408. */
  timeoutMs?: number;
  /** Abandons the request (queued or in flight) when aborted: a 409 `… cancelled`. */
  signal?: AbortSignal | undefined;
  /** A 2xx body is returned as its text, unparsed (error bodies are still read as ServiceErrorResponses). */
  rawBody?: boolean;
}

export interface ClientResponse<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
}

/** Origins a host keeps a connection pool to at once, by default (the least recently used goes first). */
export const MAX_ORIGINS = 256;

const utf8 = new TextDecoder(); // drops a leading byte order mark, as undici's body.text() does

/**
 * A response body's text. Bodies of ASCII bytes only (JSON as krypton writes it, and most JSON)
 * are copied as one-byte text instead of being decoded as UTF-8: measured on a 4.4 MB query page
 * (a migration's), 7.5 ms of CPU for the GET against 22 ms with undici's body.text(). Any other
 * body is decoded as UTF-8.
 */
export async function responseText(body: Dispatcher.ResponseData['body']): Promise<string> {
  const bytes = await body.bytes();
  if (bytes.length === 0) return '';
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return isAscii(buffer) ? buffer.toString('latin1') : utf8.decode(buffer);
}

/** A pool dropped from a bounded set: it closes once its requests in flight are answered. */
export function closeDropped(pool: Pool): void {
  pool.close().catch(() => undefined);
}

/** An absolute http(s) URI (what a host, peer or node reference must be). */
export function isHttpUri(v: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}

/**
 * Host-to-host HTTP with keep-alive connection pools (undici Pool per origin).
 * Non-2xx answers are rebuilt into KryptonErrors from their ServiceErrorResponse.
 */
export class HttpClient {
  /** One pool per origin, the most recently used last (see pool). */
  private readonly pools = new Map<string, Pool>();

  constructor(
    private readonly connections = 16,
    /**
     * Origins with a pool at once. Callback URIs come from clients (a subscription's `reference`):
     * without a bound, every new origin would keep a pool (some 21 KB) for the host's life.
     */
    private readonly maxOrigins = MAX_ORIGINS,
  ) {}

  private pool(origin: string): Pool {
    return useRecent(this.pools, origin, () => new Pool(origin, { connections: this.connections, pipelining: 1, keepAliveTimeout: 30_000 }), this.maxOrigins, closeDropped);
  }

  /** Origins with a pool now (at most maxOrigins). */
  get poolCount(): number {
    return this.pools.size;
  }

  /** Sends a request; throws a KryptonError for network failures and non-2xx statuses. */
  async send<T = unknown>(url: string, req: ClientRequest): Promise<ClientResponse<T>> {
    const res = await this.sendRaw(url, req);
    if (res.status >= 400) throw this.toError(url, res);
    return res as ClientResponse<T>;
  }

  /** Like send, but returns error statuses instead of throwing (network failures still throw). */
  async sendRaw(url: string, req: ClientRequest): Promise<ClientResponse> {
    const u = new URL(url);
    const headers: Record<string, string> = { ...(req.headers ?? {}) };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    const timeout = req.timeoutMs ?? 60_000;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool(u.origin).request({
        method: req.method,
        path: u.pathname + u.search,
        headers,
        ...(body === undefined ? {} : { body }),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        ...(req.signal ? { signal: req.signal } : {}),
      });
    } catch (cause) {
      const e = cause as Error & { code?: string };
      if (req.signal?.aborted) throw kryptonError('CONFLICT', `${req.method} ${url} cancelled`, { cause });
      if (e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
        throw kryptonError('TIMEOUT', `${req.method} ${url} timed out after ${timeout} ms`, { cause });
      }
      throw kryptonError('UNAVAILABLE', `${req.method} ${url} failed: ${e.code ?? ''} ${e.message}`.trim(), { cause });
    }
    const text = await responseText(res.body);
    if (req.rawBody && res.statusCode < 400) return { status: res.statusCode, headers: res.headers, body: text };
    let parsed: unknown;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.statusCode, headers: res.headers, body: parsed };
  }

  toError(url: string, res: ClientResponse): KryptonError {
    const err = fromServiceErrorResponse(res.body, res.status);
    if (!(res.body && typeof res.body === 'object' && 'message' in res.body)) {
      return fromServiceErrorResponse({ message: `${url} answered ${res.status}`, statusCode: res.status }, res.status);
    }
    return err;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
