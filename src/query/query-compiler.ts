import type Database from 'better-sqlite3';
import { fail } from '../core/errors.js';
import { BUILTIN_COLUMNS, INDEXED_STRING_CHARS, indexedPrefix, longStringHash, stringHead, wholeString } from '../store/schema.js';
import type { NumericRange, Query, QuerySpecification, QueryTerm } from './query-types.js';

/**
 * The query compiler: turns a validated Xenon Query into one SQL boolean expression over `docs d`
 * (built-in fields are columns, user fields are index lookups in `props`), and sort terms into
 * ORDER BY keys with a keyset-paging condition. It never reads the stored JSON.
 */

/** A piece of SQL with its positional parameters, in order. */
export interface SqlFragment {
  sql: string;
  params: unknown[];
}

/** One ORDER BY key. `expr` may contain `?` placeholders filled by `params`. */
export interface SortKey {
  expr: string;
  params: unknown[];
  desc: boolean;
  /** The sorted property ('' for the `d.id` tie-breaker). */
  name: string;
}

const NOTHING: SqlFragment = { sql: '0', params: [] };
const PHRASE_FUNCTION = 'krypton_phrase';
const NUMERIC_SORT_TYPES = new Set(['LONG', 'DOUBLE', 'DATE']);

/**
 * Compiles a validated query (see normalizeQuerySpec) into a WHERE expression over `docs d`, with
 * Lucene's boolean semantics (spec §8.3): top-level `booleanClauses` form one clause carrying the
 * top-level occurance (so a top-level MUST_NOT group matches nothing); a top-level single term
 * ignores its occurance.
 *
 * @example compileWhere({ occurance: 'MUST_OCCUR', term: { propertyName: 'name', matchValue: 'a', matchType: 'TERM' } })
 *   // → { sql: 'd.id IN (SELECT doc_id FROM props WHERE name = ? AND sval = ?)', params: ['name', 'a'] }
 */
export function compileWhere(query: Query): SqlFragment {
  if (query.booleanClauses) {
    return query.occurance === 'MUST_NOT_OCCUR' ? NOTHING : compileGroup(query.booleanClauses);
  }
  if (query.term) return compileTerm(query.term);
  return fail('INVALID_QUERY', 'One of term, booleanClauses must be provided');
}

function compileNode(query: Query): SqlFragment {
  if (query.booleanClauses) return compileGroup(query.booleanClauses);
  if (query.term) return compileTerm(query.term);
  return fail('INVALID_QUERY', 'One of term, booleanClauses must be provided');
}

/**
 * A Lucene BooleanQuery: every MUST matches, no MUST_NOT matches and, only when there is no MUST,
 * at least one SHOULD matches. A group without MUST or SHOULD clauses matches nothing.
 */
function compileGroup(clauses: readonly Query[]): SqlFragment {
  const must = clauses.filter((c) => c.occurance === 'MUST_OCCUR');
  const should = clauses.filter((c) => c.occurance === 'SHOULD_OCCUR');
  const mustNot = clauses.filter((c) => c.occurance === 'MUST_NOT_OCCUR');
  if (must.length === 0 && should.length === 0) return NOTHING;
  const parts: SqlFragment[] = [];
  for (const c of must) {
    const f = compileNode(c);
    if (f === NOTHING) return NOTHING;
    parts.push(f);
  }
  if (must.length === 0) {
    // With MUST clauses present SHOULD clauses only score in Lucene; they never filter.
    const any = compileAnyOf(should);
    if (any.length === 0) return NOTHING;
    parts.push(join(any, ' OR '));
  }
  for (const f of compileAnyOf(mustNot)) parts.push({ sql: `NOT ${f.sql}`, params: f.params });
  return join(parts, ' AND ');
}

/**
 * Fragments whose OR is "one of `clauses` matches" (occurances ignored). Exact terms on the same
 * field collapse into one `IN (…)` lookup, so large "any of these values/links" queries stay small.
 */
function compileAnyOf(clauses: readonly Query[]): SqlFragment[] {
  const exact = new Map<string, string[]>();
  const out: SqlFragment[] = [];
  for (const c of clauses) {
    const t = c.term;
    if (t && !t.range && (t.matchType ?? 'TERM') === 'TERM' && t.matchValue !== undefined) {
      exact.set(t.propertyName, [...(exact.get(t.propertyName) ?? []), t.matchValue]);
      continue;
    }
    const f = compileNode(c);
    if (f !== NOTHING) out.push(f);
  }
  for (const [name, values] of exact) {
    const f = values.length === 1 ? compileTerm({ propertyName: name, matchValue: values[0]!, matchType: 'TERM' }) : exactIn(name, values);
    if (f !== NOTHING) out.push(f);
  }
  return out;
}

function exactIn(name: string, values: readonly string[]): SqlFragment {
  const builtin = BUILTIN_COLUMNS[name];
  if (builtin) return builtin.numeric ? NOTHING : { sql: `(${builtin.column} IS NOT NULL AND ${oneOf(builtin.column, values)})`, params: [...values] };
  if (!isUserField(name)) return NOTHING;
  return propsLookup(name, PROPS_STRINGS.equals(values));
}

/** `col = ?` or `col IN (?, …)`. */
function oneOf(col: string, values: readonly unknown[]): string {
  return values.length === 1 ? `${col} = ?` : `${col} IN (${values.map(() => '?').join(', ')})`;
}

/**
 * Where a string field's values are, for the conditions of stringCondition: its whole text
 * (`whole`, an SQL expression), and conditions an index can serve: it equals one of some values, it
 * starts with a prefix.
 */
interface StringColumn {
  whole: string;
  /** The field has a string value (lets SQLite use an index whose rows all have one). */
  present: string;
  equals(values: readonly string[]): SqlFragment;
  prefix(prefix: string): SqlFragment;
}

/** A built-in field: a column of `docs`, always whole. */
function builtinStrings(col: string): StringColumn {
  return { whole: col, present: `${col} IS NOT NULL`, equals: (values) => ({ sql: oneOf(col, values), params: [...values] }), prefix: (p) => prefixCondition(col, p) };
}

const WHOLE_PROPS_STRING = `(${wholeString('props')})`;

/**
 * The string values of `props` (within `SELECT … FROM props WHERE name = ? AND …`): `sval` holds a
 * value whole, or the first INDEXED_STRING_CHARS of a long one whose text is in long_strings
 * (`long_id`, see schema.ts). Each condition first narrows by `sval` (the index) and reads a long
 * value's text only where the prefix cannot decide.
 */
const PROPS_STRINGS: StringColumn = {
  whole: WHOLE_PROPS_STRING,
  present: 'sval IS NOT NULL',
  equals(values) {
    const short = values.filter((v) => v.length <= INDEXED_STRING_CHARS);
    const long = values.filter((v) => v.length > INDEXED_STRING_CHARS);
    // A short value never equals a long one, whose prefix it may be.
    const parts: SqlFragment[] = [];
    if (short.length > 0) parts.push({ sql: `${oneOf('sval', short)} AND long_id IS NULL`, params: short });
    if (long.length > 0) {
      // The texts found by hash first: one set for every candidate row, however many share a prefix.
      const texts = `SELECT id FROM long_strings WHERE ${oneOf('hash', long)} AND ${oneOf('value', long)}`;
      parts.push({ sql: `${oneOf('sval', long)} AND long_id IN (${texts})`, params: [...long.map(indexedPrefix), ...long.map(longStringHash), ...long] });
    }
    return parts.length === 1 ? parts[0]! : { sql: `((${parts[0]!.sql}) OR (${parts[1]!.sql}))`, params: [...parts[0]!.params, ...parts[1]!.params] };
  },
  prefix(p) {
    // A long value's stored prefix is at least INDEXED_STRING_CHARS - 1 long, so a shorter prefix
    // is decided by `sval` alone.
    if (p.length < INDEXED_STRING_CHARS) return prefixCondition('sval', p);
    const narrow = prefixCondition('sval', stringHead(p, INDEXED_STRING_CHARS - 1));
    const exact = prefixCondition(WHOLE_PROPS_STRING, p);
    return { sql: `${narrow.sql} AND ${exact.sql}`, params: [...narrow.params, ...exact.params] };
  },
};

function isUserField(name: string): boolean {
  return !name.startsWith('document');
}

function compileTerm(term: QueryTerm): SqlFragment {
  const builtin = BUILTIN_COLUMNS[term.propertyName];
  if (builtin) return builtinTerm(term, builtin.column, builtin.numeric);
  // Other `document*` fields (documentOwner, documentEpoch, …) are not indexed.
  if (!isUserField(term.propertyName)) return NOTHING;
  if (term.range) return propsLookup(term.propertyName, rangeCondition('nval', term.range));
  // Numbers are indexed only as numbers (nval), so a string match never finds them (as in Xenon).
  const cond = stringCondition(PROPS_STRINGS, term);
  return cond === NOTHING ? NOTHING : propsLookup(term.propertyName, cond);
}

function builtinTerm(term: QueryTerm, column: string, numeric: boolean): SqlFragment {
  if (Boolean(term.range) !== numeric) return NOTHING;
  const cond = term.range ? rangeCondition(column, term.range) : stringCondition(builtinStrings(column), term);
  if (cond === NOTHING) return NOTHING;
  // IS NOT NULL keeps the expression two-valued, so NOT(...) of a missing value is true, as in Lucene.
  // Xenon indexes documentExpirationTimeMicros only when it is > 0.
  const guard = column === 'd.expiration' ? 'd.expiration > 0' : `${column} IS NOT NULL`;
  return { sql: `(${guard} AND ${cond.sql})`, params: cond.params };
}

/**
 * `d.id IN (…)`: the document has a field `name` holding one of `values` (whole strings). For
 * lookups outside queries (credentials by email, roles by group).
 */
export function hasStringField(name: string, values: readonly string[]): SqlFragment {
  return propsLookup(name, PROPS_STRINGS.equals(values));
}

/** `d.id IN (…)` over the props index for `name`; `cond` constrains sval or nval. */
function propsLookup(name: string, cond: SqlFragment): SqlFragment {
  return { sql: `d.id IN (SELECT doc_id FROM props WHERE name = ? AND ${cond.sql})`, params: [name, ...cond.params] };
}

function stringCondition(col: StringColumn, term: QueryTerm): SqlFragment {
  const value = term.matchValue ?? '';
  switch (term.matchType ?? 'TERM') {
    case 'PREFIX':
      return col.prefix(value);
    case 'WILDCARD':
      return wildcardCondition(col, value);
    case 'PHRASE':
      return { sql: `${col.present} AND ${PHRASE_FUNCTION}(${col.whole}, ?)`, params: [value] };
    default:
      return col.equals([value]);
  }
}

/** A prefix as an index range: `col >= p AND col < next(p)` (UTF-8 byte order = code point order). */
function prefixCondition(col: string, prefix: string): SqlFragment {
  const upper = prefixUpperBound(prefix);
  if (upper === undefined) return { sql: `${col} >= ?`, params: [prefix] };
  return { sql: `${col} >= ? AND ${col} < ?`, params: [prefix, upper] };
}

/** The smallest string greater than every string starting with `prefix`; undefined if none. */
export function prefixUpperBound(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      cps.push(String.fromCodePoint(next));
      return cps.join('');
    }
  }
  return undefined;
}

function wildcardCondition(col: StringColumn, pattern: string): SqlFragment {
  const w = wildcardToGlob(pattern);
  if (w.literal) return col.equals([w.prefix]);
  if (w.prefixOnly) return col.prefix(w.prefix);
  const glob: SqlFragment = { sql: `${col.present} AND ${col.whole} GLOB ?`, params: [w.glob] };
  if (w.prefix === '') return glob;
  // The literal prefix as a range lets SQLite use the index before testing the pattern.
  const range = col.prefix(w.prefix);
  return { sql: `${range.sql} AND ${glob.sql}`, params: [...range.params, ...glob.params] };
}

/**
 * Lucene wildcard syntax (`*` any sequence, `?` one character, `\` escapes the next character;
 * a trailing `\` is literal) as an SQLite GLOB pattern, where `*`, `?` and `[` are escaped as `[*]`.
 */
export function wildcardToGlob(pattern: string): { glob: string; prefix: string; literal: boolean; prefixOnly: boolean } {
  let glob = '';
  let prefix = '';
  let wildcards = 0;
  let endsWithStar = false;
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    let c = chars[i]!;
    endsWithStar = c === '*';
    if (c === '*' || c === '?') {
      glob += c;
      wildcards++;
      continue;
    }
    if (c === '\\' && i + 1 < chars.length) c = chars[++i]!;
    glob += c === '*' || c === '?' || c === '[' ? `[${c}]` : c;
    if (wildcards === 0) prefix += c;
  }
  return { glob, prefix, literal: wildcards === 0, prefixOnly: wildcards === 1 && endsWithStar };
}

/**
 * Numeric range. LONG and DATE bounds are truncated to integers (Java's longValue()) and exclusive
 * bounds become ±1, as Xenon's LongPoint range does; DOUBLE exclusive bounds are strict comparisons
 * (Xenon's nextUp / nextDown).
 */
function rangeCondition(col: string, range: NumericRange): SqlFragment {
  const conds: string[] = [];
  const params: unknown[] = [];
  const bound = (value: number | undefined, inclusive: boolean, op: '>' | '<'): void => {
    if (value === undefined) return;
    if (range.type === 'DOUBLE') {
      conds.push(`${col} ${op}${inclusive ? '=' : ''} ?`);
      params.push(value);
      return;
    }
    const whole = Math.trunc(value);
    conds.push(`${col} ${op}= ?`);
    params.push(inclusive ? whole : op === '>' ? whole + 1 : whole - 1);
  };
  bound(range.min, range.isMinInclusive, '>');
  bound(range.max, range.isMaxInclusive, '<');
  if (conds.length === 0) return { sql: `${col} IS NOT NULL`, params: [] };
  return { sql: conds.join(' AND '), params };
}

/** Joins with AND / OR as a balanced tree, so thousands of clauses stay within SQLite's depth limit. */
function join(parts: readonly SqlFragment[], op: ' AND ' | ' OR '): SqlFragment {
  if (parts.length === 0) return { sql: op === ' AND ' ? '1' : '0', params: [] };
  if (parts.length === 1) return parts[0]!;
  if (parts.length <= 8) return { sql: `(${parts.map((p) => p.sql).join(op)})`, params: parts.flatMap((p) => p.params) };
  const mid = Math.ceil(parts.length / 2);
  return join([join(parts.slice(0, mid), op), join(parts.slice(mid), op)], op);
}

// ---- sorting and keyset paging ----

/**
 * ORDER BY keys for `sortTerm` (with `sortOrder`) and `additionalSortTerms` (each with its own
 * `sortOrder`), always ending with the `d.id` tie-breaker so the order is total. Built-in fields
 * sort by their column; user fields by their (smallest) indexed value: `nval` for LONG, DOUBLE and
 * DATE sort terms, `sval` otherwise. Documents without the field sort first ascending, last descending.
 */
export function compileSort(spec: QuerySpecification): SortKey[] {
  const keys: SortKey[] = [];
  if (spec.sortTerm) keys.push(sortKey(spec.sortTerm, spec.sortOrder === 'DESC'));
  for (const t of spec.additionalSortTerms ?? []) keys.push(sortKey(t, t.sortOrder === 'DESC'));
  keys.push({ expr: 'd.id', params: [], desc: false, name: '' });
  return keys;
}

function sortKey(term: QueryTerm, desc: boolean): SortKey {
  const name = term.propertyName;
  const builtin = BUILTIN_COLUMNS[name];
  if (builtin) return { expr: builtin.column, params: [], desc, name };
  if (!isUserField(name)) return { expr: 'NULL', params: [], desc, name };
  const value = term.propertyType && NUMERIC_SORT_TYPES.has(term.propertyType) ? 'nval' : PROPS_STRINGS.whole;
  return { expr: `(SELECT min(${value}) FROM props WHERE doc_id = d.id AND name = ?)`, params: [name], desc, name };
}

/**
 * The keyset-paging condition "this row sorts strictly after the row whose key values are
 * `lastValues`" for `keys` (as compiled by compileSort; mixed ASC/DESC allowed). Follows SQLite's
 * ordering, where NULL sorts first ascending and last descending. Needs the tie-breaker key to be
 * unique, which `d.id` is.
 */
export function keysetCondition(keys: readonly SortKey[], lastValues: readonly unknown[]): SqlFragment {
  if (lastValues.length !== keys.length) throw new Error(`keyset cursor has ${lastValues.length} values for ${keys.length} sort keys`);
  const alternatives: SqlFragment[] = [];
  for (let i = 0; i < keys.length; i++) {
    const after = strictlyAfter(keys[i]!, lastValues[i]);
    if (!after) continue;
    const equal = keys.slice(0, i).map((k, j) => ({ sql: `${k.expr} IS ?`, params: [...k.params, normalize(lastValues[j])] }));
    alternatives.push(equal.length === 0 ? after : join([...equal, after], ' AND '));
  }
  if (alternatives.length === 0) return NOTHING;
  const any = alternatives.length === 1 ? alternatives[0]! : join(alternatives, ' OR ');
  const first = keys[0]!;
  const v0 = normalize(lastValues[0]);
  if (first.desc || v0 === null) return any;
  // A leading bound on the first key lets SQLite seek an index on it instead of scanning.
  return { sql: `(${first.expr} >= ? AND ${any.sql})`, params: [...first.params, v0, ...any.params] };
}

function strictlyAfter(key: SortKey, raw: unknown): SqlFragment | undefined {
  const v = normalize(raw);
  if (!key.desc) {
    if (v === null) return { sql: `${key.expr} IS NOT NULL`, params: key.params };
    return { sql: `${key.expr} > ?`, params: [...key.params, v] };
  }
  if (v === null) return undefined;
  return { sql: `(${key.expr} < ? OR ${key.expr} IS NULL)`, params: [...key.params, v, ...key.params] };
}

function normalize(v: unknown): unknown {
  return v === undefined ? null : v;
}

// ---- SQL functions ----

/**
 * Registers the SQL functions compiled queries use (`krypton_phrase`). The store calls this on
 * every connection it opens.
 */
export function registerQueryFunctions(db: Database.Database): void {
  db.function(PHRASE_FUNCTION, { deterministic: true }, (value: unknown, phrase: unknown) => (typeof value === 'string' && typeof phrase === 'string' && phraseMatches(value, phrase) ? 1 : 0));
}

let lastPhrase: { text: string; tokens: string[]; single: string | undefined } | undefined;

/**
 * PHRASE matching. `phrase` is split on non-word characters (`\W`, as Xenon does); it matches when
 * its tokens appear consecutively among the lowercased `\W` tokens of `value` (how a TEXT field
 * behaves; the comparison ignores case on both sides), or, for a one-token phrase, when `value`
 * equals that token exactly (how Xenon treats a phrase on a plain string field).
 */
export function phraseMatches(value: string, phrase: string): boolean {
  if (lastPhrase?.text !== phrase) {
    const raw = phrase.split(/\W+/).filter((t) => t !== '');
    lastPhrase = { text: phrase, tokens: raw.map((t) => t.toLowerCase()), single: raw.length === 1 ? raw[0] : undefined };
  }
  const wanted = lastPhrase.tokens;
  if (wanted.length === 0) return false;
  if (value === lastPhrase.single) return true;
  const have = tokenize(value);
  outer: for (let i = 0; i + wanted.length <= have.length; i++) {
    for (let j = 0; j < wanted.length; j++) if (have[i + j] !== wanted[j]) continue outer;
    return true;
  }
  return false;
}

function tokenize(text: string): string[] {
  return text
    .toLowerCase()
    .split(/\W+/)
    .filter((t) => t !== '');
}
