import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KryptonError } from '../src/core/errors.js';
import { normalizeQuerySpec } from '../src/query/query-validator.js';

const TERM = { term: { propertyName: 'name', matchValue: 'a' } };

/** Asserts a 400 INVALID_QUERY with exactly this message. */
function rejects(raw: unknown, message: string | RegExp, context?: { isDirect?: boolean }): void {
  assert.throws(
    () => normalizeQuerySpec(raw, context),
    (err: unknown) => {
      assert.ok(err instanceof KryptonError, `expected a KryptonError, got ${String(err)}`);
      assert.equal(err.statusCode, 400);
      assert.equal(err.code, 'KRY_ERR_INVALID_QUERY');
      if (typeof message === 'string') assert.equal(err.message, message);
      else assert.match(err.message, message);
      return true;
    },
  );
}

describe('normalizeQuerySpec: defaults', () => {
  it('fills occurance, matchType and options, echoing Xenon field order', () => {
    const spec = normalizeQuerySpec({ query: TERM });
    assert.deepEqual(spec, {
      query: { occurance: 'MUST_OCCUR', term: { propertyName: 'name', matchValue: 'a', matchType: 'TERM' } },
      options: [],
    });
    assert.deepEqual(Object.keys(spec.query!), ['occurance', 'term']);
  });

  it('fills defaults at every depth and keeps given values', () => {
    const spec = normalizeQuerySpec({
      query: {
        booleanClauses: [
          { occurance: 'SHOULD_OCCUR', term: { propertyName: 'a', matchValue: 'x', matchType: 'PREFIX' } },
          { booleanClauses: [{ term: { propertyName: 'counter', range: { type: 'LONG', min: 1, max: 10, isMinInclusive: true } } }] },
        ],
      },
    });
    const [first, second] = spec.query!.booleanClauses!;
    assert.equal(spec.query!.occurance, 'MUST_OCCUR');
    assert.deepEqual(first, { occurance: 'SHOULD_OCCUR', term: { propertyName: 'a', matchValue: 'x', matchType: 'PREFIX' } });
    assert.equal(second!.occurance, 'MUST_OCCUR');
    assert.deepEqual(second!.booleanClauses![0], {
      occurance: 'MUST_OCCUR',
      term: { propertyName: 'counter', matchType: 'TERM', range: { type: 'LONG', min: 1, max: 10, isMinInclusive: true, isMaxInclusive: false, precisionStep: 16 } },
    });
  });

  it('accepts Gson-style lenient values', () => {
    const spec = normalizeQuerySpec({
      query: { term: { propertyName: 'counter', range: { type: 'DOUBLE', min: '5', max: '7.5', isMinInclusive: 'true', isMaxInclusive: 'TRUE', precisionStep: '8' } } },
      resultLimit: '10',
      offset: 2.0,
    });
    assert.deepEqual(spec.query!.term!.range, { type: 'DOUBLE', min: 5, max: 7.5, isMinInclusive: true, isMaxInclusive: true, precisionStep: 8 });
    assert.equal(spec.resultLimit, 10);
    assert.equal(spec.offset, 2);
    const numbersAsValues = normalizeQuerySpec({ query: { term: { propertyName: 'flag', matchValue: true } } });
    assert.equal(numbersAsValues.query!.term!.matchValue, 'true');
    const notTrue = normalizeQuerySpec({ query: { term: { propertyName: 'c', range: { type: 'LONG', min: 1, isMinInclusive: 'yes' } } } });
    assert.equal(notTrue.query!.term!.range!.isMinInclusive, false, 'Boolean.parseBoolean("yes") is false');
  });

  it('fills sortOrder ASC with a sort term, and per additional sort term', () => {
    const spec = normalizeQuerySpec({
      query: TERM,
      options: ['SORT'],
      sortTerm: { propertyName: 'name', propertyType: 'STRING' },
      additionalSortTerms: [
        { propertyName: 'counter', propertyType: 'LONG' },
        { propertyName: 'x', propertyType: 'STRING', sortOrder: 'DESC' },
      ],
    });
    assert.equal(spec.sortOrder, 'ASC');
    assert.deepEqual(
      spec.additionalSortTerms!.map((t) => t.sortOrder),
      ['ASC', 'DESC'],
    );
    assert.equal(normalizeQuerySpec({ query: TERM }).sortOrder, undefined);
  });

  it('dedupes options and orders them like Xenon echoes its EnumSet', () => {
    const spec = normalizeQuerySpec({ query: TERM, options: ['EXPAND_CONTENT', 'INCLUDE_DELETED', 'TOP_RESULTS', 'EXPAND_CONTENT'], resultLimit: 5 });
    assert.deepEqual(spec.options, ['TOP_RESULTS', 'EXPAND_CONTENT', 'INCLUDE_DELETED']);
  });

  it('drops unknown fields and copies the input (no aliasing)', () => {
    const raw = { query: { term: { propertyName: 'n', matchValue: 'v', extra: 1 }, junk: true }, foo: 'bar' };
    const spec = normalizeQuerySpec(raw);
    assert.deepEqual(spec, { query: { occurance: 'MUST_OCCUR', term: { propertyName: 'n', matchValue: 'v', matchType: 'TERM' } }, options: [] });
    spec.query!.term!.matchValue = 'changed';
    assert.equal(raw.query.term.matchValue, 'v');
  });
});

describe('normalizeQuerySpec: errors', () => {
  it('query structure', () => {
    rejects({ query: null }, 'querySpec.query is required');
    rejects({}, 'One of term, booleanClauses must be provided');
    rejects({ query: {} }, 'One of term, booleanClauses must be provided');
    rejects({ query: { booleanClauses: [{ occurance: 'MUST_OCCUR' }] } }, 'One of term, booleanClauses must be provided');
    rejects({ query: { term: TERM.term, booleanClauses: [] } }, 'term and booleanClauses are mutually exclusive');
    rejects({ query: { booleanClauses: [{ booleanClauses: [{ ...TERM, booleanClauses: [TERM] }] }] } }, 'term and booleanClauses are mutually exclusive');
    rejects({ query: { booleanClauses: 'x' } }, /booleanClauses must be an array/);
    rejects('nope', /querySpec must be a JSON object/);
  });

  it('terms', () => {
    rejects({ query: { term: { propertyName: 'n' } } }, 'One of term.matchValue, term.range is required');
    rejects({ query: { term: { propertyName: 'n', matchValue: 'v', range: { type: 'LONG', min: 1 } } } }, 'term.matchValue and term.range are exclusive of each other');
    rejects({ query: { term: { matchValue: 'v' } } }, 'term.propertyName is required');
    rejects({ query: { term: { propertyName: 'n', matchValue: 'v', matchType: 'FUZZY' } } }, /^Unknown matchType: FUZZY/);
    rejects({ query: { occurance: 'MAYBE', ...TERM } }, /^Unknown occurance: MAYBE/);
    rejects({ query: { booleanClauses: [{ occurance: 'must_occur', ...TERM }] } }, /^Unknown occurance: must_occur/);
    rejects({ query: { term: { propertyName: { a: 1 }, matchValue: 'v' } } }, /term.propertyName must be a string/);
  });

  it('ranges', () => {
    const r = (range: unknown): unknown => ({ query: { term: { propertyName: 'c', range } } });
    rejects(r({ min: 1, max: 5 }), 'type must be specified');
    rejects(r({ type: 'LONG', min: 5, max: 1 }), 'max must be greater than min');
    rejects(r({ type: 'LONG' }), 'max and min can not both be null');
    rejects(r({ type: 'LONG', min: null, max: null }), 'max and min can not both be null');
    rejects(r({ type: 'STRING', min: 1 }), 'Type is not supported:STRING');
    rejects(r({ type: 'INTEGER', min: 1 }), /^Unknown range type: INTEGER/);
    rejects(r({ type: 'LONG', min: 'five' }), /range.min must be a number/);
    rejects(r({ type: 'LONG', min: 1, isMinInclusive: 1 }), /range.isMinInclusive must be a boolean/);
    assert.doesNotThrow(() => normalizeQuerySpec(r({ type: 'LONG', min: 3, max: 3 })));
  });

  it('sort terms', () => {
    rejects({ query: TERM, sortTerm: { propertyName: 'name' } }, 'term.propertyType is required');
    rejects({ query: TERM, sortTerm: { propertyType: 'STRING' } }, 'term.propertyName is required');
    rejects({ query: TERM, additionalSortTerms: [{ propertyName: 'x' }] }, 'term.propertyType is required');
    rejects({ query: TERM, options: ['SORT'] }, 'querySpec.sortTerm is required with SORT');
    rejects({ query: TERM, sortTerm: { propertyName: 'name', propertyType: 'STRING' }, sortOrder: 'UP' }, /^Unknown sortOrder: UP/);
    rejects({ query: TERM, sortTerm: { propertyName: 'name', propertyType: 'TEXT' } }, /^Unknown propertyType: TEXT/);
    const top = { query: TERM, options: ['SORT', 'TOP_RESULTS'], sortTerm: { propertyName: 'name', propertyType: 'STRING' } };
    rejects(top, 'resultLimit should be a positive integer less than MAX_VALUE');
    rejects({ ...top, resultLimit: 0 }, 'resultLimit should be a positive integer less than MAX_VALUE');
    rejects({ ...top, resultLimit: 2147483647 }, 'resultLimit should be a positive integer less than MAX_VALUE');
    assert.equal(normalizeQuerySpec({ ...top, resultLimit: 2147483646 }).resultLimit, 2147483646);
  });

  it('options and their combinations (spec §8.4)', () => {
    const q = (options: string[], extra: Record<string, unknown> = {}): unknown => ({ query: TERM, options, ...extra });
    rejects(q(['EXPAND_CONTENT', 'BOGUS']), 'Unknown query option: BOGUS');
    rejects({ query: TERM, options: 'COUNT' }, /options must be an array/);
    rejects(q(['EXPAND_CONTENT', 'COUNT']), 'EXPAND_CONTENT is not compatible with COUNT');
    rejects(q(['EXPAND_BINARY_CONTENT', 'COUNT']), 'EXPAND_BINARY_CONTENT is not compatible with COUNT');
    rejects(q(['EXPAND_BINARY_CONTENT']), 'EXPAND_BINARY_CONTENT is not allowed for remote clients.');
    rejects(q(['EXPAND_LINKS']), 'Must be combined with SELECT_LINKS');
    rejects(q(['GROUP_BY', 'COUNT']), 'GROUP_BY is not compatible with COUNT');
    rejects(q(['GROUP_BY', 'CONTINUOUS']), 'GROUP_BY is not compatible with CONTINUOUS');
    rejects(q(['GROUP_BY']), 'querySpec.groupByTerm is required with GROUP_BY');
    rejects(q(['GROUP_BY'], { groupByTerm: { propertyName: 'g' } }), 'querySpec.sortTerm is required with GROUP_BY');
    rejects(q(['SELECT_LINKS', 'COUNT']), 'SELECT_LINKS is not compatible with COUNT');
    rejects(q(['SELECT_LINKS', 'CONTINUOUS']), 'SELECT_LINKS is not compatible with CONTINUOUS');
    rejects(q(['SELECT_LINKS']), 'querySpec.linkTerms must have at least one entry');
    rejects(q(['SELECT_LINKS', 'EXPAND_LINKS'], { linkTerms: [] }), 'querySpec.linkTerms must have at least one entry');
    rejects(q(['EXPAND_SELECTED_FIELDS', 'EXPAND_CONTENT']), 'EXPAND_SELECTED_FIELDS is not compatible with EXPAND_CONTENT');
    rejects(q(['EXPAND_SELECTED_FIELDS']), 'querySpec.fieldTerms must have at least one entry');
    rejects(q(['READ_AFTER_WRITE_CONSISTENCY', 'COUNT']), 'READ_AFTER_WRITE_CONSISTENCY is not compatible with COUNT');
    rejects(q(['BROADCAST'], { sortTerm: { propertyName: 'name', propertyType: 'STRING' } }), 'BROADCAST only supports sorting on [documentSelfLink]');
    rejects(q(['TIME_SNAPSHOT']), 'TIME_SNAPSHOT will return latest versions of documents only if querySpec.timeSnapshotBoundaryMicros is provided');
    rejects(q([], { timeSnapshotBoundaryMicros: 5 }), /^Either enable TIME_SNAPSHOT for retreiving latest versions/);
    rejects(q(['CONTINUOUS']), 'direct query task is not compatible with CONTINUOUS', { isDirect: true });
    rejects(q(['CONTINUOUS_STOP_MATCH']), 'direct query task is not compatible with CONTINUOUS_STOP_MATCH', { isDirect: true });
  });

  it('valid combinations pass', () => {
    const ok = (raw: unknown, context?: { isDirect?: boolean }): void => assert.doesNotThrow(() => normalizeQuerySpec(raw, context));
    ok({ query: TERM, options: ['EXPAND_SELECTED_FIELDS'], selectTerms: [{ propertyName: 'name' }] });
    ok({ query: TERM, options: ['BROADCAST', 'SORT'], sortTerm: { propertyName: 'documentSelfLink', propertyType: 'STRING' }, sortOrder: 'DESC' });
    ok({ query: TERM, options: ['FORWARD_ONLY', 'READ_AFTER_WRITE_CONSISTENCY', 'DO_NOT_REFRESH', 'INDEXED_METADATA'], resultLimit: 5, offset: 2 });
    ok({ query: TERM, options: ['SELECT_LINKS', 'EXPAND_LINKS'], linkTerms: [{ propertyName: 'ownerLink' }] });
    ok({ query: TERM, options: ['SINGLE_USE'], resultLimit: 5, expectedResultCount: 3 });
    const snap = normalizeQuerySpec({ query: TERM, options: ['TIME_SNAPSHOT'], timeSnapshotBoundaryMicros: '1546000000000000' });
    assert.equal(snap.timeSnapshotBoundaryMicros, 1546000000000000);
  });

  it('refuses valid Xenon options krypton does not implement, instead of answering without them', () => {
    rejects({ query: TERM, options: ['CONTINUOUS_STOP_MATCH'] }, 'CONTINUOUS_STOP_MATCH is not supported by krypton');
    rejects(
      { query: TERM, options: ['GROUP_BY'], groupByTerm: { propertyName: 'g' }, groupSortTerm: { propertyName: 'h', propertyType: 'STRING' }, sortTerm: { propertyName: 's', propertyType: 'STRING' } },
      'krypton orders groups by their value: querySpec.groupSortTerm must name the groupByTerm (g), not h',
    );
    rejects({ query: TERM, expectedResultCount: -1 }, 'querySpec.expectedResultCount must not be negative');
    rejects({ query: TERM, resultLimit: 0 }, 'querySpec.resultLimit must be a positive integer: 0');
    rejects({ query: TERM, resultLimit: -5 }, 'querySpec.resultLimit must be a positive integer: -5');
    rejects({ query: TERM, offset: -1 }, 'querySpec.offset must not be negative: -1');
  });

  it('only throws KryptonErrors for garbage input', () => {
    const garbage: unknown[] = [
      null,
      42,
      [],
      { query: [] },
      { query: { term: [] } },
      { query: { booleanClauses: [null] } },
      { options: [{}] },
      { query: { term: { propertyName: 'x', range: 'r' } } },
      { query: TERM, resultLimit: {} },
      { query: TERM, resultLimit: 1.5 },
      { query: TERM, sortTerm: 'x' },
    ];
    for (const g of garbage) assert.throws(() => normalizeQuerySpec(g), KryptonError, JSON.stringify(g));
    let deep: Record<string, unknown> = TERM;
    for (let i = 0; i < 5000; i++) deep = { booleanClauses: [deep] };
    rejects({ query: deep }, /nesting is deeper than/);
    const term = (i: number) => ({ occurance: 'SHOULD_OCCUR', term: { propertyName: 'name', matchValue: `n${i}` } });
    assert.doesNotThrow(() => normalizeQuerySpec({ query: { booleanClauses: Array.from({ length: 10_000 }, (_, i) => term(i)) } }));
    rejects(
      { query: { booleanClauses: [{ booleanClauses: Array.from({ length: 6_000 }, (_, i) => term(i)) }, { booleanClauses: Array.from({ length: 4_001 }, (_, i) => term(i)) }] } },
      /more than 10000 terms/,
    );
  });
});
