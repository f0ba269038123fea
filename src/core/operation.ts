import type { IncomingHttpHeaders } from 'node:http';
import { fail } from './errors.js';
import { parseJsonBody } from './lenient-json.js';

export type Action = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
export const ACTIONS: readonly Action[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Xenon's per-action request statistic (`POSTrequestCount`, …), one string per action (not built per request). */
export const REQUEST_COUNT_STAT: Readonly<Record<Action, string>> = Object.freeze(Object.fromEntries(ACTIONS.map((a) => [a, `${a}requestCount`])) as Record<Action, string>);

/** Xenon pragma directives (standard `pragma` header, `;`-joined). */
export const Pragma = Object.freeze({
  FORCE_INDEX_UPDATE: 'xn-force-index-update',
  FROM_MIGRATION: 'xn-from-migration',
  NO_FORWARD: 'xn-no-fwd',
  FORWARDED: 'xn-fwd',
  REPLICATED: 'xn-rpl',
  SYNCH_OWNER: 'xn-synch-owner',
  QUEUE: 'xn-queue',
  VERIFY_TOKEN: 'xn-verify-token',
});

/** A pre-serialized JSON body (stored documents are sent as stored, never re-serialized). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** A streamed JSON body: chunks of text written with back-pressure (large listings). */
export class JsonStream {
  constructor(readonly chunks: AsyncIterable<string>) {}
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** A caller's read restriction: SQL over `docs d` that queries AND in (see src/auth/policy.ts). */
export interface ReadScope {
  sql: string;
  params: unknown[];
  /** Whose scope it is (query pages stay with the principal that opened them). */
  principal: string;
}

/**
 * What the auth phase (src/auth/) attaches to a request when auth is on; absent when it is off.
 * Handlers consult it where only they know the document: queries and listings AND in `readScope`,
 * writes call `checkWrite` with the state they are about to commit, in-memory documents (query
 * tasks, pages) call `check`.
 */
export interface RequestAuthz {
  /** Every query, listing and result page of this request is restricted to it; undefined = all. */
  readonly readScope: ReadScope | undefined;
  /** Throws 403 (FORBIDDEN) unless the caller may `action` this document. */
  check(action: Action, doc: Record<string, unknown>): void;
  allows(action: Action, doc: Record<string, unknown>): boolean;
  /** Throws 403 unless the caller may `action` the current state (if any) and the resulting one. */
  checkWrite(action: Action, next: Record<string, unknown>, current: Record<string, unknown> | undefined): void;
  /** A read check for this caller that follows later policy changes (a subscription's notifications). */
  reader(): (doc: Record<string, unknown>) => boolean;
}

export interface OperationInit {
  action: Action;
  path: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  bodyText: string | undefined;
  contentType: string | undefined;
  /** Full request URI as the host saw it (used in Xenon's 404 message); computed on first use. */
  uri: string | (() => string);
  remoteAddress?: string | (() => string | undefined);
  /** Whether the client has closed its connection (nobody will read the answer); absent: never. */
  clientGone?: () => boolean;
}

/**
 * One request to a service. The body is parsed lazily, once, with Xenon's content-type rules:
 * absent content-type means JSON; form-encoded bodies are refused when read as documents.
 */
export class Operation {
  readonly action: Action;
  readonly path: string;
  readonly rawQuery: string;
  private parsedQuery: ReadonlyMap<string, string> | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly pragmas: ReadonlySet<string>;
  private readonly uriSource: string | (() => string);
  private readonly remoteSource: string | (() => string | undefined) | undefined;
  private readonly goneSource: (() => boolean) | undefined;
  /** Authenticated subject (user link); undefined when auth is off. Set by the auth phase. */
  principal: string | undefined;
  /** True when the request was authenticated as the host itself or a group peer. */
  isSystem = false;
  /** Set by the auth phase when auth is on (see RequestAuthz). */
  authz: RequestAuthz | undefined = undefined;
  private readonly bodyText: string | undefined;
  private readonly contentType: string | undefined;
  private parsed: { value: unknown } | undefined;

  constructor(init: OperationInit) {
    this.action = init.action;
    this.path = init.path;
    this.rawQuery = init.rawQuery;
    this.headers = init.headers;
    this.pragmas = parsePragmas(init.headers['pragma']);
    this.uriSource = init.uri;
    this.remoteSource = init.remoteAddress;
    this.goneSource = init.clientGone;
    this.bodyText = init.bodyText;
    this.contentType = init.contentType;
  }

  /** The query string's parameters (Xenon's decoding); parsed on first use. */
  get query(): ReadonlyMap<string, string> {
    this.parsedQuery ??= parseQueryString(this.rawQuery);
    return this.parsedQuery;
  }

  /** Full request URI as the host saw it, e.g. `http://127.0.0.1:8000/core/examples/x`. */
  get uri(): string {
    return typeof this.uriSource === 'string' ? this.uriSource : this.uriSource();
  }

  /** The client's address (socket peer). */
  /** True once the client closed its connection: a handler that waits (a query task's expectedResultCount) can stop. */
  get clientGone(): boolean {
    return this.goneSource?.() ?? false;
  }

  get remoteAddress(): string | undefined {
    return typeof this.remoteSource === 'function' ? this.remoteSource() : this.remoteSource;
  }

  hasPragma(directive: string): boolean {
    return this.pragmas.has(directive);
  }

  hasBody(): boolean {
    return this.bodyText !== undefined && this.bodyText.length > 0;
  }

  /** The parsed JSON body (undefined when empty). Throws 400 for unreadable bodies. */
  body(): unknown {
    if (this.parsed) return this.parsed.value;
    if (!this.hasBody()) {
      this.parsed = { value: undefined };
      return undefined;
    }
    const ct = this.contentType ?? 'application/json';
    if (!ct.includes('application/json') && ct.includes('application/x-www-form-urlencoded')) {
      fail('BAD_REQUEST', `Unrecognized Content-Type for parsing request body: ${ct}`);
    }
    this.parsed = { value: parseJsonBody(this.bodyText!) };
    return this.parsed.value;
  }

  /** The body as a JSON object; 400 if it is something else. */
  bodyObject(): Record<string, unknown> | undefined {
    const b = this.body();
    if (b === undefined || b === null) return undefined;
    if (typeof b !== 'object' || Array.isArray(b)) fail('BAD_REQUEST', 'request body must be a JSON object');
    return b as Record<string, unknown>;
  }
}

/** Xenon decodes the whole query string once, then splits on `&` and the first `=`; last wins. */
export function parseQueryString(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!raw) return out;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    decoded = raw;
  }
  for (const part of decoded.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    out.set(eq < 0 ? part : part.slice(0, eq), eq < 0 ? '' : part.slice(eq + 1));
  }
  return out;
}

const NO_PRAGMAS: ReadonlySet<string> = new Set();

function parsePragmas(header: string | string[] | undefined): ReadonlySet<string> {
  if (header === undefined) return NO_PRAGMAS;
  const out = new Set<string>();
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const v of values) for (const d of v.split(';')) if (d.trim()) out.add(d.trim().toLowerCase());
  return out;
}
