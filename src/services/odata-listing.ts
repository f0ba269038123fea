import { isBuiltinField } from '../core/document.js';
import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import { JsonStream, RawJson } from '../core/operation.js';
import type { StatefulServiceDefinition } from '../core/service-definition.js';
import { parseODataFilter, parseODataOrderBy } from '../query/odata-filter.js';
import { elapsedMicros, MAX_PAGE_BYTES, moreWithin, planQuery, readOn, resultEnd, resultJson, runPage, STREAM_BATCH, streamResultRows, type QueryPage } from '../query/query-engine.js';
import type { Query, QuerySpecification } from '../query/query-types.js';

function intParam(op: Operation, name: string): number | undefined {
  const v = op.query.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  // Xenon parses these as Java ints.
  if (!Number.isInteger(n) || n < 0 || n > 2147483647) fail('INVALID_QUERY', `${name} must be an integer from 0 to 2147483647: ${v}`);
  return n;
}

/**
 * Xenon sorts by the property's declared type; ours comes from the service's schema. A service with
 * a schema refuses a name that is neither one of its properties nor a built-in field (Xenon's 400).
 */
function sortType(def: StatefulServiceDefinition, name: string, requested: string | undefined): 'STRING' | 'LONG' | 'DOUBLE' {
  if (['documentVersion', 'documentUpdateTimeMicros', 'documentExpirationTimeMicros'].includes(name)) return 'LONG';
  const props = (def.schema as { properties?: Record<string, { type?: string }> } | undefined)?.properties;
  if (props && !isBuiltinField(name) && !Object.hasOwn(props, name.split('.')[0]!)) fail('INVALID_QUERY', `Sort term is not a valid property: ${name}`);
  const t = props?.[name]?.type;
  if (t === 'integer') return 'LONG';
  if (t === 'number') return 'DOUBLE';
  if (t === undefined && (requested === 'LONG' || requested === 'DOUBLE')) return requested;
  return 'STRING';
}

/**
 * Factory GET with OData parameters (Xenon §5.3): a direct query restricted to the child kind and
 * the factory's link prefix, answered as an ODataFactoryQueryResult (`totalCount` first). An answer
 * of more than STREAM_BATCH documents, or of more than MAX_PAGE_BYTES of them, is streamed
 * (streamResultRows); its `totalCount` then comes
 * last unless `$count=true` asked for it, which counts first.
 */
export async function odataFactoryQuery(host: Host, def: StatefulServiceDefinition, op: Operation): Promise<Reply> {
  const clauses: Query[] = [
    { occurance: 'MUST_OCCUR', term: { propertyName: 'documentKind', matchValue: def.documentKind, matchType: 'TERM' } },
    { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: `${def.factoryLink}/`, matchType: 'PREFIX' } },
  ];
  const filter = op.query.get('$filter');
  // The filter keeps its own occurance: `name ne x` is a MUST_NOT clause (Xenon's FactoryService).
  if (filter) clauses.push(parseODataFilter(filter));
  // `$limit=0` does not page (Xenon pages only for a limit above 0).
  const limit = intParam(op, '$limit') || undefined;
  const top = intParam(op, '$top');
  const skip = intParam(op, '$skip') ?? 0;
  if (limit !== undefined && top !== undefined) fail('INVALID_QUERY', '$top cannot be used together with $limit');
  const count = op.query.get('$count') === 'true';
  const select = op.query.get('$select');
  const expand = op.query.has('$expand') || (count && limit !== undefined) || select !== undefined;
  const spec: QuerySpecification = { query: { occurance: 'MUST_OCCUR', booleanClauses: clauses }, options: [] };
  if (expand) spec.options!.push(select ? 'EXPAND_SELECTED_FIELDS' : 'EXPAND_CONTENT');
  if (select) spec.selectTerms = select.split(',').map((s) => ({ propertyName: s.trim() }));
  const orderby = op.query.get('$orderby');
  if (orderby) {
    const o = parseODataOrderBy(orderby);
    spec.options!.push('SORT');
    spec.sortTerm = { propertyName: o.propertyName, propertyType: sortType(def, o.propertyName, op.query.get('$orderbytype')) };
    spec.sortOrder = o.order;
  }
  const plan = { ...planQuery(spec), readScope: op.authz?.readScope };
  // One snapshot for the count, the first batch and (when it streams) the rest: all agree.
  const snapshot = await host.store.snapshot();
  let streaming = false;
  try {
    const countAll = () => readOn(host, snapshot, (reader) => runPage(host, { ...plan, spec: { ...spec, options: ['COUNT'] } }, 0, undefined, 0, reader));
    if (count && limit === undefined) {
      const n = await countAll();
      return { status: 200, body: new RawJson(resultJson({ ...n, links: [], documents: undefined }, { owner: host.id, totalCount: n.count })) };
    }
    const started = performance.now();
    const pageSize = limit ?? top ?? 2147483646;
    // The first batch ends early at MAX_PAGE_BYTES of documents: a `$limit` page then has a next
    // page link, any other answer (`$top` too) is streamed on after it. Built whole, `$top=5000`
    // over 700 documents of 1 MB failed (500, "Invalid string length": V8's limit is 512 MB).
    const first = await readOn(host, snapshot, (reader) => runPage(host, plan, Math.min(pageSize, STREAM_BATCH), undefined, skip, reader, MAX_PAGE_BYTES));
    const total = count ? (await countAll()).count : undefined;
    // The rest of a `$limit` query: a page link in the factory's form (`?path=…&peer=…`). The page
    // answered here is registered too, so the second page has a `prevPageLink` as in Xenon.
    const nextLink = (after: unknown[] | undefined): string | undefined => {
      if (limit === undefined || !after) return undefined;
      const pages = host.queryPages;
      const firstId = pages.open({ ...plan }, limit, host.clock.nowMicros() + host.options.queryTaskExpirationMicros, spec, skip);
      const id = pages.follow(firstId, pages.entry(firstId), after);
      return `${def.factoryLink}?path=${id}&peer=${host.id}`;
    };
    // Whole: all rows are in (none follow, or the first batch holds `$top` of them), or a `$limit` page.
    if (!moreWithin(first, pageSize) || (limit !== undefined && pageSize <= STREAM_BATCH)) {
      return { status: 200, body: new RawJson(resultJson(first, { owner: host.id, totalCount: total ?? first.count, nextPageLink: nextLink(first.after) })) };
    }
    streaming = true;
    return { status: 200, body: new JsonStream(streamed(first, { started, pageSize, total, nextLink })) };
  } finally {
    if (!streaming) snapshot.release();
  }

  async function* streamed(
    page: QueryPage,
    o: { started: number; pageSize: number; total: number | undefined; nextLink: (after: unknown[] | undefined) => string | undefined },
  ): AsyncGenerator<string> {
    yield o.total === undefined ? '{' : `{"totalCount":${o.total},`;
    yield* streamResultRows(host, plan, o.pageSize, { first: page, offset: skip, snapshot, paged: limit !== undefined }, (n, cursor) => {
      const end = resultEnd(n, elapsedMicros(o.started), { owner: host.id, nextPageLink: o.nextLink(cursor) });
      return `,${end}${o.total === undefined ? `,"totalCount":${n}` : ''}}`;
    });
  }
}
