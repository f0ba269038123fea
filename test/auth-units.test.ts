import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SignJWT, UnsecuredJWT } from 'jose';
import { SCHEMA_DDL } from '../src/store/schema.js';
import { indexFields } from '../src/query/field-indexer.js';
import { compileWhere, registerQueryFunctions } from '../src/query/query-compiler.js';
import { normalizeQuerySpec } from '../src/query/query-validator.js';
import type { Query } from '../src/query/query-types.js';
import { DocumentView, matchesQuery } from '../src/auth/query-matcher.js';
import { AuthContext } from '../src/auth/policy.js';
import { TokenSigner } from '../src/auth/auth-token.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../src/auth/password-hash.js';
import { LoginThrottle, DEFAULT_THROTTLE } from '../src/auth/login-throttle.js';

const EX = 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState';
const SECRET = new TextEncoder().encode('BAD_SECRET_NOT_SECURE');
/** xenon-cluster-auth.md C.4's test vector (verified against Xenon). */
const XENON_VECTOR = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4biIsInN1YiI6Ii9jb3JlL2F1dGh6L3VzZXJzL2Zvb0BiYXIuY29tIiwiZXhwIjoxNzAwMDAzNjAwfQ.EJZsOjK9sJ9qP65cCBy79g2Zy2cc2xCzW2qGh8NYiSc';

describe('auth tokens (Xenon JWT format)', () => {
  const at = (seconds: number) => new TokenSigner(SECRET, () => seconds * 1e6);

  it("signs byte-for-byte what Xenon signs, and verifies Xenon's token", async () => {
    assert.equal(at(1_700_000_000).sign('/core/authz/users/foo@bar.com', 1_700_003_600, { jti: false }), XENON_VECTOR);
    assert.deepEqual(await at(1_700_000_000).verify(XENON_VECTOR), { ok: true, sub: '/core/authz/users/foo@bar.com', expSeconds: 1_700_003_600 });
  });

  it('refuses expired, tampered, foreign-key, unsigned and malformed tokens, saying why', async () => {
    const s = at(1_700_000_000);
    assert.deepEqual(await at(1_700_003_600).verify(XENON_VECTOR), { ok: false, reason: 'expired' });
    const [h, p] = XENON_VECTOR.split('.');
    const forged = `${h}.${Buffer.from('{"iss":"xn","sub":"/core/authz/system-user","exp":1700003600}').toString('base64url')}.${XENON_VECTOR.split('.')[2]}`;
    assert.match(((await s.verify(forged)) as { reason: string }).reason, /bad signature/);
    const foreign = new TokenSigner(new TextEncoder().encode('another-key-another-key-another!!'), () => 1_700_000_000e6).sign('/core/authz/users/foo@bar.com', 1_700_003_600);
    assert.match(((await s.verify(foreign)) as { reason: string }).reason, /bad signature/);
    const unsigned = new UnsecuredJWT({ iss: 'xn', sub: '/core/authz/system-user' }).setExpirationTime(1_700_003_600).encode();
    assert.equal(((await s.verify(unsigned)) as { ok: boolean }).ok, false);
    for (const junk of ['', 'abc', `${h}.${p}`, 'a.b.c', 'x'.repeat(10_000)]) assert.equal((await s.verify(junk)).ok, false, junk.slice(0, 20));
  });

  it('accepts HS384/HS512 as Xenon does, and requires typ JWT and iss xn', async () => {
    const s = at(1_700_000_000);
    const hs512 = await new SignJWT({ iss: 'xn', sub: '/core/authz/users/a@b', exp: 1_700_003_600 }).setProtectedHeader({ typ: 'JWT', alg: 'HS512' }).sign(SECRET);
    assert.equal((await s.verify(hs512)).ok, true);
    const noTyp = await new SignJWT({ iss: 'xn', sub: '/core/authz/users/a@b', exp: 1_700_003_600 }).setProtectedHeader({ alg: 'HS256' }).sign(SECRET);
    assert.equal((await s.verify(noTyp)).ok, false);
    const otherIss = await new SignJWT({ iss: 'evil', sub: '/core/authz/users/a@b', exp: 1_700_003_600 }).setProtectedHeader({ typ: 'JWT', alg: 'HS256' }).sign(SECRET);
    assert.equal((await s.verify(otherIss)).ok, false);
  });

  it('gives every login its own token (jti)', () => {
    const s = at(1_700_000_000);
    assert.notEqual(s.sign('/core/authz/users/a@b', 1_700_003_600), s.sign('/core/authz/users/a@b', 1_700_003_600));
  });
});

describe('password hashes', () => {
  it('stores salted scrypt hashes that verify only the right password', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    assert.match(a, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    assert.notEqual(a, b, 'salted');
    assert.ok(!a.includes('correct'));
    assert.equal(await verifyPassword('correct horse', a), true);
    assert.equal(await verifyPassword('correct horse!', a), false);
    assert.equal(isPasswordHash(a), true);
    assert.equal(isPasswordHash('correct horse'), false);
  });

  it('refuses malformed hashes and parameters that would turn a login into a denial of service', async () => {
    assert.equal(await verifyPassword('x', 'x'), false);
    assert.equal(await verifyPassword('x', undefined), false);
    const huge = '$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    assert.equal(isPasswordHash(huge), false);
    assert.equal(await verifyPassword('x', huge), false);
  });
});

describe('login throttle', () => {
  it('spaces out attempts after a few failures, per email, queues parallel guesses and finally refuses', () => {
    let now = 0;
    const t = new LoginThrottle(() => now);
    for (let i = 0; i < DEFAULT_THROTTLE.freeFailures; i++) {
      assert.equal(t.reserve('a@b', '1.1.1.1').waitMs, 0);
      t.settle('a@b', '1.1.1.1', false);
    }
    assert.equal(t.reserve('a@b', '1.1.1.1').waitMs, 250, 'fourth attempt waits');
    assert.equal(t.reserve('a@b', '1.1.1.1').waitMs, 750, 'a parallel fifth attempt queues behind it, counted as a failure until it succeeds');
    assert.equal(t.reserve('other@b', '2.2.2.2').waitMs, 0, 'other users are not slowed');
    for (let i = 0; i < 6; i++) t.settle('a@b', '1.1.1.1', false);
    let r = t.reserve('a@b', '1.1.1.1');
    while (!r.refused) r = t.reserve('a@b', '1.1.1.1');
    assert.ok(r.waitMs > DEFAULT_THROTTLE.maxWaitMs);
    now += 20 * 60_000;
    assert.equal(t.reserve('a@b', '1.1.1.1').waitMs, 0, 'forgotten after a quiet period');
  });

  it('spaces out a burst of parallel guesses made before any failure was recorded', () => {
    const t = new LoginThrottle(() => 0);
    const burst = Array.from({ length: 60 }, () => t.reserve('a@b', '1.1.1.1'));
    assert.deepEqual(
      burst.slice(0, 6).map((r) => r.waitMs),
      [0, 0, 0, 250, 750, 1750],
    );
    assert.ok(burst.filter((r) => !r.refused).length <= 12, 'most of the burst is refused with 429');
    assert.ok(burst.at(-1)!.refused);
  });

  it('throttles an overlong email (kept as a digest) as itself: the same one adds up, another of the same length and start does not', () => {
    const t = new LoginThrottle(() => 0);
    const long = `${'x'.repeat(12_000)}@b`;
    const other = `${'x'.repeat(11_999)}y@b`;
    for (let i = 0; i < DEFAULT_THROTTLE.freeFailures; i++) {
      assert.equal(t.reserve(long, `10.0.0.${i}`).waitMs, 0);
      t.settle(long, `10.0.0.${i}`, false);
    }
    assert.equal(t.reserve(long.toUpperCase(), '10.0.1.1').waitMs, 250, 'the same email, in any case, counts its failures');
    assert.equal(t.reserve(other, '10.0.1.2').waitMs, 0, 'another email is not slowed');
  });

  it('clears an email after a successful login', () => {
    let now = 0;
    const t = new LoginThrottle(() => now);
    for (let i = 0; i < 5; i++) {
      now += t.reserve('a@b', 'x').waitMs;
      t.settle('a@b', 'x', false);
    }
    assert.ok(t.reserve('a@b', 'x').waitMs > 0);
    t.settle('a@b', 'x', true);
    now += 60_000;
    assert.equal(t.reserve('a@b', 'x').waitMs, 0);
  });
});

interface Fixture {
  link: string;
  kind?: string;
  version?: number;
  expiration?: number;
  principal?: string;
  body: Record<string, unknown>;
}

const DOCS: Fixture[] = [
  {
    link: '/core/examples/a1',
    version: 3,
    principal: '/core/authz/users/joe',
    body: { name: 'alpha', counter: 5, flag: true, price: 1.5, tags: ['red', 'blue'], keyValues: { k1: 'v1' }, nested: { inner: { deep: 'x' } }, description: 'The quick brown fox' },
  },
  { link: '/core/examples/a2', version: 1, body: { name: 'alpha2', counter: 10, flag: false, price: -2.5, tags: ['red'], keyValues: { k1: 'other' } } },
  { link: '/core/examples/b1', expiration: 5_000, principal: '/core/authz/users/ann', body: { name: 'beta', counter: 0, tags: ['green'], description: 'Brown quick fox' } },
  { link: '/core/examples/s1', body: { name: 'star*[x]?', counter: -3 } },
  { link: '/core/examples/secret', principal: '/core/authz/users/joe', body: { name: 'secret', counter: 1 } },
  { link: '/core/other/o1', kind: 'com:example:Other', body: { name: 'Alpha', counter: 5.5, 'a.b': 'dotted' } },
  { link: '/core/auth/credentials/joe', kind: 'creds', body: { userEmail: 'joe', privateKey: 'h' } },
];

function asDoc(f: Fixture): Record<string, unknown> {
  return {
    ...f.body,
    documentVersion: f.version ?? 0,
    documentKind: f.kind ?? EX,
    documentSelfLink: f.link,
    documentUpdateTimeMicros: 1000,
    documentUpdateAction: 'POST',
    documentExpirationTimeMicros: f.expiration ?? 0,
    documentOwner: 'host',
    ...(f.principal ? { documentAuthPrincipalLink: f.principal } : {}),
  };
}

function fixtureDb(): Database.Database {
  const db = new Database(':memory:');
  db.exec(SCHEMA_DDL);
  registerQueryFunctions(db);
  const insert = db.prepare(
    `INSERT INTO docs (link, factory, version, kind, update_time, action, expiration, owner, auth_principal, latest, json) VALUES (?, ?, ?, ?, 1000, 'POST', ?, 'host', ?, 1, ?)`,
  );
  const prop = db.prepare('INSERT INTO props (doc_id, name, seq, sval, nval) VALUES (?, ?, ?, ?, ?)');
  for (const f of DOCS) {
    const id = insert.run(f.link, f.link.slice(0, f.link.lastIndexOf('/')), f.version ?? 0, f.kind ?? EX, f.expiration ?? 0, f.principal ?? null, JSON.stringify(asDoc(f))).lastInsertRowid;
    indexFields(asDoc(f), { fixedItemNameFields: ['keyValues'] }).forEach((x, seq) => {
      prop.run(id, x.name, seq, x.s, x.n);
    });
  }
  return db;
}

const t = (propertyName: string, matchValue: string, matchType = 'TERM', occurance = 'MUST_OCCUR') => ({ occurance, term: { propertyName, matchValue, matchType } });
const r = (propertyName: string, min?: number, max?: number, type = 'LONG', incl = true) => ({
  term: { propertyName, range: { type, ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}), isMinInclusive: incl, isMaxInclusive: !incl } },
});
const g = (occurance: string, ...booleanClauses: unknown[]) => ({ occurance, booleanClauses });

/** Queries covering every compiler rule the matcher must reproduce. */
const QUERIES: unknown[] = [
  t('name', 'alpha'),
  t('name', 'alp', 'PREFIX'),
  t('name', 'al*a', 'WILDCARD'),
  t('name', 'al?ha', 'WILDCARD'),
  t('name', 'star\\*[x]\\?', 'WILDCARD'),
  t('name', 'star*', 'WILDCARD'),
  t('name', '*', 'WILDCARD'),
  t('description', 'quick brown', 'PHRASE'),
  t('description', 'fox', 'PHRASE'),
  t('tags.item', 'red'),
  t('keyValues', 'k1'),
  t('keyValues', 'v1'),
  t('keyValues.k1', 'other'),
  t('nested.inner.deep', 'x'),
  t('flag', 'true'),
  t('counter', '5'),
  t('a.b', 'dotted'),
  t('documentOwner', 'host'),
  t('documentKind', EX),
  t('documentSelfLink', '/core/examples/', 'PREFIX'),
  t('documentSelfLink', '/core/examples', 'PREFIX'),
  t('documentSelfLink', '*', 'WILDCARD'),
  t('documentSelfLink', '/core/examples/*', 'WILDCARD'),
  t('documentAuthPrincipalLink', '/core/authz/users/joe'),
  t('documentUpdateAction', 'POST'),
  r('counter', 0, 5),
  r('counter', 0, 5, 'LONG', false),
  r('counter', undefined, 0),
  r('price', -3, 1.5, 'DOUBLE'),
  r('counter', 5.2, 6, 'DOUBLE'),
  r('documentVersion', 1),
  r('documentExpirationTimeMicros', 0),
  r('documentExpirationTimeMicros', undefined, 10_000),
  r('name', 0, 1),
  t('documentVersion', '3'),
  g('MUST_OCCUR', t('name', 'alpha', 'TERM', 'SHOULD_OCCUR'), t('name', 'beta', 'TERM', 'SHOULD_OCCUR')),
  g('MUST_OCCUR', t('tags.item', 'red'), t('name', 'beta', 'TERM', 'SHOULD_OCCUR')),
  g('MUST_OCCUR', t('documentKind', EX), t('documentAuthPrincipalLink', '/core/authz/users/joe', 'TERM', 'MUST_NOT_OCCUR')),
  g('MUST_OCCUR', t('name', 'alpha', 'TERM', 'MUST_NOT_OCCUR')),
  g('MUST_NOT_OCCUR', t('name', 'alpha')),
  g('SHOULD_OCCUR', t('name', 'alpha', 'TERM', 'SHOULD_OCCUR'), g('SHOULD_OCCUR', t('counter', 'x', 'TERM', 'MUST_NOT_OCCUR'), r('counter', 9, 11))),
  g('MUST_OCCUR', g('MUST_OCCUR', t('documentSelfLink', '/core/examples/', 'PREFIX')), g('MUST_NOT_OCCUR', t('name', 'secret'), t('name', 'beta', 'TERM', 'SHOULD_OCCUR'))),
  g('MUST_OCCUR'),
];

describe('in-memory query matcher ≡ compiled SQL (conformance)', () => {
  const db = fixtureDb();
  const viaSql = (where: { sql: string; params: unknown[] }) =>
    (db.prepare(`SELECT d.link FROM docs d WHERE ${where.sql} ORDER BY d.link`).all(...where.params) as { link: string }[]).map((x) => x.link);
  const views = DOCS.map((f) => new DocumentView(asDoc(f), ['keyValues']));

  it(`agrees with compileWhere on ${QUERIES.length} queries over ${DOCS.length} documents`, () => {
    for (const raw of QUERIES) {
      const q = normalizeQuerySpec({ query: raw }).query!;
      const expected = viaSql(compileWhere(q));
      const actual = views
        .filter((v) => matchesQuery(q, v))
        .map((v) => v.doc['documentSelfLink'] as string)
        .sort();
      assert.deepEqual(actual, expected, JSON.stringify(raw));
    }
  });

  const q = (raw: unknown): Query => normalizeQuerySpec({ query: raw }).query!;
  const policies: Array<{ name: string; allow: unknown[]; deny: unknown[]; expected: string[] }> = [
    { name: 'one ALLOW', allow: [t('documentSelfLink', '/core/examples/', 'PREFIX')], deny: [], expected: ['a1', 'a2', 'b1', 's1', 'secret'] },
    { name: 'ALLOW with a DENY: DENY wins, ALLOW still restricts', allow: [t('documentSelfLink', '/core/examples/', 'PREFIX')], deny: [t('name', 'secret')], expected: ['a1', 'a2', 'b1', 's1'] },
    { name: 'DENY only: nothing (Xenon allowed everything else)', allow: [], deny: [t('name', 'secret')], expected: [] },
    { name: 'two ALLOWs', allow: [t('name', 'beta'), t('documentAuthPrincipalLink', '/core/authz/users/joe')], deny: [], expected: ['a1', 'b1', 'secret'] },
    { name: 'wildcard admin still cannot read credentials', allow: [t('documentSelfLink', '*', 'WILDCARD')], deny: [], expected: ['a1', 'a2', 'b1', 'o1', 's1', 'secret'] },
  ];
  for (const p of policies) {
    it(`policy scope and per-document check agree: ${p.name}`, () => {
      const ctx = new AuthContext('/core/authz/users/x', 0, new Map([['GET', { allow: p.allow.map(q), deny: p.deny.map(q), denyAll: false }]]));
      const sql = viaSql(ctx.scope('GET')!)
        .map((l) => l.split('/').pop()!)
        .sort();
      const mem = DOCS.filter((f) => ctx.allows('GET', asDoc(f), ['keyValues']))
        .map((f) => f.link.split('/').pop()!)
        .sort();
      assert.deepEqual(sql, p.expected);
      assert.deepEqual(mem, p.expected);
    });
  }

  it('fails closed on a DENY role whose resource group is missing', () => {
    const ctx = new AuthContext('/core/authz/users/x', 0, new Map([['GET', { allow: [q(t('documentSelfLink', '*', 'WILDCARD'))], deny: [], denyAll: true }]]));
    assert.deepEqual(viaSql(ctx.scope('GET')!), []);
    assert.equal(ctx.allows('GET', asDoc(DOCS[0]!)), false);
  });
});
