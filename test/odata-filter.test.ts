import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { KryptonError } from '../src/core/errors.js';
import { SCHEMA_DDL } from '../src/store/schema.js';
import { indexFields } from '../src/query/field-indexer.js';
import { parseODataFilter, parseODataOrderBy } from '../src/query/odata-filter.js';
import { compileWhere, registerQueryFunctions } from '../src/query/query-compiler.js';
import { normalizeQuerySpec } from '../src/query/query-validator.js';
import type { Query } from '../src/query/query-types.js';

function rejects(text: string, message: RegExp): void {
  assert.throws(
    () => parseODataFilter(text),
    (err: unknown) => {
      assert.ok(err instanceof KryptonError, String(err));
      assert.equal(err.statusCode, 400);
      assert.match(err.message, message);
      return true;
    },
  );
}

const t = (propertyName: string, matchValue: string, occurance = 'MUST_OCCUR', matchType?: string): Query =>
  ({ occurance, term: { propertyName, matchValue, ...(matchType ? { matchType } : {}) } }) as Query;

describe('parseODataFilter: comparisons and values', () => {
  it('eq with a quoted string; quotes keep /, every quote is removed', () => {
    assert.deepEqual(parseODataFilter("documentSelfLink eq '/core/examples/a1'"), t('documentSelfLink', '/core/examples/a1'));
    assert.deepEqual(parseODataFilter("name eq 'it''s'"), t('name', 'its'));
    assert.deepEqual(parseODataFilter("name eq 'two words'"), t('name', 'two words'));
  });

  it('bare literals: / becomes . in names and values; true/false are literals', () => {
    assert.deepEqual(parseODataFilter('a/b eq x/y'), t('a.b', 'x.y'));
    assert.deepEqual(parseODataFilter('taskInfo.stage eq FINISHED'), t('taskInfo.stage', 'FINISHED'));
    assert.deepEqual(parseODataFilter('isFromMigration eq true'), t('isFromMigration', 'true'));
    assert.deepEqual(parseODataFilter('x eq a-b._~%!$&+:@c'), t('x', 'a-b._~%!$&+:@c'));
  });

  it('a value containing * becomes a WILDCARD term', () => {
    assert.deepEqual(parseODataFilter("name eq 'a*'"), t('name', 'a*', 'MUST_OCCUR', 'WILDCARD'));
    assert.deepEqual(parseODataFilter('name eq a*b'), t('name', 'a*b', 'MUST_OCCUR', 'WILDCARD'));
  });

  it('unquoted numbers become ranges: LONG for integers, DOUBLE with a dot', () => {
    const range = (q: Query): unknown => q.term!.range;
    const long = { type: 'LONG', precisionStep: 16 };
    assert.deepEqual(range(parseODataFilter('counter eq 5')), { ...long, min: 5, max: 5, isMinInclusive: true, isMaxInclusive: true });
    assert.deepEqual(range(parseODataFilter('counter lt 5')), { ...long, max: 5, isMinInclusive: true, isMaxInclusive: false });
    assert.deepEqual(range(parseODataFilter('counter le 5')), { ...long, max: 5, isMinInclusive: true, isMaxInclusive: true });
    assert.deepEqual(range(parseODataFilter('counter gt -5')), { ...long, min: -5, isMinInclusive: false, isMaxInclusive: true });
    assert.deepEqual(range(parseODataFilter('counter ge 5')), { ...long, min: 5, isMinInclusive: true, isMaxInclusive: true });
    const dbl = { type: 'DOUBLE', precisionStep: 16 };
    assert.deepEqual(range(parseODataFilter('x lt 5.5')), { ...dbl, min: Number.MIN_VALUE, max: 5.5, isMinInclusive: true, isMaxInclusive: false });
    assert.deepEqual(range(parseODataFilter('x gt 1.0')), { ...dbl, min: 1, max: Number.MAX_VALUE, isMinInclusive: false, isMaxInclusive: true });
    assert.equal(parseODataFilter('counter eq 5').occurance, 'MUST_OCCUR');
    assert.equal(parseODataFilter('counter eq 5').term!.matchValue, undefined);
  });

  it('quoted numbers stay strings', () => {
    assert.deepEqual(parseODataFilter("counter eq '5'"), t('counter', '5'));
  });

  it('numbers Java parses as doubles but not as longs are 400s; ne with a number is a 400', () => {
    rejects('counter eq 1e5', /For input string: "1e5"/);
    rejects('counter eq 99999999999999999999', /For input string/);
    rejects('counter ne 5', /ne is not supported with a numeric value/);
  });

  it('ne on a string is MUST_NOT', () => {
    assert.deepEqual(parseODataFilter("name ne 'a'"), t('name', 'a', 'MUST_NOT_OCCUR'));
  });

  it('any / all take ;-separated lists', () => {
    assert.deepEqual(parseODataFilter("tags.item any 'red;blue'"), {
      occurance: 'MUST_OCCUR',
      booleanClauses: [t('tags.item', 'red', 'SHOULD_OCCUR'), t('tags.item', 'blue', 'SHOULD_OCCUR')],
    });
    assert.deepEqual(parseODataFilter('tags/item all red;b*'), {
      occurance: 'MUST_OCCUR',
      booleanClauses: [t('tags.item', 'red'), t('tags.item', 'b*', 'MUST_OCCUR', 'WILDCARD')],
    });
  });
});

describe('parseODataFilter: and / or / parentheses', () => {
  it('and → MUST clauses, or → SHOULD clauses', () => {
    assert.deepEqual(parseODataFilter("a eq 'x' and b eq 'y'"), { occurance: 'MUST_OCCUR', booleanClauses: [t('a', 'x'), t('b', 'y')] });
    assert.deepEqual(parseODataFilter("a eq 'x' or b eq 'y'"), { occurance: 'MUST_OCCUR', booleanClauses: [t('a', 'x', 'SHOULD_OCCUR'), t('b', 'y', 'SHOULD_OCCUR')] });
  });

  it('ne encodings: and of two ne = not (a or b); or of two ne = not (a and b); one ne keeps MUST_NOT', () => {
    assert.deepEqual(parseODataFilter("a ne 'x' and b ne 'y'"), { occurance: 'MUST_NOT_OCCUR', booleanClauses: [t('a', 'x', 'SHOULD_OCCUR'), t('b', 'y', 'SHOULD_OCCUR')] });
    assert.deepEqual(parseODataFilter("a ne 'x' or b ne 'y'"), { occurance: 'MUST_NOT_OCCUR', booleanClauses: [t('a', 'x'), t('b', 'y')] });
    assert.deepEqual(parseODataFilter("a eq 'x' and b ne 'y'"), { occurance: 'MUST_OCCUR', booleanClauses: [t('a', 'x'), t('b', 'y', 'MUST_NOT_OCCUR')] });
  });

  it('and / or have equal precedence and group to the right, as in Xenon', () => {
    assert.deepEqual(parseODataFilter("a eq '1' and b eq '2' or c eq '3'"), {
      occurance: 'MUST_OCCUR',
      booleanClauses: [t('a', '1'), { occurance: 'MUST_OCCUR', booleanClauses: [t('b', '2', 'SHOULD_OCCUR'), t('c', '3', 'SHOULD_OCCUR')] }],
    });
  });

  it('parentheses group', () => {
    assert.deepEqual(parseODataFilter("(a eq '1' or b eq '2') and c eq '3'"), {
      occurance: 'MUST_OCCUR',
      booleanClauses: [{ occurance: 'MUST_OCCUR', booleanClauses: [t('a', '1', 'SHOULD_OCCUR'), t('b', '2', 'SHOULD_OCCUR')] }, t('c', '3')],
    });
    assert.deepEqual(parseODataFilter("((a eq '1'))"), t('a', '1'));
    assert.deepEqual(parseODataFilter("(a eq '1' or b eq '2'"), parseODataFilter("(a eq '1' or b eq '2')"), 'a group left open at the end is accepted');
  });

  it('ALL_FIELDS expands to an OR over the given fields', () => {
    assert.deepEqual(parseODataFilter("ALL_FIELDS eq 'v'", { allFields: ['name', 'id'] }), {
      occurance: 'MUST_OCCUR',
      booleanClauses: [t('name', 'v', 'SHOULD_OCCUR'), t('id', 'v', 'SHOULD_OCCUR')],
    });
    assert.equal(parseODataFilter("ALL_FIELDS ne 'v'", { allFields: ['name'] }).occurance, 'MUST_NOT_OCCUR');
    assert.deepEqual(parseODataFilter("ALL_FIELDS eq 'v'"), t('ALL_FIELDS', 'v'), 'without field names it is an ordinary property');
  });
});

describe('parseODataFilter: syntax errors', () => {
  it('reports Xenon-like messages', () => {
    rejects('name eq "x"', /^Unknown character: 8 " name eq "x"$/);
    rejects("name eq 'abc", /^undetermined string name eq 'abc$/);
    rejects('name eq', /^Term mismatch/);
    rejects("name 'x'", /^Term mismatch/);
    rejects("name eq 'x' and", /^Term mismatch/);
    rejects("name eq 'x' name eq 'y'", /^Term mismatch/);
    rejects("name eq 'x')", /^Term mismatch at position 11/);
    rejects("name eq 'x' = 3", /^Term mismatch/);
    rejects('name\teq x', /^Unknown character/);
    rejects('', /\$filter is required/);
    rejects('   ', /\$filter is required/);
    rejects("tags.item any ';'", /any needs at least one value/);
  });
});

describe('parseODataOrderBy', () => {
  it('parses asc / desc like Xenon (substring test)', () => {
    assert.deepEqual(parseODataOrderBy('name asc'), { propertyName: 'name', order: 'ASC' });
    assert.deepEqual(parseODataOrderBy('name desc'), { propertyName: 'name', order: 'DESC' });
    assert.deepEqual(parseODataOrderBy('name+desc'), { propertyName: 'name', order: 'DESC' });
    assert.deepEqual(parseODataOrderBy('description asc'), { propertyName: 'riptionasc', order: 'DESC' }, 'Xenon quirk');
  });

  it('rejects a value without asc or desc', () => {
    assert.throws(
      () => parseODataOrderBy('name'),
      (e: unknown) => e instanceof KryptonError && e.statusCode === 400 && e.message === 'invalid expression: name',
    );
    assert.throws(() => parseODataOrderBy('desc'), /invalid expression: desc/);
  });
});

describe('parseODataFilter end to end', () => {
  const db = new Database(':memory:');
  db.exec(SCHEMA_DDL);
  registerQueryFunctions(db);
  const docs: Record<string, Record<string, unknown>> = {
    a1: { name: 'alpha', counter: 1, tags: ['red'], x: 0.5 },
    a2: { name: 'alpha2', counter: 5, tags: ['red', 'blue'], x: -1.5 },
    b1: { name: 'beta', counter: 10, tags: ['blue'], x: 7.25 },
  };
  for (const [id, body] of Object.entries(docs)) {
    const link = `/core/examples/${id}`;
    const info = db.prepare(`INSERT INTO docs (link, factory, version, kind, update_time, action, latest, json) VALUES (?, '/core/examples', 0, 'k', 1, 'POST', 1, ?)`).run(link, JSON.stringify(body));
    indexFields(body).forEach((f, seq) => {
      db.prepare('INSERT INTO props (doc_id, name, seq, sval, nval) VALUES (?, ?, ?, ?, ?)').run(info.lastInsertRowid, f.name, seq, f.s, f.n);
    });
  }
  /** As a factory does: the filter is one clause of a MUST group (with the kind clause). */
  const run = (filter: string): string[] => {
    const query = { booleanClauses: [{ term: { propertyName: 'documentKind', matchValue: 'k' } }, parseODataFilter(filter)] };
    const w = compileWhere(normalizeQuerySpec({ query }).query!);
    return (db.prepare(`SELECT d.link FROM docs d WHERE ${w.sql} ORDER BY d.link`).all(...w.params) as { link: string }[]).map((r) => r.link.split('/').pop()!);
  };

  it('matches what the spec promises', () => {
    assert.deepEqual(run("name eq 'a*'"), ['a1', 'a2']);
    assert.deepEqual(run("name ne 'alpha'"), ['a2', 'b1']);
    assert.deepEqual(run("name ne 'alpha' and name ne 'beta'"), ['a2']);
    assert.deepEqual(run("name ne 'alpha' or name ne 'beta'"), ['a1', 'a2', 'b1']);
    assert.deepEqual(run('counter gt 1 and counter le 10'), ['a2', 'b1']);
    assert.deepEqual(run('counter eq 5 or name eq beta'), ['a2', 'b1']);
    assert.deepEqual(run("tags.item any 'blue;green'"), ['a2', 'b1']);
    assert.deepEqual(run("tags/item all 'red;blue'"), ['a2']);
    assert.deepEqual(run('x lt 5.5'), ['a1'], 'DOUBLE lt starts at Double.MIN_VALUE: negatives excluded');
    assert.deepEqual(run("documentSelfLink eq '/core/examples/b1'"), ['b1']);
    assert.deepEqual(run('(name eq alpha or name eq beta) and counter ge 5'), ['b1']);
  });
});
