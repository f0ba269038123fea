import { fail } from '../core/errors.js';
import type { Host } from '../core/host.js';
import type { Operation, Reply } from '../core/operation.js';
import { RawJson } from '../core/operation.js';
import type { StatefulServiceDefinition } from '../core/service-definition.js';
import { parseODataFilter, parseODataOrderBy } from '../query/odata-filter.js';
import { planQuery, resultJson, runPage } from '../query/query-engine.js';
import type { Query, QuerySpecification } from '../query/query-types.js';

function intParam(op: Operation, name: string): number | undefined {
  const v = op.query.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  // Xenon parses these as Java ints.
  if (!Number.isInteger(n) || n < 0 || n > 2147483647) fail('INVALID_QUERY', `${name} must be an integer from 0 to 2147483647: ${v}`);
  return n;
}

/** Xenon sorts by the property's declared type; ours comes from the service's schema. */
function sortType(def: StatefulServiceDefinition, name: string, requested: string | undefined): 'STRING' | 'LONG' | 'DOUBLE' {
  if (['documentVersion', 'documentUpdateTimeMicros', 'documentExpirationTimeMicros'].includes(name)) return 'LONG';
  const props = (def.schema as { properties?: Record<string, { type?: string }> } | undefined)?.properties;
  const t = props?.[name]?.type;
  if (t === 'integer') return 'LONG';
  if (t === 'number') return 'DOUBLE';
  if (t === undefined && (requested === 'LONG' || requested === 'DOUBLE')) return requested;
  return 'STRING';
}

/**
 * Factory GET with OData parameters (Xenon §5.3): a direct query restricted to the child kind and
 * the factory's link prefix, answered as an ODataFactoryQueryResult (`totalCount` first).
 */
export function odataFactoryQuery(host: Host, def: StatefulServiceDefinition, op: Operation): Reply {
  const clauses: Query[] = [
    { occurance: 'MUST_OCCUR', term: { propertyName: 'documentKind', matchValue: def.documentKind, matchType: 'TERM' } },
    { occurance: 'MUST_OCCUR', term: { propertyName: 'documentSelfLink', matchValue: `${def.factoryLink}/`, matchType: 'PREFIX' } },
  ];
  const filter = op.query.get('$filter');
  if (filter) clauses.push({ ...parseODataFilter(filter), occurance: 'MUST_OCCUR' });
  const limit = intParam(op, '$limit');
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
  if (count && limit === undefined) {
    const n = runPage(host, { ...plan, spec: { ...spec, options: ['COUNT'] } }, 0, undefined);
    return { status: 200, body: new RawJson(resultJson({ ...n, links: [], documents: undefined }, { owner: host.id, totalCount: n.count })) };
  }
  const pageSize = limit ?? top ?? 2147483646;
  const page = runPage(host, plan, pageSize, undefined, skip);
  let next: string | undefined;
  if (limit !== undefined && page.after) {
    const pages = host.queryPages;
    const restPlan = { ...plan };
    next = `${def.factoryLink}?path=${pages.open(restPlan, limit, host.clock.nowMicros() + host.options.queryTaskExpirationMicros, spec)}&peer=${host.id}`;
    pages.seek(next.split('path=')[1]!.split('&')[0]!, page.after);
  }
  let total = page.count;
  if (count) total = runPage(host, { ...plan, spec: { ...spec, options: ['COUNT'] } }, 0, undefined).count;
  return { status: 200, body: new RawJson(resultJson(page, { owner: host.id, totalCount: total, nextPageLink: next })) };
}
