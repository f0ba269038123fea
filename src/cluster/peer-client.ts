import { Pool } from 'undici';
import { fromServiceErrorResponse, kryptonError, type KryptonError } from '../core/errors.js';
import { closeDropped, responseText } from '../core/http-client.js';
import { useRecent } from '../core/recently-used.js';
import type { PeerAuth } from './peer-auth.js';

export interface PeerRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A string is sent as is (pre-serialized JSON); anything else is JSON-encoded. */
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs: number;
  /** Sign as this node (peer authentication); false for calls a client could make too. */
  signed?: boolean;
}

export interface PeerResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Headers that carry a client's identity; passed on when a member acts for that client. */
const CREDENTIAL_HEADERS = ['x-xenon-auth-token', 'authorization', 'cookie'];

export function clientCredentials(headers: Readonly<Record<string, string | string[] | undefined>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of CREDENTIAL_HEADERS) {
    const v = headers?.[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

/** Transport failures where the request was certainly not processed (safe to retry elsewhere). */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND']);

/** Peer origins with a connection pool at once. */
const MAX_PEER_ORIGINS = 256;

/**
 * Node-to-node HTTP: keep-alive pools per peer, signed requests, raw response text (relayed
 * verbatim when forwarding). Network failures become KryptonErrors (503, or 408 on timeout).
 */
export class PeerClient {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly auth: PeerAuth) {}

  /** One pool per peer origin, the most recently used last: at most MAX_PEER_ORIGINS (members come and go over a group's life). */
  private pool(origin: string): Pool {
    // Past the limit the least recently used origin goes: a member long gone, most likely.
    return useRecent(this.pools, origin, () => new Pool(origin, { connections: 32, pipelining: 1, keepAliveTimeout: 30_000 }), MAX_PEER_ORIGINS, closeDropped);
  }

  async send(url: string, req: PeerRequest): Promise<PeerResponse> {
    const u = new URL(url);
    const path = u.pathname + u.search;
    const headers: Record<string, string> = { ...(req.headers ?? {}), ...(req.signed === false ? {} : this.auth.sign(req.method, u.pathname)) };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = typeof req.body === 'string' ? req.body : JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    try {
      const res = await this.pool(u.origin).request({ method: req.method, path, headers, ...(body === undefined ? {} : { body }), headersTimeout: req.timeoutMs, bodyTimeout: req.timeoutMs });
      return { status: res.statusCode, headers: res.headers, text: await responseText(res.body) };
    } catch (cause) {
      const e = cause as Error & { code?: string };
      if (e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
        throw kryptonError('TIMEOUT', `${req.method} ${url} timed out after ${req.timeoutMs} ms`, { cause });
      }
      throw kryptonError('UNAVAILABLE', `${req.method} ${url} failed: ${e.code ?? ''} ${e.message}`.trim(), { cause });
    }
  }

  /** Sends and parses JSON; non-2xx answers are rebuilt into the remote's error. */
  async json<T>(url: string, req: PeerRequest): Promise<T> {
    const res = await this.send(url, req);
    const parsed = res.text ? (JSON.parse(res.text) as unknown) : undefined;
    if (res.status >= 400) throw remoteError(url, res.status, parsed);
    return parsed as T;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
    this.pools.clear();
  }
}

export function remoteError(url: string, status: number, body: unknown): KryptonError {
  if (body && typeof body === 'object' && 'message' in body) return fromServiceErrorResponse(body, status);
  return fromServiceErrorResponse({ message: `${url} answered ${status}`, statusCode: status }, status);
}

/** True when the request never reached a process (connection refused and the like). */
export function wasNotSent(err: unknown): boolean {
  const code = (err as { cause?: { code?: string } })?.cause?.code ?? '';
  return NOT_SENT.has(code);
}
