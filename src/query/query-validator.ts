import { fail } from '../core/errors.js';
import {
  MATCH_TYPES,
  OCCURANCES,
  QUERY_OPTIONS,
  RANGE_TYPES,
  SORT_ORDERS,
  TYPE_NAMES,
  type NumericRange,
  type Query,
  type QueryOption,
  type QuerySpecification,
  type QueryTerm,
  type RangeType,
} from './query-types.js';

/** Where a spec is being validated; lets the validator apply the rules that depend on the task. */
export interface NormalizeContext {
  /** The spec belongs to a direct task (`taskInfo.isDirect`): CONTINUOUS options are refused. */
  isDirect?: boolean;
}

const MAX_INT = 2147483647;
const MAX_DEPTH = 100;
/** Terms in one query, at most: each becomes SQL parameters, and SQLite takes at most 32,766 per statement. */
const MAX_TERMS = 10_000;
type Raw = Record<string, unknown>;

/**
 * Validates a client-sent `querySpec` and returns a clean copy with Xenon's defaults filled in
 * (`occurance` MUST_OCCUR, `matchType` TERM, `sortOrder` ASC, `precisionStep` 16, options deduplicated
 * in declaration order). Accepts Gson-style lenient values ("5" for 5, "true" for true).
 * Every problem is a 400 KryptonError (INVALID_QUERY) with Xenon's message where Xenon has one.
 *
 * @example normalizeQuerySpec({ query: { term: { propertyName: 'name', matchValue: 'a' } } })
 *   // → { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'name', matchValue: 'a', matchType: 'TERM' } }, options: [] }
 */
export function normalizeQuerySpec(raw: unknown, context: NormalizeContext = {}): QuerySpecification {
  const src = asObject(raw, 'querySpec');
  const options = normalizeOptions(src['options']);
  if (src['query'] === null) fail('INVALID_QUERY', 'querySpec.query is required');
  const spec: QuerySpecification = {};
  const terms = readTerms(src);
  const numbers = readNumbers(src);
  checkOptionCombinations(options, terms, numbers, context);
  spec.query = normalizeQuery(src['query'] ?? {}, 0, { terms: 0 });
  Object.assign(spec, terms);
  const sortOrder = enumValue(src['sortOrder'], SORT_ORDERS, 'sortOrder');
  const groupSortOrder = enumValue(src['groupSortOrder'], SORT_ORDERS, 'groupSortOrder');
  if (sortOrder !== undefined || spec.sortTerm) spec.sortOrder = sortOrder ?? 'ASC';
  if (groupSortOrder !== undefined || spec.groupSortTerm) spec.groupSortOrder = groupSortOrder ?? 'ASC';
  const { timeSnapshotBoundaryMicros, ...counts } = numbers;
  Object.assign(spec, counts);
  spec.options = options;
  // Gson's field order: options come before timeSnapshotBoundaryMicros.
  if (timeSnapshotBoundaryMicros !== undefined) spec.timeSnapshotBoundaryMicros = timeSnapshotBoundaryMicros;
  checkSorting(spec, options);
  // After Xenon's own checks (TOP_RESULTS has its message): Lucene would fail on these later.
  if (spec.resultLimit !== undefined && spec.resultLimit <= 0) fail('INVALID_QUERY', `querySpec.resultLimit must be a positive integer: ${spec.resultLimit}`);
  if (spec.offset !== undefined && spec.offset < 0) fail('INVALID_QUERY', `querySpec.offset must not be negative: ${spec.offset}`);
  return spec;
}

type SpecTerms = Pick<QuerySpecification, 'linkTerms' | 'selectTerms' | 'sortTerm' | 'groupSortTerm' | 'additionalSortTerms' | 'additionalGroupSortTerms' | 'groupByTerm'>;
type SpecNumbers = Pick<QuerySpecification, 'resultLimit' | 'groupResultLimit' | 'offset' | 'expectedResultCount' | 'timeSnapshotBoundaryMicros'>;

function readTerms(src: Raw): SpecTerms {
  const out: SpecTerms = {};
  const linkTerms = termList(src['linkTerms'], 'querySpec.linkTerms', false);
  if (linkTerms) out.linkTerms = linkTerms;
  const selectTerms = termList(src['selectTerms'], 'querySpec.selectTerms', false);
  if (selectTerms) out.selectTerms = selectTerms;
  if (src['sortTerm'] != null) out.sortTerm = sortTerm(src['sortTerm'], 'querySpec.sortTerm', false);
  if (src['groupSortTerm'] != null) out.groupSortTerm = sortTerm(src['groupSortTerm'], 'querySpec.groupSortTerm', false);
  const additional = termList(src['additionalSortTerms'], 'querySpec.additionalSortTerms', true);
  if (additional) out.additionalSortTerms = additional;
  const additionalGroup = termList(src['additionalGroupSortTerms'], 'querySpec.additionalGroupSortTerms', true);
  if (additionalGroup) out.additionalGroupSortTerms = additionalGroup;
  if (src['groupByTerm'] != null) out.groupByTerm = plainTerm(src['groupByTerm'], 'querySpec.groupByTerm');
  return out;
}

function readNumbers(src: Raw): SpecNumbers {
  const out: SpecNumbers = {};
  const fields = ['resultLimit', 'groupResultLimit', 'offset', 'expectedResultCount', 'timeSnapshotBoundaryMicros'] as const;
  for (const f of fields) {
    const v = integer(src[f], `querySpec.${f}`);
    if (v !== undefined) out[f] = v;
  }
  return out;
}

function normalizeOptions(raw: unknown): QueryOption[] {
  if (raw == null) return [];
  if (!Array.isArray(raw)) fail('INVALID_QUERY', 'querySpec.options must be an array of option names');
  const seen = new Set<QueryOption>();
  for (const o of raw) {
    if (typeof o !== 'string' || !(QUERY_OPTIONS as readonly string[]).includes(o)) {
      fail('INVALID_QUERY', `Unknown query option: ${describe(o)}`);
    }
    seen.add(o as QueryOption);
  }
  return QUERY_OPTIONS.filter((o) => seen.has(o));
}

/** Xenon's QueryTaskService.validateState rules, in its order. */
function checkOptionCombinations(options: QueryOption[], terms: SpecTerms, numbers: SpecNumbers, context: NormalizeContext): void {
  const has = (o: QueryOption): boolean => options.includes(o);
  const notWith = (a: QueryOption, b: QueryOption): void => {
    if (has(a) && has(b)) fail('INVALID_QUERY', `${a} is not compatible with ${b}`);
  };
  notWith('EXPAND_CONTENT', 'COUNT');
  notWith('EXPAND_BINARY_CONTENT', 'COUNT');
  // Every krypton client is remote: the binary form exists only inside a Java process.
  if (has('EXPAND_BINARY_CONTENT')) fail('INVALID_QUERY', 'EXPAND_BINARY_CONTENT is not allowed for remote clients.');
  if (has('EXPAND_LINKS') && !has('SELECT_LINKS')) fail('INVALID_QUERY', 'Must be combined with SELECT_LINKS');
  if (has('GROUP_BY')) {
    notWith('GROUP_BY', 'COUNT');
    notWith('GROUP_BY', 'CONTINUOUS');
    if (!terms.groupByTerm) fail('INVALID_QUERY', 'querySpec.groupByTerm is required with GROUP_BY');
    if (!terms.sortTerm) fail('INVALID_QUERY', 'querySpec.sortTerm is required with GROUP_BY');
    // krypton orders groups by their value (Xenon: by the group's first document under groupSortTerm).
    if (terms.groupSortTerm && terms.groupSortTerm.propertyName !== terms.groupByTerm.propertyName) {
      fail('INVALID_QUERY', `krypton orders groups by their value: querySpec.groupSortTerm must name the groupByTerm (${terms.groupByTerm.propertyName}), not ${terms.groupSortTerm.propertyName}`);
    }
  }
  if (has('SELECT_LINKS')) {
    notWith('SELECT_LINKS', 'COUNT');
    notWith('SELECT_LINKS', 'CONTINUOUS');
    if (!terms.linkTerms?.length) fail('INVALID_QUERY', 'querySpec.linkTerms must have at least one entry');
  }
  if (has('EXPAND_SELECTED_FIELDS')) {
    notWith('EXPAND_SELECTED_FIELDS', 'EXPAND_CONTENT');
    if (!terms.selectTerms?.length) fail('INVALID_QUERY', 'querySpec.fieldTerms must have at least one entry');
  }
  notWith('READ_AFTER_WRITE_CONSISTENCY', 'COUNT');
  for (const o of ['CONTINUOUS', 'CONTINUOUS_STOP_MATCH'] as const) {
    if (context.isDirect && has(o)) fail('INVALID_QUERY', `direct query task is not compatible with ${o}`);
  }
  if (has('BROADCAST') && terms.sortTerm && terms.sortTerm.propertyName !== 'documentSelfLink') {
    fail('INVALID_QUERY', 'BROADCAST only supports sorting on [documentSelfLink]');
  }
  if (has('TIME_SNAPSHOT') && numbers.timeSnapshotBoundaryMicros === undefined) {
    fail('INVALID_QUERY', 'TIME_SNAPSHOT will return latest versions of documents only if querySpec.timeSnapshotBoundaryMicros is provided');
  }
  if (!has('TIME_SNAPSHOT') && numbers.timeSnapshotBoundaryMicros !== undefined) {
    fail(
      'INVALID_QUERY',
      'Either enable TIME_SNAPSHOT for retreiving latest versions of documents, for the given querySpec.timeSnapshotBoundaryMicros or do not provide querySpec.timeSnapshotBoundaryMicros',
    );
  }
  // Valid in Xenon, not implemented here: a 400 rather than an answer that ignores them.
  for (const o of UNSUPPORTED_OPTIONS) if (has(o)) fail('INVALID_QUERY', `${o} is not supported by krypton`);
  if (numbers.expectedResultCount !== undefined && numbers.expectedResultCount < 0) fail('INVALID_QUERY', 'querySpec.expectedResultCount must not be negative');
}

/** Xenon options krypton does not implement (see README, Queries). */
const UNSUPPORTED_OPTIONS: readonly QueryOption[] = ['CONTINUOUS_STOP_MATCH'];

function checkSorting(spec: QuerySpecification, options: QueryOption[]): void {
  if (options.includes('SORT') && !spec.sortTerm) fail('INVALID_QUERY', 'querySpec.sortTerm is required with SORT');
  if (spec.sortTerm && options.includes('TOP_RESULTS')) {
    const limit = spec.resultLimit;
    if (limit === undefined || limit <= 0 || limit >= MAX_INT) {
      fail('INVALID_QUERY', 'resultLimit should be a positive integer less than MAX_VALUE');
    }
  }
}

/** Validates one query node and its subtree (LuceneQueryConverter's checks). */
function normalizeQuery(raw: unknown, depth: number, seen: { terms: number }): Query {
  if (depth > MAX_DEPTH) fail('INVALID_QUERY', `query nesting is deeper than ${MAX_DEPTH} levels`);
  const src = asObject(raw, 'query');
  const q: Query = { occurance: enumValue(src['occurance'], OCCURANCES, 'occurance') ?? 'MUST_OCCUR' };
  const clauses = src['booleanClauses'];
  if (clauses != null) {
    if (src['term'] != null) fail('INVALID_QUERY', 'term and booleanClauses are mutually exclusive');
    if (!Array.isArray(clauses)) fail('INVALID_QUERY', 'booleanClauses must be an array of queries');
    q.booleanClauses = clauses.map((c) => normalizeQuery(c, depth + 1, seen));
    return q;
  }
  if (src['term'] == null) fail('INVALID_QUERY', 'One of term, booleanClauses must be provided');
  if (++seen.terms > MAX_TERMS) fail('INVALID_QUERY', `the query has more than ${MAX_TERMS} terms; split it into several queries`);
  q.term = queryTerm(src['term']);
  return q;
}

function queryTerm(raw: unknown): QueryTerm {
  const src = asObject(raw, 'term');
  const matchValue = text(src['matchValue'], 'term.matchValue');
  const hasRange = src['range'] != null;
  if (!hasRange && matchValue === undefined) fail('INVALID_QUERY', 'One of term.matchValue, term.range is required');
  if (hasRange && matchValue !== undefined) fail('INVALID_QUERY', 'term.matchValue and term.range are exclusive of each other');
  const name = text(src['propertyName'], 'term.propertyName');
  if (name === undefined) fail('INVALID_QUERY', 'term.propertyName is required');
  const term: QueryTerm = { propertyName: name };
  const type = enumValue(src['propertyType'], TYPE_NAMES, 'propertyType');
  if (type !== undefined) term.propertyType = type;
  if (matchValue !== undefined) term.matchValue = matchValue;
  term.matchType = enumValue(src['matchType'], MATCH_TYPES, 'matchType') ?? 'TERM';
  if (hasRange) term.range = numericRange(src['range']);
  const order = enumValue(src['sortOrder'], SORT_ORDERS, 'sortOrder');
  if (order !== undefined) term.sortOrder = order;
  return term;
}

function numericRange(raw: unknown): NumericRange {
  const src = asObject(raw, 'term.range');
  const min = number(src['min'], 'range.min');
  const max = number(src['max'], 'range.max');
  if (min === undefined && max === undefined) fail('INVALID_QUERY', 'max and min can not both be null');
  if (min !== undefined && max !== undefined && max < min) fail('INVALID_QUERY', 'max must be greater than min');
  const type = enumValue(src['type'], TYPE_NAMES, 'range type');
  if (type === undefined) fail('INVALID_QUERY', 'type must be specified');
  if (!(RANGE_TYPES as readonly string[]).includes(type)) fail('INVALID_QUERY', `Type is not supported:${type}`);
  const range: NumericRange = { type: type as RangeType, isMinInclusive: false, isMaxInclusive: false, precisionStep: 16 };
  if (min !== undefined) range.min = min;
  if (max !== undefined) range.max = max;
  range.isMinInclusive = bool(src['isMinInclusive'], 'range.isMinInclusive');
  range.isMaxInclusive = bool(src['isMaxInclusive'], 'range.isMaxInclusive');
  range.precisionStep = integer(src['precisionStep'], 'range.precisionStep') ?? 16;
  return range;
}

/** A term that names a property (link, select, group-by terms). */
function plainTerm(raw: unknown, what: string): QueryTerm {
  const src = asObject(raw, what);
  const name = text(src['propertyName'], `${what}.propertyName`);
  if (name === undefined) fail('INVALID_QUERY', 'term.propertyName is required');
  const term: QueryTerm = { propertyName: name };
  const type = enumValue(src['propertyType'], TYPE_NAMES, 'propertyType');
  if (type !== undefined) term.propertyType = type;
  return term;
}

/** A sort term: Xenon's validateSortTerm (propertyType first, then propertyName). */
function sortTerm(raw: unknown, what: string, withOrder: boolean): QueryTerm {
  const src = asObject(raw, what);
  const type = enumValue(src['propertyType'], TYPE_NAMES, 'propertyType');
  if (type === undefined) fail('INVALID_QUERY', 'term.propertyType is required');
  const name = text(src['propertyName'], `${what}.propertyName`);
  if (name === undefined) fail('INVALID_QUERY', 'term.propertyName is required');
  const term: QueryTerm = { propertyName: name, propertyType: type };
  const order = enumValue(src['sortOrder'], SORT_ORDERS, 'sortOrder');
  if (withOrder || order !== undefined) term.sortOrder = order ?? 'ASC';
  return term;
}

function termList(raw: unknown, what: string, sort: boolean): QueryTerm[] | undefined {
  if (raw == null) return undefined;
  if (!Array.isArray(raw)) fail('INVALID_QUERY', `${what} must be an array of terms`);
  return raw.map((t, i) => (sort ? sortTerm(t, `${what}[${i}]`, true) : plainTerm(t, `${what}[${i}]`)));
}

// ---- lenient scalar readers (Gson accepts strings for numbers and booleans) ----

function asObject(v: unknown, what: string): Raw {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('INVALID_QUERY', `${what} must be a JSON object`);
  return v as Raw;
}

function enumValue<T extends string>(v: unknown, allowed: readonly T[], what: string): T | undefined {
  if (v == null) return undefined;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  return fail('INVALID_QUERY', `Unknown ${what}: ${describe(v)} (expected one of ${allowed.join(', ')})`);
}

function text(v: unknown, what: string): string | undefined {
  if (v == null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return fail('INVALID_QUERY', `${what} must be a string`);
}

function number(v: unknown, what: string): number | undefined {
  if (v == null) return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return fail('INVALID_QUERY', `${what} must be a number: ${describe(v)}`);
}

function integer(v: unknown, what: string): number | undefined {
  const n = number(v, what);
  if (n !== undefined && !Number.isInteger(n)) fail('INVALID_QUERY', `${what} must be an integer: ${describe(v)}`);
  return n;
}

function bool(v: unknown, what: string): boolean {
  if (v == null) return false;
  if (typeof v === 'boolean') return v;
  // Gson reads a string for a boolean with Boolean.parseBoolean: only "true" (any case) is true.
  if (typeof v === 'string') return v.toLowerCase() === 'true';
  return fail('INVALID_QUERY', `${what} must be a boolean: ${describe(v)}`);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
