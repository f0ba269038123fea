import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import { INDEXED_STRING_CHARS } from '../src/store/schema.js';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { indexFields, MAX_INDEXED_FIELDS } from '../src/query/field-indexer.js';
import { compileSort, compileWhere, keysetCondition, phraseMatches, prefixUpperBound, wildcardToGlob, type SortKey } from '../src/query/query-compiler.js';
import { normalizeQuerySpec } from '../src/query/query-validator.js';
import type { QuerySpecification } from '../src/query/query-types.js';

const EX = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';
const OTHER = 'com:example:Other';

interface Row {
  link: string;
  kind?: string | null;
  version?: number;
  updateTime?: number;
  expiration?: number;
  authPrincipal?: string | null;
  body: Record<string, unknown>;
}

/** An in-memory index written by the store's own write path (a row per document version). */
function openDb(rows: Row[]): Database.Database {
  const store = SqliteStore.open(':memory:');
  store.applyTransaction(() => {
    rows.forEach((r, i) => {
      const factory = r.link.slice(0, r.link.lastIndexOf('/'));
      const kind = r.kind === undefined ? EX : r.kind;
      const v = {
        link: r.link,
        factory,
        version: r.version ?? 0,
        kind,
        updateTime: r.updateTime ?? 1000 + i,
        action: 'POST',
        expiration: r.expiration ?? 0,
        owner: 'host',
        authPrincipal: r.authPrincipal ?? null,
        json: JSON.stringify(r.body),
      };
      store.write(v, indexFields(r.body, { fixedItemNameFields: ['keyValues'] }), undefined, true);
    });
  });
  return store.db;
}

const ROWS: Row[] = [
  {
    link: '/core/examples/a1',
    version: 3,
    authPrincipal: '/core/authz/users/joe',
    body: {
      name: 'alpha',
      counter: 5,
      flag: true,
      price: 1.5,
      tags: ['red', 'blue'],
      keyValues: { k1: 'v1', k2: 'v2' },
      nested: { inner: { deep: 'x' }, n: 7 },
      items: [{ sub: 's1' }, { sub: 's2' }],
      description: 'The quick brown fox',
    },
  },
  { link: '/core/examples/a2', version: 1, body: { name: 'alpha2', counter: 10, flag: false, price: -2.5, tags: ['red'], keyValues: { k1: 'other' }, description: 'quick brown' } },
  { link: '/core/examples/b1', expiration: 5_000, body: { name: 'beta', counter: 0, tags: ['green'], description: 'Brown quick fox' } },
  { link: '/core/examples/s1', body: { name: 'star*[x]?', counter: -3 } },
  { link: '/core/other/o1', kind: OTHER, body: { name: 'Alpha', counter: 5.5 } },
];

let db: Database.Database;

/** Links matched by a (client-style) query, validated first like the service does. */
function match(query: unknown): string[] {
  const spec = normalizeQuerySpec({ query });
  const where = compileWhere(spec.query!);
  const rows = db.prepare(`SELECT d.link FROM docs d WHERE ${where.sql} ORDER BY d.link`).all(...where.params) as { link: string }[];
  return rows.map((r) => r.link.split('/').pop()!);
}

const term = (propertyName: string, matchValue: string, matchType?: string, occurance?: string): Record<string, unknown> => ({
  ...(occurance ? { occurance } : {}),
  term: { propertyName, matchValue, ...(matchType ? { matchType } : {}) },
});
const range = (propertyName: string, r: Record<string, unknown>, occurance?: string): Record<string, unknown> => ({
  ...(occurance ? { occurance } : {}),
  term: { propertyName, range: { type: 'LONG', ...r } },
});
const group = (occurance: string | undefined, ...booleanClauses: unknown[]): Record<string, unknown> => ({ ...(occurance ? { occurance } : {}), booleanClauses });

describe('query compiler: match types', () => {
  before(() => {
    db = openDb(ROWS);
  });

  it('TERM is exact and case-sensitive', () => {
    assert.deepEqual(match(term('name', 'alpha')), ['a1']);
    assert.deepEqual(match(term('name', 'Alpha')), ['o1']);
    assert.deepEqual(match(term('name', 'alph')), []);
  });

  it('TERM on a numeric field matches nothing; booleans match as "true"/"false"', () => {
    assert.deepEqual(match(term('counter', '5')), []);
    assert.deepEqual(match(term('flag', 'true')), ['a1']);
    assert.deepEqual(match(term('flag', 'false')), ['a2']);
  });

  it('PREFIX uses the term start; documentSelfLink PREFIX / matches everything', () => {
    assert.deepEqual(match(term('name', 'alpha', 'PREFIX')), ['a1', 'a2']);
    assert.deepEqual(match(term('name', 'alpha2', 'PREFIX')), ['a2']);
    assert.deepEqual(match(term('name', 'b', 'PREFIX')), ['b1']);
    assert.deepEqual(match(term('documentSelfLink', '/', 'PREFIX')), ['a1', 'a2', 'b1', 's1', 'o1']);
    assert.deepEqual(match(term('documentSelfLink', '/core/examples/', 'PREFIX')), ['a1', 'a2', 'b1', 's1']);
  });

  it('WILDCARD supports * and ?, escapes, and GLOB metacharacters as literals', () => {
    assert.deepEqual(match(term('name', 'al*a', 'WILDCARD')), ['a1']);
    assert.deepEqual(match(term('name', 'alpha?', 'WILDCARD')), ['a2']);
    assert.deepEqual(match(term('name', '*ta', 'WILDCARD')), ['b1']);
    assert.deepEqual(match(term('name', '*[x]*', 'WILDCARD')), ['s1']);
    assert.deepEqual(match(term('name', 'star\\*\\[x]\\?', 'WILDCARD')), ['s1']);
    assert.deepEqual(match(term('name', 'star\\*x*', 'WILDCARD')), []);
    assert.deepEqual(match(term('name', 'beta', 'WILDCARD')), ['b1']);
    assert.deepEqual(match(term('documentSelfLink', '*', 'WILDCARD')), ['a1', 'a2', 'b1', 's1', 'o1']);
    assert.deepEqual(match(term('documentSelfLink', '/core/*/a?', 'WILDCARD')), ['a1', 'a2']);
  });

  it('PHRASE matches consecutive tokens, and a one-token phrase exactly', () => {
    assert.deepEqual(match(term('description', 'quick brown', 'PHRASE')), ['a1', 'a2']);
    assert.deepEqual(match(term('description', 'brown fox', 'PHRASE')), ['a1']);
    assert.deepEqual(match(term('description', 'quick fox', 'PHRASE')), ['b1']);
    assert.deepEqual(match(term('description', 'fox brown', 'PHRASE')), []);
    assert.deepEqual(match(term('name', 'star', 'PHRASE')), ['s1']);
    assert.deepEqual(match(term('name', 'alpha2', 'PHRASE')), ['a2']);
  });

  it('numeric ranges honour inclusive and exclusive bounds', () => {
    assert.deepEqual(match(range('counter', { min: 5, max: 10, isMinInclusive: true, isMaxInclusive: true })), ['a1', 'a2', 'o1']);
    assert.deepEqual(match(range('counter', { min: 5, max: 10 })), [], 'LONG (5,10) is [6,9]');
    assert.deepEqual(match(range('counter', { min: 4, max: 11 })), ['a1', 'a2', 'o1']);
    assert.deepEqual(match(range('counter', { min: 5, max: 10, isMaxInclusive: true })), ['a2']);
    assert.deepEqual(match(range('counter', { min: 5, max: 10, isMinInclusive: true })), ['a1', 'o1']);
    assert.deepEqual(match(range('counter', { max: 0 })), ['s1']);
    assert.deepEqual(match(range('counter', { max: 0, isMaxInclusive: true })), ['b1', 's1']);
    assert.deepEqual(match(range('counter', { min: '5', max: '5', isMinInclusive: 'true', isMaxInclusive: 'true' })), ['a1']);
  });

  it('LONG bounds are truncated like Java longValue(); DOUBLE bounds are not', () => {
    assert.deepEqual(match(range('counter', { min: 5.9, isMinInclusive: true })), ['a1', 'a2', 'o1']);
    assert.deepEqual(match({ term: { propertyName: 'counter', range: { type: 'DOUBLE', min: 5.2, isMinInclusive: true } } }), ['a2', 'o1']);
    assert.deepEqual(match({ term: { propertyName: 'price', range: { type: 'DOUBLE', min: -3, max: 0 } } }), ['a2']);
  });

  it('a range on a string field matches nothing', () => {
    assert.deepEqual(match(range('name', { min: 0, max: 100 })), []);
  });

  it('built-in fields use their columns', () => {
    assert.deepEqual(match(term('documentKind', OTHER)), ['o1']);
    assert.deepEqual(match(term('documentSelfLink', '/core/examples/b1')), ['b1']);
    assert.deepEqual(match(range('documentVersion', { min: 1, isMinInclusive: true })), ['a1', 'a2']);
    assert.deepEqual(match(term('documentVersion', '3')), [], 'numeric built-ins never match a TERM');
    assert.deepEqual(match(range('documentUpdateTimeMicros', { min: 1001, max: 1002, isMinInclusive: true, isMaxInclusive: true })), ['a2', 'b1']);
    assert.deepEqual(match({ term: { propertyName: 'documentUpdateTimeMicros', range: { type: 'DATE', max: 1000, isMaxInclusive: true } } }), ['a1']);
    assert.deepEqual(match(range('documentExpirationTimeMicros', { min: 0, isMinInclusive: true })), ['b1'], 'only expirations > 0 are indexed');
    assert.deepEqual(match(term('documentOwner', 'host')), [], 'documentOwner is not indexed');
  });

  it('nested properties and collection items', () => {
    assert.deepEqual(match(term('nested.inner.deep', 'x')), ['a1']);
    assert.deepEqual(match(range('nested.n', { min: 7, max: 7, isMinInclusive: true, isMaxInclusive: true })), ['a1']);
    assert.deepEqual(match(term('tags.item', 'red')), ['a1', 'a2']);
    assert.deepEqual(match(term('tags.item', 'blue')), ['a1']);
    assert.deepEqual(match(term('items.item.sub', 's2')), ['a1']);
    assert.deepEqual(match(term('keyValues.k1', 'v1')), ['a1']);
    assert.deepEqual(match(term('keyValues', 'k2')), ['a1'], 'FIXED_ITEM_NAME: keys');
    assert.deepEqual(match(term('keyValues', 'other')), ['a2'], 'FIXED_ITEM_NAME: values');
    assert.deepEqual(match(term('keyValues', 'k1')), ['a1', 'a2']);
  });
});

describe('query compiler: boolean semantics', () => {
  before(() => {
    db = openDb(ROWS);
  });

  it('MUST + MUST_NOT', () => {
    assert.deepEqual(match(group(undefined, term('documentKind', EX), term('name', 'alpha', undefined, 'MUST_NOT_OCCUR'))), ['a2', 'b1', 's1']);
  });

  it('a group of only MUST_NOT clauses matches nothing, at any depth', () => {
    assert.deepEqual(match(group(undefined, term('name', 'alpha', undefined, 'MUST_NOT_OCCUR'))), []);
    assert.deepEqual(match(group(undefined, term('name', 'alpha', undefined, 'MUST_NOT_OCCUR'), term('name', 'beta', undefined, 'MUST_NOT_OCCUR'))), []);
    const nested = group(undefined, term('documentKind', EX), group('MUST_OCCUR', term('name', 'beta', undefined, 'MUST_NOT_OCCUR')));
    assert.deepEqual(match(nested), []);
  });

  it('SHOULD-only groups need one SHOULD; with a MUST, SHOULD clauses do not filter', () => {
    assert.deepEqual(match(group(undefined, term('name', 'alpha', undefined, 'SHOULD_OCCUR'), term('name', 'beta', undefined, 'SHOULD_OCCUR'))), ['a1', 'b1']);
    assert.deepEqual(match(group(undefined, term('tags.item', 'red'), term('name', 'beta', undefined, 'SHOULD_OCCUR'))), ['a1', 'a2']);
    const shouldAndNot = group(
      undefined,
      term('tags.item', 'red', undefined, 'SHOULD_OCCUR'),
      term('tags.item', 'green', undefined, 'SHOULD_OCCUR'),
      term('name', 'beta', undefined, 'MUST_NOT_OCCUR'),
    );
    assert.deepEqual(match(shouldAndNot), ['a1', 'a2']);
    const mixedShould = group(undefined, term('name', 'alpha', undefined, 'SHOULD_OCCUR'), range('counter', { max: 0 }, 'SHOULD_OCCUR'), term('name', 'beta', undefined, 'SHOULD_OCCUR'));
    assert.deepEqual(match(mixedShould), ['a1', 'b1', 's1']);
  });

  it('top level: a MUST_NOT group matches nothing, a single term ignores its occurance, SHOULD acts as MUST', () => {
    assert.deepEqual(match(group('MUST_NOT_OCCUR', term('name', 'alpha'))), []);
    assert.deepEqual(match(term('name', 'alpha', undefined, 'MUST_NOT_OCCUR')), ['a1']);
    assert.deepEqual(match(group('SHOULD_OCCUR', term('tags.item', 'red'), term('flag', 'true'))), ['a1']);
  });

  it('nests to any depth, each clause applying its own occurance', () => {
    // kind = EX AND (name = alpha OR (tags has red AND NOT flag = true)) AND NOT name = beta
    const q = group(
      undefined,
      term('documentKind', EX),
      group('MUST_OCCUR', term('name', 'alpha', undefined, 'SHOULD_OCCUR'), group('SHOULD_OCCUR', term('tags.item', 'red'), term('flag', 'true', undefined, 'MUST_NOT_OCCUR'))),
      group('MUST_NOT_OCCUR', term('name', 'beta', undefined, 'SHOULD_OCCUR')),
    );
    assert.deepEqual(match(q), ['a1', 'a2']);
    const deeper = group(undefined, group(undefined, group(undefined, group(undefined, term('nested.inner.deep', 'x')))));
    assert.deepEqual(match(deeper), ['a1']);
  });

  it('MUST_NOT on a missing built-in value keeps the document (Lucene: absent term never matches)', () => {
    const q = group(undefined, term('documentKind', EX), term('documentAuthPrincipalLink', '/core/authz/users/joe', undefined, 'MUST_NOT_OCCUR'));
    assert.deepEqual(match(q), ['a2', 'b1', 's1']);
  });

  it('large clause lists compile within SQLite limits (IN lists, balanced trees)', () => {
    const links = Array.from({ length: 3000 }, (_, i) => `/core/examples/none-${i}`).concat('/core/examples/b1', '/core/other/o1');
    assert.deepEqual(match(group(undefined, ...links.map((l) => term('documentSelfLink', l, undefined, 'SHOULD_OCCUR')))), ['b1', 'o1']);
    const names = ['alpha', 'beta', ...Array.from({ length: 2000 }, (_, i) => `n${i}`)];
    assert.deepEqual(match(group(undefined, term('documentKind', EX), ...names.map((n) => term('name', n, undefined, 'MUST_NOT_OCCUR')))), ['a2', 's1']);
    const prefixes = [...Array.from({ length: 2000 }, (_, i) => `zz${i}`), 'bet'];
    assert.deepEqual(match(group(undefined, ...prefixes.map((p) => term('name', p, 'PREFIX', 'SHOULD_OCCUR')))), ['b1']);
    const musts = Array.from({ length: 1500 }, () => term('tags.item', 'red', 'WILDCARD'));
    assert.deepEqual(match(group(undefined, ...musts)), ['a1', 'a2']);
  });

  it('an empty clause list matches nothing', () => {
    assert.deepEqual(match(group(undefined)), []);
  });

  it('term queries on a field use the props indexes', () => {
    const plan = (q: unknown): string => {
      const w = compileWhere(normalizeQuerySpec({ query: q }).query!);
      const rows = db.prepare(`EXPLAIN QUERY PLAN SELECT d.link FROM docs d WHERE ${w.sql}`).all(...w.params) as { detail: string }[];
      return rows.map((r) => r.detail).join('\n');
    };
    assert.match(plan(term('name', 'alpha')), /USING COVERING INDEX props_by_string_2 \(name=\? AND sval=\?\)/);
    assert.match(plan(term('name', 'alp', 'PREFIX')), /USING COVERING INDEX props_by_string_2 \(name=\? AND sval>\? AND sval<\?\)/);
    assert.match(plan(term('name', 'al*a', 'WILDCARD')), /USING COVERING INDEX props_by_string_2 \(name=\? AND sval>\? AND sval<\?\)/);
    assert.match(plan(range('counter', { min: 1, max: 5 })), /USING COVERING INDEX props_by_number \(name=\? AND nval>\? AND nval<\?\)/);
    // SQLite ≥ 3.50 also bounds sval (IS NOT NULL) in the index search: either plan uses the index.
    assert.match(plan(term('description', 'quick brown', 'PHRASE')), /props_by_string_2 \(name=\?( AND sval>\?)?\)/);
    assert.match(plan(term('name', 'alpha')), /SEARCH d USING INTEGER PRIMARY KEY/);
  });
});

describe('query compiler: sorting and keyset paging', () => {
  const N = 40;
  const groups = ['b', 'a', 'c', undefined];
  const rows: Row[] = Array.from({ length: N }, (_, i) => {
    const body: Record<string, unknown> = { n: i };
    const g = groups[i % 4];
    if (g !== undefined) body['grp'] = g;
    if (i % 5 !== 0) body['score'] = i % 3;
    return { link: `/core/examples/p${String(i).padStart(2, '0')}`, body };
  });
  let sdb: Database.Database;
  before(() => {
    sdb = openDb(rows);
  });

  function page(keys: SortKey[], limit: number, after: unknown[] | undefined): { links: string[]; after: unknown[] | undefined } {
    const where = after ? keysetCondition(keys, after) : { sql: '1', params: [] };
    const cols = keys.map((k, i) => `${k.expr} AS k${i}`).join(', ');
    const order = keys.map((k) => `${k.expr} ${k.desc ? 'DESC' : 'ASC'}`).join(', ');
    const sql = `SELECT d.link, ${cols} FROM docs d WHERE ${where.sql} ORDER BY ${order} LIMIT ?`;
    const params = [...keys.flatMap((k) => k.params), ...where.params, ...keys.flatMap((k) => k.params), limit];
    const got = sdb.prepare(sql).all(...params) as Record<string, unknown>[];
    const last = got[got.length - 1];
    return { links: got.map((r) => r['link'] as string), after: got.length === limit && last ? keys.map((_, i) => last[`k${i}`]) : undefined };
  }

  function allPages(spec: QuerySpecification, limit: number): string[] {
    const keys = compileSort(spec);
    const out: string[] = [];
    let after: unknown[] | undefined;
    for (let guard = 0; guard < 100; guard++) {
      const p = page(keys, limit, after);
      out.push(...p.links);
      if (!p.after) break;
      after = p.after;
    }
    return out;
  }

  type Val = string | number | undefined;
  const cmp = (a: Val, b: Val, desc: boolean): number => {
    if (a === b) return 0;
    // SQLite: NULL sorts first ascending (and therefore last descending).
    const r = a === undefined ? -1 : b === undefined ? 1 : a < b ? -1 : 1;
    return desc ? -r : r;
  };
  function expected(sortFns: Array<{ get: (r: Row) => Val; desc: boolean }>): string[] {
    const withId = rows.map((r, id) => ({ r, id }));
    withId.sort((x, y) => {
      for (const s of sortFns) {
        const c = cmp(s.get(x.r), s.get(y.r), s.desc);
        if (c !== 0) return c;
      }
      return x.id - y.id;
    });
    return withId.map((x) => x.r.link);
  }

  it('compileSort builds keys for the sort term, additional terms and the d.id tie-breaker', () => {
    const spec = normalizeQuerySpec({
      query: term('name', 'x'),
      sortTerm: { propertyName: 'grp', propertyType: 'STRING' },
      additionalSortTerms: [
        { propertyName: 'score', propertyType: 'LONG', sortOrder: 'DESC' },
        { propertyName: 'documentSelfLink', propertyType: 'STRING' },
      ],
    });
    const keys = compileSort(spec);
    assert.deepEqual(
      keys.map((k) => [k.name, k.desc]),
      [
        ['grp', false],
        ['score', true],
        ['documentSelfLink', false],
        ['', false],
      ],
    );
    assert.match(keys[0]!.expr, /SELECT min\(\(CASE WHEN props\.long_id IS NULL THEN props\.sval ELSE .*long_strings.*\)\) FROM props/);
    assert.match(keys[1]!.expr, /SELECT min\(nval\) FROM props/);
    assert.equal(keys[2]!.expr, 'd.link');
    assert.equal(keys[3]!.expr, 'd.id');
  });

  const specs: Array<[string, Record<string, unknown>, Array<{ get: (r: Row) => Val; desc: boolean }>]> = [
    [
      'string ASC (with missing values) then numeric DESC',
      {
        sortTerm: { propertyName: 'grp', propertyType: 'STRING' },
        sortOrder: 'ASC',
        additionalSortTerms: [{ propertyName: 'score', propertyType: 'LONG', sortOrder: 'DESC' }],
      },
      [
        { get: (r) => r.body['grp'] as Val, desc: false },
        { get: (r) => r.body['score'] as Val, desc: true },
      ],
    ],
    [
      'string DESC then numeric ASC',
      {
        sortTerm: { propertyName: 'grp', propertyType: 'STRING' },
        sortOrder: 'DESC',
        additionalSortTerms: [{ propertyName: 'score', propertyType: 'DOUBLE' }],
      },
      [
        { get: (r) => r.body['grp'] as Val, desc: true },
        { get: (r) => r.body['score'] as Val, desc: false },
      ],
    ],
    ['numeric DESC only (many ties)', { sortTerm: { propertyName: 'score', propertyType: 'LONG' }, sortOrder: 'DESC' }, [{ get: (r) => r.body['score'] as Val, desc: true }]],
    ['built-in column DESC', { sortTerm: { propertyName: 'documentSelfLink', propertyType: 'STRING' }, sortOrder: 'DESC' }, [{ get: (r) => r.link, desc: true }]],
  ];
  for (const [title, raw, sortFns] of specs) {
    it(`pages neither skip nor repeat rows: ${title}`, () => {
      const spec = normalizeQuerySpec({ query: term('name', 'x'), ...raw });
      const want = expected(sortFns);
      assert.equal(want.length, N);
      for (const size of [1, 3, 4, 7, N]) assert.deepEqual(allPages(spec, size), want, `page size ${size}`);
    });
  }

  it('keysetCondition handles NULL cursor values in both directions', () => {
    const asc: SortKey = { expr: 'x', params: [], desc: false, name: 'x' };
    const desc: SortKey = { expr: 'x', params: [], desc: true, name: 'x' };
    const id: SortKey = { expr: 'd.id', params: [], desc: false, name: '' };
    const ascNull = keysetCondition([asc, id], [null, 5]);
    assert.deepEqual(ascNull.params, [null, 5]);
    assert.match(ascNull.sql, /x IS NOT NULL/);
    const descNull = keysetCondition([desc, id], [null, 5]);
    assert.equal(descNull.sql, '(x IS ? AND d.id > ?)');
    assert.throws(() => keysetCondition([asc, id], [1]), /keyset cursor/);
  });
});

describe('query compiler: long string values (stored by a prefix and their whole text)', () => {
  // Format 2 keeps the first INDEXED_STRING_CHARS of a longer string in the index rows; every
  // condition must still be decided on the whole value.
  const L = INDEXED_STRING_CHARS;
  const head = 'lorem ipsum dolor '.repeat(20).slice(0, L); // exactly L characters
  const values: Record<string, string> = {
    l1: `${head}x: the alpha tail words`,
    l2: `${head}y: the beta tail words`,
    l3: head, // a short value: exactly the stored prefix of l1 and l2
    l4: `${head.slice(0, L - 1)}\u{1f600} emoji across the limit`, // the prefix would split a surrogate pair
    l5: `${head}x: the alpha tail words and more`,
  };
  // l2 is written first: an index that compared only prefixes would order l2 before l1.
  const rows: Row[] = ['l2', 'l1', 'l3', 'l4', 'l5'].map((id) => ({ link: `/core/examples/${id}`, body: { name: values[id], keyValues: { k: values[id] }, tags: [values[id], 'short'] } }));
  rows.push({ link: '/core/examples/s1', body: { name: 'short', tags: ['short'] } });
  before(() => {
    db = openDb(rows);
  });

  it('stores a long value once a version, by its prefix in the index rows', () => {
    const longRows = db.prepare('SELECT count(*) AS n FROM long_strings').get() as { n: number };
    assert.equal(longRows.n, 4, 'l1, l2, l4, l5 each once although name, keyValues.k, keyValues and tags.item hold it');
    const widest = db.prepare('SELECT max(length(sval)) AS n FROM props').get() as { n: number };
    assert.ok(widest.n <= L, `index rows hold at most ${L} characters (got ${widest.n})`);
  });

  it('TERM matches the whole value, never a value its prefix equals', () => {
    assert.deepEqual(match(term('name', values['l1']!)), ['l1']);
    assert.deepEqual(match(term('name', values['l3']!)), ['l3']);
    assert.deepEqual(match(term('name', values['l4']!)), ['l4']);
    assert.deepEqual(match(term('name', `${head}x: the alpha tail`)), []);
    assert.deepEqual(match(term('tags.item', values['l2']!)), ['l2']);
    assert.deepEqual(match(term('keyValues.k', values['l5']!)), ['l5']);
    assert.deepEqual(match(term('keyValues', values['l5']!)), ['l5'], 'FIXED_ITEM_NAME values');
    assert.deepEqual(
      match(group(undefined, term('name', values['l1']!, undefined, 'SHOULD_OCCUR'), term('name', values['l3']!, undefined, 'SHOULD_OCCUR'), term('name', 'short', undefined, 'SHOULD_OCCUR'))),
      ['l1', 'l3', 's1'],
      'long and short values in one IN',
    );
    assert.deepEqual(match(group(undefined, term('documentKind', EX), term('name', values['l2']!, undefined, 'MUST_NOT_OCCUR'))), ['l1', 'l3', 'l4', 'l5', 's1']);
  });

  it('PREFIX and WILDCARD look past the stored prefix', () => {
    assert.deepEqual(match(term('name', head.slice(0, 50), 'PREFIX')), ['l1', 'l2', 'l3', 'l4', 'l5']);
    assert.deepEqual(match(term('name', head, 'PREFIX')), ['l1', 'l2', 'l3', 'l5']);
    assert.deepEqual(match(term('name', `${head}x`, 'PREFIX')), ['l1', 'l5']);
    assert.deepEqual(match(term('name', `${head}x: the alpha tail words `, 'PREFIX')), ['l5']);
    assert.deepEqual(match(term('name', `${head.slice(0, L - 1)}\u{1f600}`, 'PREFIX')), ['l4']);
    assert.deepEqual(match(term('name', '*tail words', 'WILDCARD')), ['l1', 'l2']);
    assert.deepEqual(match(term('name', 'lorem*alpha*', 'WILDCARD')), ['l1', 'l5']);
    assert.deepEqual(match(term('name', `${head}?: the beta*`, 'WILDCARD')), ['l2']);
    assert.deepEqual(match(term('name', `${head}x*`, 'WILDCARD')), ['l1', 'l5']);
    assert.deepEqual(match(term('name', `${head}y: the beta tail words`, 'WILDCARD')), ['l2'], 'a pattern without wildcards is a TERM');
  });

  it('PHRASE reads the whole text', () => {
    assert.deepEqual(match(term('name', 'alpha tail', 'PHRASE')), ['l1', 'l5']);
    assert.deepEqual(match(term('name', 'emoji across', 'PHRASE')), ['l4']);
  });

  it('sorts by the whole value and pages through ties of the prefix', () => {
    const spec = normalizeQuerySpec({ query: term('documentKind', EX), sortTerm: { propertyName: 'name', propertyType: 'STRING' } });
    const keys = compileSort(spec);
    const where = compileWhere(spec.query!);
    const order = keys.map((k) => `${k.expr} ${k.desc ? 'DESC' : 'ASC'}`).join(', ');
    const cols = keys.map((k, i) => `${k.expr} AS k${i}`).join(', ');
    // Code point order: l3 is a prefix of l1, l2 and l5; the emoji sorts after ASCII; 'short' last.
    const want = ['l3', 'l1', 'l5', 'l2', 'l4', 's1'];
    const all = db
      .prepare(`SELECT d.link, ${cols} FROM docs d WHERE ${where.sql} ORDER BY ${order}`)
      .all(...keys.flatMap((k) => k.params), ...where.params, ...keys.flatMap((k) => k.params)) as Record<string, unknown>[];
    assert.deepEqual(
      all.map((r) => (r['link'] as string).split('/').pop()),
      want,
    );
    // One row a page, each page after the previous one's keys.
    const paged: string[] = [];
    let after: unknown[] | undefined;
    for (let i = 0; i < 10; i++) {
      const k = after ? keysetCondition(keys, after) : { sql: '1', params: [] };
      const row = db
        .prepare(`SELECT d.link, ${cols} FROM docs d WHERE ${where.sql} AND ${k.sql} ORDER BY ${order} LIMIT 1`)
        .get(...keys.flatMap((x) => x.params), ...where.params, ...k.params, ...keys.flatMap((x) => x.params)) as Record<string, unknown> | undefined;
      if (!row) break;
      paged.push((row['link'] as string).split('/').pop()!);
      after = keys.map((_, j) => row[`k${j}`]);
    }
    assert.deepEqual(paged, want);
  });
});

describe('helpers', () => {
  it('wildcardToGlob escapes GLOB metacharacters and finds the literal prefix', () => {
    assert.deepEqual(wildcardToGlob('ab*'), { glob: 'ab*', prefix: 'ab', literal: false, prefixOnly: true });
    assert.deepEqual(wildcardToGlob('a[b]*c?'), { glob: 'a[[]b]*c?', prefix: 'a[b]', literal: false, prefixOnly: false });
    assert.deepEqual(wildcardToGlob('a\\*b'), { glob: 'a[*]b', prefix: 'a*b', literal: true, prefixOnly: false });
    assert.deepEqual(wildcardToGlob('a\\'), { glob: 'a\\', prefix: 'a\\', literal: true, prefixOnly: false });
    assert.deepEqual(wildcardToGlob('ab\\*'), { glob: 'ab[*]', prefix: 'ab*', literal: true, prefixOnly: false });
  });

  it('prefixUpperBound increments the last code point', () => {
    assert.equal(prefixUpperBound('/'), '0');
    assert.equal(prefixUpperBound('ab'), 'ac');
    assert.equal(prefixUpperBound('a\u{10ffff}'), 'b');
    assert.equal(prefixUpperBound('\ud7ff'), '\ue000');
    assert.equal(prefixUpperBound(''), undefined);
  });

  it('phraseMatches', () => {
    assert.equal(phraseMatches('The Quick brown-fox', 'quick brown fox'), true);
    assert.equal(phraseMatches('The Quick brown-fox', 'brown quick'), false);
    assert.equal(phraseMatches('Hello', 'Hello!'), true);
    assert.equal(phraseMatches('x', '!!'), false);
  });
});

describe('field indexer', () => {
  it('flattens fields per spec §8.3 and skips built-ins and nulls', () => {
    const rows = indexFields(
      {
        name: 'n',
        count: 3,
        ok: true,
        none: null,
        tags: ['a', 'b', 'a'],
        nested: { x: { y: 1.5 } },
        list: [{ sub: 'q' }],
        keyValues: { k: 'v' },
        documentSelfLink: '/x',
        documentation: 'skipped too',
      },
      { fixedItemNameFields: ['keyValues'] },
    );
    assert.deepEqual(rows, [
      { name: 'name', s: 'n', n: null },
      { name: 'count', s: null, n: 3 },
      { name: 'ok', s: 'true', n: null },
      { name: 'tags.item', s: 'a', n: null },
      { name: 'tags.item', s: 'b', n: null },
      { name: 'nested.x.y', s: null, n: 1.5 },
      { name: 'list.item.sub', s: 'q', n: null },
      { name: 'keyValues.k', s: 'v', n: null },
      { name: 'keyValues', s: 'k', n: null },
      { name: 'keyValues', s: 'v', n: null },
    ]);
  });

  it('fixed item names only apply to string-valued maps that are listed', () => {
    assert.deepEqual(indexFields({ keyValues: { k: 1 } }, { fixedItemNameFields: ['keyValues'] }), [{ name: 'keyValues.k', s: null, n: 1 }]);
    assert.deepEqual(indexFields({ keyValues: { k: 'v' } }), [{ name: 'keyValues.k', s: 'v', n: null }]);
  });

  it('caps depth at 8 nested levels and rows at 1000', () => {
    let deep: Record<string, unknown> = { leaf: 'v' };
    for (let i = 0; i < 12; i++) deep = { c: deep };
    const names = indexFields({ d: deep }).map((r) => r.name);
    assert.deepEqual(names, []);
    const ok = indexFields({ d: { c: { c: { c: { c: { c: { c: { c: 'v' } } } } } } } });
    assert.deepEqual(
      ok.map((r) => r.name),
      ['d.c.c.c.c.c.c.c'],
    );
    const many = indexFields({ list: Array.from({ length: 5000 }, (_, i) => i) });
    assert.equal(many.length, MAX_INDEXED_FIELDS);
  });
});
