import { fail } from '../core/errors.js';
import type { NumericRange, Occurance, Query, QueryTerm } from './query-types.js';

/**
 * Xenon's OData `$filter` subset (spec §5.3; Xenon's ODataTokenizer + ODataQueryVisitor) and
 * `$orderby` parsing. The result is a Xenon Query tree, compiled like any client query.
 */

export interface ODataFilterOptions {
  /**
   * Searchable property names of the queried type. When given, the property name `ALL_FIELDS`
   * expands (for `eq`, `ne`, `any`, `all` with a non-numeric value) to an OR over these fields.
   */
  allFields?: readonly string[];
}

type TokenKind = 'open' | 'close' | 'symbol' | 'cmp' | 'op' | 'value';
interface Token {
  kind: TokenKind;
  text: string;
  pos: number;
}

type Comparison = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'any' | 'all';

const COMPARISON = /^(eq|ne|lt|gt|le|ge|any|all) /;
const BOOLEAN_OP = /^(and|or) /;
const BARE_LITERAL = /^(?:\p{L}|[0-9]|[-._~%!$&*+;:@])+/u;
/** What Java's Double.parseDouble accepts (the visitor's "is it a number" test). */
const JAVA_DOUBLE = /^[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?|0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?\d+[fFdD]?)$/;
const LONG_MAX = 2n ** 63n - 1n;

/**
 * Parses a `$filter` expression into a Query, reproducing Xenon's observable behaviour:
 * - `<property> <op> <value>` with op ∈ eq ne lt le gt ge any all; `and` / `or`; parentheses.
 *   Like Xenon, `and` and `or` have equal precedence and group to the right:
 *   `a and b or c` is `a and (b or c)`. Parentheses group as written (Xenon's token walker
 *   mis-groups a chain inside parentheses followed by an operator, e.g. `(a and b and c) or d`;
 *   that is not copied). A stray `)` or trailing tokens are a 400 (Xenon silently ignored them).
 * - `/` in bare literals becomes `.` (`a/b` ≡ `a.b`); quoted values keep it and lose every `'`.
 * - A value containing `*` is a WILDCARD term; an unquoted number is a range (LONG, or DOUBLE when
 *   it has a `.`): eq [v,v], lt [min,v), le [min,v], gt (v,max], ge [v,max], where a DOUBLE `min` is
 *   Double.MIN_VALUE (so `x lt 5.5` excludes zero and negatives). `ne` with a number is a 400.
 * - `ne` is MUST_NOT; `and` of two negations is `not (a or b)`, `or` of two is `not (a and b)`.
 * - `any` / `all` take a `;`-separated list: SHOULD (any) or MUST (all) clauses in a group.
 *
 * The returned query's own `occurance` matters: callers should add it as a clause of their query
 * (as Xenon does), since a top-level single term ignores its occurance.
 * Syntax errors are 400s (`Unknown character: …`, `Term mismatch …`, `undetermined string …`).
 *
 * @example parseODataFilter("name eq 'a*' and counter gt 5")
 */
export function parseODataFilter(text: string, options: ODataFilterOptions = {}): Query {
  const tokens = tokenize(text);
  if (tokens.length === 0) fail('INVALID_QUERY', '$filter is required');
  const parser = new Parser(tokens, text, options);
  return parser.parseAll();
}

/**
 * Parses `$orderby` like Xenon: the value must contain `desc` or `asc` (a substring test, checked
 * in that order; every occurrence of the found word is removed, then `+`, spaces and `0x20`).
 */
export function parseODataOrderBy(value: string): { propertyName: string; order: 'ASC' | 'DESC' } {
  let rest: string;
  let order: 'ASC' | 'DESC';
  if (value.includes('desc')) {
    order = 'DESC';
    rest = value.replaceAll('desc', '');
  } else if (value.includes('asc')) {
    order = 'ASC';
    rest = value.replaceAll('asc', '');
  } else {
    return fail('INVALID_QUERY', `invalid expression: ${value}`);
  }
  const propertyName = rest.trim().replaceAll('+', '').replaceAll(' ', '').replaceAll('0x20', '');
  if (propertyName === '') fail('INVALID_QUERY', `invalid expression: ${value}`);
  return { propertyName, order };
}

// ---- tokenizer ----

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  while (pos < expr.length) {
    const c = expr[pos]!;
    if (c === ' ') {
      pos++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c === '(' ? 'open' : 'close', text: c, pos });
      pos++;
    } else if (c === "'") {
      const end = quotedEnd(expr, pos);
      tokens.push({ kind: 'value', text: expr.slice(pos, end), pos });
      pos = end;
    } else if (c === ',' || c === '=' || c === '?') {
      tokens.push({ kind: 'symbol', text: c, pos });
      pos++;
    } else {
      const token = wordAt(expr, pos);
      tokens.push(token);
      pos += token.text.length;
    }
  }
  return tokens;
}

/** End (exclusive) of a quoted literal starting at `start`; `''` inside does not end it. */
function quotedEnd(expr: string, start: number): number {
  let closed = false;
  let i = start + 1;
  for (; i < expr.length; i++) {
    if (expr[i] !== "'") {
      if (closed) break;
    } else {
      closed = !closed;
    }
  }
  if (!closed) fail('INVALID_QUERY', `undetermined string ${expr}`);
  return i;
}

function wordAt(expr: string, pos: number): Token {
  const rest = expr.slice(pos);
  const cmp = COMPARISON.exec(rest);
  if (cmp) return { kind: 'cmp', text: cmp[1]!, pos };
  const op = BOOLEAN_OP.exec(rest);
  if (op) return { kind: 'op', text: op[1]!, pos };
  // Xenon converts `/` to `.` in bare literals (nested property separator), values included.
  const literal = BARE_LITERAL.exec(rest.replaceAll('/', '.'));
  if (literal) return { kind: 'value', text: literal[0], pos };
  return fail('INVALID_QUERY', `Unknown character: ${pos} ${expr[pos]} ${expr}`);
}

// ---- parser ----

/** Parenthesized groups inside one another, at most (as query nesting: see query-validator.ts). */
const MAX_GROUP_DEPTH = 100;

class Parser {
  private i = 0;

  constructor(
    private readonly tokens: readonly Token[],
    private readonly expr: string,
    private readonly options: ODataFilterOptions,
  ) {}

  parseAll(): Query {
    const q = this.expression(0);
    const extra = this.tokens[this.i];
    if (extra) this.mismatch(extra);
    return q;
  }

  /**
   * expression := operand [ (and|or) expression ] — right-grouping, no precedence (as Xenon). Read
   * as a list and folded from the right, so a long chain does not recurse once per operand.
   */
  private expression(depth: number): Query {
    const operands = [this.operand(depth)];
    const ops: Array<'and' | 'or'> = [];
    for (let op = this.tokens[this.i]; op?.kind === 'op'; op = this.tokens[this.i]) {
      this.i++;
      ops.push(op.text as 'and' | 'or');
      operands.push(this.operand(depth));
    }
    let q = operands.pop()!;
    while (operands.length > 0) q = combine(operands.pop()!, ops.pop()!, q);
    return q;
  }

  private operand(depth: number): Query {
    const t = this.tokens[this.i];
    if (t?.kind !== 'open') return this.comparison();
    if (depth >= MAX_GROUP_DEPTH) fail('INVALID_QUERY', `$filter nests parentheses deeper than ${MAX_GROUP_DEPTH} levels`);
    this.i++;
    const inner = this.expression(depth + 1);
    const close = this.tokens[this.i];
    if (close?.kind === 'close') this.i++;
    // Xenon accepts a group left open at the end of the expression.
    else if (close) this.mismatch(close);
    return inner;
  }

  private comparison(): Query {
    const [left, cmp, right] = [this.tokens[this.i], this.tokens[this.i + 1], this.tokens[this.i + 2]];
    if (left?.kind !== 'value') return this.mismatch(left);
    if (cmp?.kind !== 'cmp') return this.mismatch(cmp);
    if (right?.kind !== 'value') return this.mismatch(right);
    this.i += 3;
    return this.compare(unquote(left.text), cmp.text as Comparison, right.text);
  }

  private compare(property: string, op: Comparison, value: string): Query {
    const all = this.options.allFields;
    if (property === 'ALL_FIELDS' && all && ['eq', 'ne', 'any', 'all'].includes(op) && !isJavaDouble(value)) {
      const clauses = all.map((name) => ({ ...compare(name, op, value), occurance: 'SHOULD_OCCUR' as const }));
      return { occurance: occuranceOf(op), booleanClauses: clauses };
    }
    return compare(property, op, value);
  }

  private mismatch(t: Token | undefined): never {
    const where = t ? ` at position ${t.pos}: '${t.text}'` : ' at end of expression';
    return fail('INVALID_QUERY', `Term mismatch${where} in ${this.expr}`);
  }
}

function occuranceOf(op: Comparison): Occurance {
  return op === 'ne' ? 'MUST_NOT_OCCUR' : 'MUST_OCCUR';
}

/** One comparison as Xenon's visitor builds it. `value` is the raw token (quotes included). */
function compare(property: string, op: Comparison, value: string): Query {
  if (op === 'any' || op === 'all') return collectionMatch(property, op, value);
  const term: QueryTerm = { propertyName: property };
  if (property.includes('*')) term.matchType = 'WILDCARD';
  if (isJavaDouble(value)) {
    if (op === 'ne') fail('INVALID_QUERY', `ne is not supported with a numeric value: ${property} ne ${value}`);
    term.range = numericRange(value, op);
  } else {
    term.matchValue = unquote(value);
    if (value.includes('*')) term.matchType = 'WILDCARD';
  }
  return { occurance: occuranceOf(op), term };
}

function collectionMatch(property: string, op: 'any' | 'all', value: string): Query {
  const occurance: Occurance = op === 'any' ? 'SHOULD_OCCUR' : 'MUST_OCCUR';
  const clauses: Query[] = [];
  for (const item of value.split(';')) {
    const matchValue = unquote(item).trim();
    if (matchValue === '') continue;
    const term: QueryTerm = { propertyName: property, matchValue };
    if (item.includes('*')) term.matchType = 'WILDCARD';
    clauses.push({ occurance, term });
  }
  if (clauses.length === 0) fail('INVALID_QUERY', `${op} needs at least one value: ${property} ${op} ${value}`);
  return { occurance: 'MUST_OCCUR', booleanClauses: clauses };
}

/** Xenon's `and` / `or`: occurances are rewritten, two negations become one negated group. */
function combine(left: Query, op: 'and' | 'or', right: Query): Query {
  const plain: Occurance = op === 'and' ? 'MUST_OCCUR' : 'SHOULD_OCCUR';
  const l = left.occurance === 'MUST_NOT_OCCUR' ? left : { ...left, occurance: plain };
  const r = right.occurance === 'MUST_NOT_OCCUR' ? right : { ...right, occurance: plain };
  if (l.occurance === 'MUST_NOT_OCCUR' && r.occurance === 'MUST_NOT_OCCUR') {
    const inner: Occurance = op === 'and' ? 'SHOULD_OCCUR' : 'MUST_OCCUR';
    return {
      occurance: 'MUST_NOT_OCCUR',
      booleanClauses: [
        { ...l, occurance: inner },
        { ...r, occurance: inner },
      ],
    };
  }
  return { occurance: 'MUST_OCCUR', booleanClauses: [l, r] };
}

function isJavaDouble(raw: string): boolean {
  return JAVA_DOUBLE.test(raw);
}

/**
 * Xenon's createRange: with a `.` the number is a DOUBLE, else it must parse as a Java long.
 * Open LONG bounds (Long.MIN_VALUE / Long.MAX_VALUE in Xenon) are left out: same matches, and the
 * echoed spec stays within what a JSON number can carry exactly.
 */
function numericRange(raw: string, op: Exclude<Comparison, 'ne' | 'any' | 'all'>): NumericRange {
  const isDouble = raw.includes('.');
  const v = isDouble ? parseJavaDouble(raw) : parseJavaLong(raw);
  const range: NumericRange = { type: isDouble ? 'DOUBLE' : 'LONG', isMinInclusive: true, isMaxInclusive: true, precisionStep: 16 };
  const openMin = isDouble ? Number.MIN_VALUE : undefined;
  const openMax = isDouble ? Number.MAX_VALUE : undefined;
  const [min, max] = op === 'eq' ? [v, v] : op === 'lt' || op === 'le' ? [openMin, v] : [v, openMax];
  if (min !== undefined) range.min = min;
  if (max !== undefined) range.max = max;
  if (op === 'lt') range.isMaxInclusive = false;
  if (op === 'gt') range.isMinInclusive = false;
  return range;
}

function parseJavaDouble(raw: string): number {
  const n = Number(raw.replace(/[fFdD]$/, ''));
  if (!Number.isFinite(n)) fail('INVALID_QUERY', `For input string: "${raw}"`);
  return n;
}

function parseJavaLong(raw: string): number {
  if (!/^[+-]?\d+$/.test(raw)) fail('INVALID_QUERY', `For input string: "${raw}"`);
  const big = BigInt(raw);
  if (big > LONG_MAX || big < -LONG_MAX - 1n) fail('INVALID_QUERY', `For input string: "${raw}"`);
  return Number(big);
}

/** Xenon removes every `'` from a value (so `''` inside a quoted value disappears too). */
function unquote(raw: string): string {
  return raw.replaceAll("'", '');
}
