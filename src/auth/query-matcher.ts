import type { Doc } from '../core/document.js';
import { indexFields } from '../query/field-indexer.js';
import { phraseMatches } from '../query/query-compiler.js';
import type { NumericRange, Query, QueryTerm } from '../query/query-types.js';
import { BUILTIN_COLUMNS } from '../store/schema.js';

/**
 * Evaluates a validated Xenon query against one document in memory, with exactly the semantics
 * of the SQL the query compiler produces (query-compiler.ts compileWhere): the same Lucene boolean
 * rules, the same indexed values (field-indexer.ts), the same built-in columns. Authorization uses
 * it for documents that are not in the index yet (a POST's new state) and for stubs; stored
 * documents are checked with the compiled SQL itself. test/auth-units.test.ts runs both over the
 * same documents and queries.
 */
export class DocumentView {
  private readonly strings = new Map<string, Set<string>>();
  private readonly numbers = new Map<string, number[]>();

  constructor(
    readonly doc: Doc,
    fixedItemNameFields: readonly string[] = [],
  ) {
    for (const f of indexFields(doc, { fixedItemNameFields })) {
      if (f.s !== null) {
        let set = this.strings.get(f.name);
        if (!set) {
          set = new Set();
          this.strings.set(f.name, set);
        }
        set.add(f.s);
      } else if (f.n !== null) {
        let list = this.numbers.get(f.name);
        if (!list) {
          list = [];
          this.numbers.set(f.name, list);
        }
        list.push(f.n);
      }
    }
  }

  stringValues(name: string): Iterable<string> {
    return this.strings.get(name) ?? [];
  }

  numberValues(name: string): readonly number[] {
    return this.numbers.get(name) ?? [];
  }
}

/** compileWhere's top level: a MUST_NOT group matches nothing; a single term ignores its occurance. */
export function matchesQuery(query: Query, view: DocumentView): boolean {
  if (query.booleanClauses) return query.occurance === 'MUST_NOT_OCCUR' ? false : matchGroup(query.booleanClauses, view);
  if (query.term) return matchTerm(query.term, view);
  return false;
}

function matchNode(query: Query, view: DocumentView): boolean {
  if (query.booleanClauses) return matchGroup(query.booleanClauses, view);
  if (query.term) return matchTerm(query.term, view);
  return false;
}

/** Lucene: every MUST, no MUST_NOT, and — only when there is no MUST — at least one SHOULD. */
function matchGroup(clauses: readonly Query[], view: DocumentView): boolean {
  const must = clauses.filter((c) => c.occurance === 'MUST_OCCUR');
  const should = clauses.filter((c) => c.occurance === 'SHOULD_OCCUR');
  if (must.length === 0 && should.length === 0) return false;
  if (!must.every((c) => matchNode(c, view))) return false;
  if (must.length === 0 && !should.some((c) => matchNode(c, view))) return false;
  return !clauses.some((c) => c.occurance === 'MUST_NOT_OCCUR' && matchNode(c, view));
}

function matchTerm(term: QueryTerm, view: DocumentView): boolean {
  const builtin = BUILTIN_COLUMNS[term.propertyName];
  if (builtin) {
    if (Boolean(term.range) !== builtin.numeric) return false;
    const value = view.doc[term.propertyName];
    if (builtin.numeric) {
      if (typeof value !== 'number') return false;
      if (term.propertyName === 'documentExpirationTimeMicros' && !(value > 0)) return false;
      return inRange(value, term.range!);
    }
    return typeof value === 'string' && matchString(value, term);
  }
  if (term.propertyName.startsWith('document')) return false;
  if (term.range) return view.numberValues(term.propertyName).some((n) => inRange(n, term.range!));
  for (const s of view.stringValues(term.propertyName)) if (matchString(s, term)) return true;
  return false;
}

function matchString(value: string, term: QueryTerm): boolean {
  const wanted = term.matchValue ?? '';
  switch (term.matchType ?? 'TERM') {
    case 'PREFIX':
      return value.startsWith(wanted);
    case 'WILDCARD':
      return wildcardRegex(wanted).test(value);
    case 'PHRASE':
      return phraseMatches(value, wanted);
    default:
      return value === wanted;
  }
}

const regexCache = new Map<string, RegExp>();

/** Lucene wildcards (`*`, `?`, `\` escapes) as an anchored regex; GLOB's `*` spans newlines too. */
function wildcardRegex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (re) return re;
  let src = '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    let c = chars[i]!;
    if (c === '*') src += '.*';
    else if (c === '?') src += '.';
    else {
      if (c === '\\' && i + 1 < chars.length) c = chars[++i]!;
      src += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  re = new RegExp(`^${src}$`, 'su');
  if (regexCache.size > 1000) regexCache.clear();
  regexCache.set(pattern, re);
  return re;
}

/** The compiler's rangeCondition: LONG/DATE bounds truncated; exclusive unless flagged. */
function inRange(n: number, range: NumericRange): boolean {
  const whole = range.type !== 'DOUBLE';
  if (range.min !== undefined) {
    const min = whole ? Math.trunc(range.min) : range.min;
    if (range.isMinInclusive ? n < min : n <= min) return false;
  }
  if (range.max !== undefined) {
    const max = whole ? Math.trunc(range.max) : range.max;
    if (range.isMaxInclusive ? n > max : n >= max) return false;
  }
  return true;
}
