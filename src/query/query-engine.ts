import { fail } from '../core/errors.js';
import type { Doc } from '../core/document.js';
import type { Host } from '../core/host.js';
import type { ReadScope } from '../core/operation.js';
import { compileSort, compileWhere, keysetCondition, type SortKey } from './query-compiler.js';
import type { Query, QuerySpecification } from './query-types.js';
import { distinctSelected, selectLinks } from './selected-links.js';
import type { IndexReader, Snapshot } from '../store/snapshots.js';
import { BUILTIN_COLUMNS, wholeString } from '../store/schema.js';

/** One executed page of a query: links in order, and the stored JSON when expanding. */
export interface QueryPage {
  links: string[];
  /** link → stored document JSON text (only when the query expands content). */
  documents: Map<string, string> | undefined;
  /** COUNT queries: the count; else the number of links. */
  count: number;
  /** Sort-key values of the last row, when more rows follow (keyset cursor). */
  after: unknown[] | undefined;
  /** The page ended at MAX_PAGE_BYTES of document text, before its row limit. */
  full?: true;
  /** The document text read for the page, when it was read with a byte bound (runPage's maxBytes). */
  bytes?: number;
  queryTimeMicros: number;
  /** SELECT_LINKS: per result link, the links its `linkTerms` fields hold (see selectLinks). */
  selectedLinks?: Map<string, Record<string, string>>;
  /** EXPAND_LINKS: each selected link's document, or the error its GET answered (set by the caller: it is async). */
  selectedDocuments?: Map<string, string>;
}

export interface QueryPlan {
  spec: QuerySpecification;
  where: { sql: string; params: unknown[] };
  keys: SortKey[];
  /** Filter documents to a node's owned set (cluster OWNER_SELECTION); undefined = all. */
  ownerFilter?: ((link: string) => boolean) | undefined;
  /** Auth: what the caller may read (op.authz.readScope), ANDed into every page; undefined = all. */
  readScope?: ReadScope | undefined;
}

/**
 * Xenon's default order: version descending, ties in index (insertion) order. Pages read the
 * (factory, version DESC, id) index in order.
 */
export const DEFAULT_ORDER: readonly SortKey[] = Object.freeze([
  { expr: 'd.version', params: [], desc: true, name: 'documentVersion' },
  { expr: 'd.id', params: [], desc: false, name: '' },
]);

const MAX_QUERY_PARAMS = 32_000;

export function hasOption(spec: QuerySpecification, option: string): boolean {
  return spec.options?.includes(option as never) ?? false;
}

/** Compiles a validated query spec once; pages then run it with a keyset cursor. */
export function planQuery(spec: QuerySpecification, extra?: Query): QueryPlan {
  const query: Query = extra ? { occurance: 'MUST_OCCUR', booleanClauses: [spec.query!, extra] } : spec.query!;
  const where = compileWhere(query);
  // SQLite binds at most 32,766 parameters per statement; a page adds a few of its own.
  if (where.params.length > MAX_QUERY_PARAMS) fail('INVALID_QUERY', `the query is too large (${where.params.length} values to compare; at most ${MAX_QUERY_PARAMS}): split it into several queries`);
  const keys = spec.sortTerm ? compileSort(spec) : [...DEFAULT_ORDER];
  return { spec, where, keys };
}

/**
 * Document text a page of a paged query holds at most (at least one document): a page's documents
 * are held in memory, on the host that serves it and on the one that reads it (a migration's
 * destination holds two), so a page of 10,000 large documents (the migration's default) must not be
 * read whole. Cut there, a page is followed by a nextPageLink as any other. A streamed answer reads
 * its batches with the same bound and goes on after each. Pages of small documents never come near
 * it (10,000 example documents are about 4 MB).
 */
export const MAX_PAGE_BYTES = 32 * 1024 * 1024;

/**
 * Runs one page: at most `limit` rows strictly after `after` in sort order, and with `maxBytes`, at
 * most that much document text (at least one row; `full` then says the page ended there). Without
 * it the page holds every row up to `limit`: an answer that no next page can complete. Streams nothing into
 * memory beyond the page (keyset paging; no snapshot of the whole result set is ever built).
 */
export function runPage(host: Host, plan: QueryPlan, limit: number, after: unknown[] | undefined, offset = 0, reader: IndexReader = host.store, maxBytes?: number): QueryPage {
  const started = performance.now();
  const spec = plan.spec;
  const allVersions = hasOption(spec, 'INCLUDE_ALL_VERSIONS');
  const { conds, params } = matchConditions(host, plan);
  if (hasOption(spec, 'COUNT')) {
    const row = reader.get<{ n: number }>(`SELECT count(*) AS n FROM docs d WHERE ${conds.join(' AND ')}`, params);
    return { links: [], documents: undefined, count: row?.n ?? 0, after: undefined, queryTimeMicros: elapsedMicros(started) };
  }
  const order = plan.keys.map((k) => `${k.expr} ${k.desc ? 'DESC' : 'ASC'}`).join(', ');
  const orderParams = plan.keys.flatMap((k) => k.params);
  const expand = isExpanded(spec);
  const selecting = hasOption(spec, 'SELECT_LINKS');
  // Rows are arrays (IndexReader.rows): the link, the version, the JSON when needed, then each sort
  // key's value for the keyset cursor; a key that is one of those columns (the link, as a
  // migration's tie-break) is read from it instead of a second time.
  const cols = ['d.link', 'd.version'];
  if (expand || selecting || plan.ownerFilter) cols.push('d.json');
  const keyAt: number[] = [];
  const keyParams: unknown[] = [];
  for (const k of plan.keys) {
    const same = k.params.length === 0 ? cols.indexOf(k.expr) : -1;
    if (same >= 0 && cols[same] !== 'd.json') keyAt.push(same);
    else {
      keyAt.push(cols.length);
      cols.push(k.expr);
      keyParams.push(...k.params);
    }
  }
  // With maxBytes the page also ends once it holds that much document text (reading stops there).
  let bytes = 0;
  let full = false;
  const until =
    maxBytes !== undefined && cols[2] === 'd.json'
      ? (row: unknown[]) => {
          bytes += (row[2] as string).length;
          full = bytes >= maxBytes;
          return full;
        }
      : undefined;
  const fetch = (cond: { sql: string; params: readonly unknown[] } | undefined, n: number) => {
    const where = cond ? [...conds, `(${cond.sql})`] : conds;
    const sql = `SELECT ${cols.join(', ')} FROM docs d
    WHERE ${where.join(' AND ')} ORDER BY ${order} LIMIT ? OFFSET ?`;
    return reader.rows(sql, [...keyParams, ...params, ...(cond?.params ?? []), ...orderParams, n, after ? 0 : offset], until);
  };
  const fetchLimit = plan.ownerFilter ? limit * 4 + 1 : limit + 1;
  let rows: unknown[][];
  if (!after) rows = fetch(undefined, fetchLimit);
  else if (twoColumns(plan.keys, after)) {
    // Keyset over (a, b), as two index seeks: the rest of a's group, then beyond a.
    const [a, b] = plan.keys as [SortKey, SortKey];
    const beyond = (k: SortKey) => (k.desc ? '<' : '>');
    rows = fetch({ sql: `${a.expr} = ? AND ${b.expr} ${beyond(b)} ?`, params: [after[0], after[1]] }, fetchLimit);
    if (rows.length < fetchLimit && !full) rows = rows.concat(fetch({ sql: `${a.expr} ${beyond(a)} ?`, params: [after[0]] }, fetchLimit - rows.length));
  } else rows = fetch(keysetCondition(plan.keys, after), fetchLimit);
  const links: string[] = [];
  const documents = expand ? new Map<string, string>() : undefined;
  const selectedLinks = selecting ? new Map<string, Record<string, string>>() : undefined;
  let last: unknown[] | undefined;
  let more = false;
  for (const row of rows) {
    if (links.length === limit) {
      more = true;
      break;
    }
    last = row;
    const rowLink = row[0] as string;
    if (plan.ownerFilter && !plan.ownerFilter(rowLink)) continue;
    const link = allVersions ? `${rowLink}?documentVersion=${row[1] as number}` : rowLink;
    links.push(link);
    documents?.set(link, shapeDocument(spec, row[2] as string));
    selectedLinks?.set(link, selectLinks(spec, JSON.parse(row[2] as string) as Doc));
  }
  if (!more && ((plan.ownerFilter && rows.length === fetchLimit) || full)) more = true;
  const cursor = more && last ? keyAt.map((i) => last![i]) : undefined;
  const page: QueryPage = { links, documents, count: links.length, after: cursor, queryTimeMicros: elapsedMicros(started) };
  if (selectedLinks) page.selectedLinks = selectedLinks;
  if (full && cursor) page.full = true;
  if (until) page.bytes = bytes;
  return page;
}

/** More rows follow `page` within a result of at most `limit` rows (an unpaged answer goes on after it). */
export function moreWithin(page: QueryPage, limit: number): boolean {
  return page.after !== undefined && page.links.length < limit;
}

/** GROUP_BY's group field: a built-in column, or a user field (string values, or numbers with a LONG / DOUBLE propertyType). */
export interface GroupKey {
  field: string;
  numeric: boolean;
  desc: boolean;
}

export function groupKeyOf(spec: QuerySpecification): GroupKey {
  const term = spec.groupByTerm!;
  const builtin = BUILTIN_COLUMNS[term.propertyName];
  const numeric = builtin ? builtin.numeric : term.propertyType === 'LONG' || term.propertyType === 'DOUBLE';
  return { field: term.propertyName, numeric, desc: spec.groupSortOrder === 'DESC' };
}

/**
 * GROUP_BY: the distinct values of the group field among the plan's matches, in group order
 * (the values', ascending unless `groupSortOrder` is DESC), strictly after `after`; at most
 * `limit`, and whether more follow.
 */
export function runGroups(
  host: Host,
  plan: QueryPlan,
  key: GroupKey,
  limit: number,
  after: string | number | undefined,
  reader: IndexReader = host.store,
): { values: Array<string | number>; more: boolean } {
  const { conds, params } = matchConditions(host, plan);
  const builtin = BUILTIN_COLUMNS[key.field];
  let from = 'docs d';
  let value: string;
  if (builtin) value = builtin.column;
  else {
    value = key.numeric ? 'p.nval' : `(${wholeString('p')})`;
    from = 'docs d JOIN props p ON p.doc_id = d.id AND p.name = ?';
    params.unshift(key.field);
  }
  conds.push(`${value} IS NOT NULL`);
  if (after !== undefined) {
    conds.push(`${value} ${key.desc ? '<' : '>'} ?`);
    params.push(after);
  }
  const rows = reader.all<{ g: string | number }>(`SELECT DISTINCT ${value} AS g FROM ${from} WHERE ${conds.join(' AND ')} ORDER BY g ${key.desc ? 'DESC' : 'ASC'} LIMIT ?`, [...params, limit + 1]);
  return { values: rows.slice(0, limit).map((r) => r.g), more: rows.length > limit };
}

/** The clause confining a query to one group. */
export function groupClause(key: GroupKey, value: string | number): Query {
  if (key.numeric) {
    const n = Number(value);
    return {
      occurance: 'MUST_OCCUR',
      term: { propertyName: key.field, range: { type: Number.isInteger(n) ? 'LONG' : 'DOUBLE', min: n, max: n, isMinInclusive: true, isMaxInclusive: true, precisionStep: 16 } },
    };
  }
  return { occurance: 'MUST_OCCUR', term: { propertyName: key.field, matchValue: String(value), matchType: 'TERM' } };
}

/** The SQL conditions (over `docs d`) a row must meet to be one of the plan's matches. */
function matchConditions(host: Host, plan: QueryPlan): { conds: string[]; params: unknown[] } {
  const spec = plan.spec;
  const allVersions = hasOption(spec, 'INCLUDE_ALL_VERSIONS');
  const conds: string[] = [];
  const params: unknown[] = [];
  const snapshotAt = hasOption(spec, 'TIME_SNAPSHOT') ? spec.timeSnapshotBoundaryMicros : undefined;
  if (snapshotAt !== undefined) {
    // The index as it was at the boundary: versions written by then, and (without
    // INCLUDE_ALL_VERSIONS) only the newest of them per link. History the retention limit purged
    // is gone, so is a snapshot of it.
    conds.push('d.update_time <= ?');
    params.push(snapshotAt);
    if (!allVersions) {
      conds.push('NOT EXISTS (SELECT 1 FROM docs n WHERE n.link = d.link AND n.version > d.version AND n.update_time <= ?)');
      params.push(snapshotAt);
      if (!hasOption(spec, 'INCLUDE_DELETED')) conds.push("d.action != 'DELETE'");
    }
  } else if (!allVersions) conds.push(hasOption(spec, 'INCLUDE_DELETED') ? 'd.latest = 1' : "d.latest = 1 AND d.action != 'DELETE'");
  conds.push('(d.expiration = 0 OR d.expiration > ?)');
  params.push(host.clock.nowMicros());
  const factory = factoryOf(spec.query) ?? factoryOfKind(host, spec.query);
  if (factory !== undefined && host.service(factory)?.handleChild && !host.serviceLinks().some((l) => l.startsWith(`${factory}/`))) {
    // Lets SQLite use the per-factory indexes (by update time, by version) for order and range.
    conds.push('d.factory = ?');
    params.push(factory);
  }
  conds.push(`(${plan.where.sql})`);
  params.push(...plan.where.params);
  if (plan.readScope) {
    conds.push(plan.readScope.sql);
    params.push(...plan.readScope.params);
  }
  return { conds, params };
}

/** Two plain column keys with a non-null cursor: pages seek an index. */
function twoColumns(keys: readonly SortKey[], after: readonly unknown[]): boolean {
  return keys.length === 2 && keys.every((k) => k.params.length === 0 && /^d\.\w+$/.test(k.expr)) && after.every((v) => v !== null && v !== undefined);
}

/** The factory a query is confined to by a MUST `documentSelfLink` PREFIX `<factory>/` clause. */
function factoryOf(query: Query | undefined): string | undefined {
  if (!query) return undefined;
  const t = query.term;
  if (t && t.propertyName === 'documentSelfLink' && t.matchType === 'PREFIX' && t.matchValue?.endsWith('/') && t.matchValue.length > 1) return t.matchValue.slice(0, -1);
  for (const c of query.booleanClauses ?? []) {
    if ((c.occurance ?? 'MUST_OCCUR') !== 'MUST_OCCUR') continue;
    const f = factoryOf(c);
    if (f !== undefined) return f;
  }
  return undefined;
}

/**
 * The factory a query is confined to by a MUST `documentKind` TERM clause, when exactly one factory
 * stores that kind (a document's kind is always its factory's). Xenon clients often query by kind;
 * confined to its factory, such a query reads the per-factory index in order instead of sorting
 * every match (TOP_RESULTS 10 over 100,000 documents: 100 ms → the 8 ms of a prefix query).
 */
function factoryOfKind(host: Host, query: Query | undefined): string | undefined {
  const kind = kindOf(query);
  if (kind === undefined) return undefined;
  let found: string | undefined;
  for (const link of host.serviceLinks()) {
    const def = (host.service(link) as { def?: { documentKind?: unknown } } | undefined)?.def;
    if (def?.documentKind !== kind) continue;
    if (found !== undefined) return undefined;
    found = link;
  }
  return found;
}

function kindOf(query: Query | undefined, root = true): string | undefined {
  if (!query || (root && query.occurance === 'MUST_NOT_OCCUR')) return undefined;
  const t = query.term;
  if (t && t.propertyName === 'documentKind' && (t.matchType ?? 'TERM') === 'TERM' && t.matchValue) return t.matchValue;
  for (const c of query.booleanClauses ?? []) {
    if ((c.occurance ?? 'MUST_OCCUR') !== 'MUST_OCCUR') continue;
    const k = kindOf(c, false);
    if (k !== undefined) return k;
  }
  return undefined;
}

/** Microseconds since `startedMs` (a performance.now() reading), at least 1. */
export function elapsedMicros(startedMs: number): number {
  return Math.max(1, Math.round((performance.now() - startedMs) * 1000));
}

/** A document as an expanded result shows it (EXPAND_SELECTED_FIELDS, EXPAND_BUILTIN_CONTENT_ONLY, else whole). */
export function shapeDocument(spec: QuerySpecification, json: string): string {
  if (hasOption(spec, 'EXPAND_SELECTED_FIELDS')) {
    const doc = JSON.parse(json) as Doc;
    const out: Doc = {};
    for (const t of spec.selectTerms ?? []) if (doc[t.propertyName] !== undefined) out[t.propertyName] = doc[t.propertyName];
    out['documentSelfLink'] = doc['documentSelfLink'];
    return JSON.stringify(out);
  }
  if (hasOption(spec, 'EXPAND_BUILTIN_CONTENT_ONLY')) {
    const doc = JSON.parse(json) as Doc;
    return JSON.stringify(Object.fromEntries(Object.entries(doc).filter(([k]) => k.startsWith('document'))));
  }
  return json;
}

/**
 * A streamed answer's batches hold at most STREAM_BATCH_BYTES of documents, except a first batch
 * that may end a page (MAX_PAGE_BYTES) or that the caller read to decide whether to stream; a batch
 * larger than STREAM_BATCH_BYTES is yielded in chunks of about STREAM_CHUNK_CHARS. So an answer
 * being sent holds a few megabytes. Before, each yielded a whole batch of up to 32 MB, held again as
 * one joined string and as bytes in the socket's buffer until the client took them. Measured, 20
 * clients reading 300 documents of 1 MB at once: peak RSS 3.96 GB before, 688 MB now. A host with
 * a 384 MB heap ran out of memory (a FATAL error: the process gone) with 6 such clients reading 150
 * of them; it now serves 16. Batches of small documents are unchanged (10,000 example documents
 * are about 3.5 MB).
 */
const STREAM_CHUNK_CHARS = 1024 * 1024;
const STREAM_BATCH_BYTES = 8 * 1024 * 1024;

/** Results of more rows than this are streamed (streamResultRows); smaller ones are answered whole. */
export const STREAM_BATCH = 5_000;
/**
 * Rows per batch: the first, then the links pass and the documents pass. Each batch runs the query
 * again from its cursor, and a filter on a field is a subquery over every match, rebuilt per batch:
 * fewer, larger batches keep that cost down (a 100,000-document `$filter` answer: 2.2 s with these
 * sizes, 3.6 s with 5,000 for both, 1.8 s built whole) while memory stays bounded (193 MB peak; 427
 * MB whole). The first batch is as large as a documents batch (it holds no more than one does), so
 * a page of up to 10,000 documents (a migration's) is read once, not a second time for its documents.
 */
const DEFAULT_BATCHES: StreamBatches = { first: 10_000, links: 50_000, documents: 10_000 };

/** Rows per batch of a stream: the first batch (expanded), then links-only and documents batches. */
export interface StreamBatches {
  first: number;
  links: number;
  documents: number;
}
const EXPAND_OPTIONS: readonly string[] = ['EXPAND_CONTENT', 'EXPAND_SELECTED_FIELDS', 'EXPAND_BUILTIN_CONTENT_ONLY'];

/** Results carry documents (whole, selected fields, or built-ins only), not only links. */
export function isExpanded(spec: QuerySpecification): boolean {
  return EXPAND_OPTIONS.some((o) => hasOption(spec, o));
}

/**
 * The rows of a ServiceDocumentQueryResult — `"documentLinks":[…]` and, when expanded,
 * `,"documents":{…}` — for up to `limit` rows of `plan` from `start` (a cursor, or the first rows at
 * `offset`), streamed in keyset batches: every link, then the documents in a second pass, so memory
 * stays bounded whatever the count. Every batch reads one snapshot of the index (`start.snapshot`,
 * which the stream then owns and releases, or one it takes), so both passes show the same
 * documents whatever is written meanwhile. `start.first`, a batch already run on that snapshot from
 * the start with at most `limit` rows, is reused. Ends with `tail(count, cursor)`: `cursor` is the
 * keyset position after the last row sent, undefined when no row follows. Without a snapshot (none
 * free, or held past its age limit) batches read the live index, each once every acknowledged write
 * is applied; the second pass then sends at most as many documents as links.
 */
export async function* streamResultRows(
  host: Host,
  plan: QueryPlan,
  limit: number,
  start: { after?: unknown[] | undefined; offset?: number; first?: QueryPage; snapshot?: Snapshot; paged?: boolean },
  tail: (count: number, cursor: unknown[] | undefined) => string,
  sizes: StreamBatches = DEFAULT_BATCHES,
): AsyncGenerator<string> {
  const snapshot = start.snapshot ?? (await host.store.snapshot());
  try {
    yield* streamRows(host, plan, limit, start, tail, sizes, snapshot);
  } finally {
    snapshot.release();
  }
}

async function* streamRows(
  host: Host,
  plan: QueryPlan,
  limit: number,
  start: { after?: unknown[] | undefined; offset?: number; first?: QueryPage; paged?: boolean },
  tail: (count: number, cursor: unknown[] | undefined) => string,
  sizes: StreamBatches,
  snapshot: Snapshot,
): AsyncGenerator<string> {
  const spec = plan.spec;
  const linksOnly: QueryPlan = { ...plan, spec: { ...spec, options: (spec.options ?? []).filter((o) => !EXPAND_OPTIONS.includes(o)) } };
  const batch = (p: QueryPlan, from: unknown[] | undefined, n: number, maxBytes = STREAM_BATCH_BYTES) =>
    readOn(host, snapshot, (reader) => runPage(host, p, Math.min(p === plan ? sizes.documents : sizes.links, n), from, from ? 0 : (start.offset ?? 0), reader, maxBytes));
  // A page's first batch is bounded as a page is (it may end the page: see below); any other batch less.
  const first = start.first ?? (await batch(plan, start.after, Math.min(limit, sizes.first), start.paged ? MAX_PAGE_BYTES : STREAM_BATCH_BYTES));
  // One page of a paged query whose documents filled the first batch: the page ends there, and the
  // tail's cursor leads to the next. Any other answer goes on, batch after batch.
  if (first.full && start.paged) limit = first.links.length;
  yield '"documentLinks":[';
  let count = 0;
  let cursor: unknown[] | undefined;
  for (let page: QueryPage | undefined = first; page; ) {
    if (page.links.length > 0) yield (count > 0 ? ',' : '') + page.links.map((l) => JSON.stringify(l)).join(',');
    count += page.links.length;
    cursor = page.after;
    page = page.after && count < limit ? await batch(linksOnly, page.after, limit - count) : undefined;
  }
  yield ']';
  if (first.documents) {
    yield ',"documents":{';
    let sent = 0;
    for (let page: QueryPage | undefined = first; page; ) {
      // A batch of more than STREAM_BATCH_BYTES (a first batch of large documents) goes in chunks of
      // about STREAM_CHUNK_CHARS: joined into one string, it was held twice more (the string, then its
      // bytes in the socket's buffer until the client took them all). A smaller one goes whole: in
      // chunks, a page of 10,000 example documents (3.5 MB) cost 5.9–6.0 µs a document to serve
      // against 4.7–4.8 whole. Every batch here was read with a byte bound, so it knows its size.
      const chunkChars = (page.bytes ?? 0) > STREAM_BATCH_BYTES ? STREAM_CHUNK_CHARS : Number.POSITIVE_INFINITY;
      let parts: string[] = [];
      let chars = 0;
      for (const [link, json] of page.documents!) {
        if (sent >= count) break;
        parts.push(`${JSON.stringify(link)}:${json}`);
        sent++;
        chars += json.length;
        if (chars >= chunkChars) {
          yield (sent > parts.length ? ',' : '') + parts.join(',');
          parts = [];
          chars = 0;
        }
      }
      if (parts.length > 0) yield (sent > parts.length ? ',' : '') + parts.join(',');
      page = page.after && sent < count ? await batch(plan, page.after, count - sent) : undefined;
    }
    yield '}';
  }
  yield tail(count, cursor);
}

/** Runs reads on `snapshot`, or on the live index once acknowledged writes are applied when it is not open. */
export async function readOn<T>(host: Host, snapshot: Snapshot, fn: (reader: IndexReader) => T): Promise<T> {
  return snapshot.open ? fn(snapshot) : host.store.read(() => fn(host.store));
}

/** What a ServiceDocumentQueryResult carries besides its rows. */
export interface ResultExtra {
  nextPageLink?: string | undefined;
  prevPageLink?: string | undefined;
  /** GROUP_BY: group value → the link of its first page of documents. */
  groupPageLinks?: ReadonlyMap<string, string> | undefined;
  owner: string;
}

/** Serializes a ServiceDocumentQueryResult without re-parsing stored documents. */
export function resultJson(page: QueryPage, extra: ResultExtra & { totalCount?: number }): string {
  const parts: string[] = [];
  if (extra.totalCount !== undefined) parts.push(`"totalCount":${extra.totalCount}`);
  parts.push(`"documentLinks":${JSON.stringify(page.links)}`);
  if (page.documents) {
    const docs: string[] = [];
    for (const [link, json] of page.documents) docs.push(`${JSON.stringify(link)}:${json}`);
    parts.push(`"documents":{${docs.join(',')}}`);
  }
  if (page.selectedLinks) {
    parts.push(`"selectedLinks":${JSON.stringify(distinctSelected(page.selectedLinks))}`);
    parts.push(`"selectedLinksPerDocument":${JSON.stringify(Object.fromEntries(page.selectedLinks))}`);
  }
  if (page.selectedDocuments) {
    const docs: string[] = [];
    for (const [link, json] of page.selectedDocuments) docs.push(`${JSON.stringify(link)}:${json}`);
    parts.push(`"selectedDocuments":{${docs.join(',')}}`);
  }
  parts.push(resultEnd(page.count, page.queryTimeMicros, extra));
  return `{${parts.join(',')}}`;
}

/** The fields of a ServiceDocumentQueryResult after its rows, from `documentCount` on (no closing brace). */
export function resultEnd(count: number, queryTimeMicros: number, extra: ResultExtra): string {
  let s = `"documentCount":${count}`;
  if (extra.prevPageLink) s += `,"prevPageLink":${JSON.stringify(extra.prevPageLink)}`;
  if (extra.nextPageLink) s += `,"nextPageLink":${JSON.stringify(extra.nextPageLink)}`;
  if (extra.groupPageLinks) s += `,"nextPageLinksPerGroup":${JSON.stringify(Object.fromEntries(extra.groupPageLinks))}`;
  return `${s},"queryTimeMicros":${queryTimeMicros},"documentVersion":0,"documentUpdateTimeMicros":0,"documentExpirationTimeMicros":0,"documentOwner":${JSON.stringify(extra.owner)}`;
}
