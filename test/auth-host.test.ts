import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, http, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { ADMIN, ADMIN_PASSWORD, AUTH_ARGS, as, basic, createUser, grant, login, q, writeKeyFile } from './support/auth.js';
import { startListener } from './support/listener.js';
import { TokenSigner } from '../src/auth/auth-token.js';

const ADMIN_LINK = '/core/authz/users/admin@localhost';
const LOGIN = '/core/authn/basic';

describe('auth on one host: closed by default, login, passwords, roles', () => {
  let h: RunningHost;
  let admin = '';
  /** Signs tokens with this host's generated key, as a peer of its group could. */
  let hostKey: TokenSigner;
  before(async () => {
    h = await startHost(AUTH_ARGS);
    admin = await login(h.uri, ADMIN, ADMIN_PASSWORD);
    const secret = Buffer.from(readFileSync(join(h.sandbox, 'auth-signing.key'), 'utf8').trim(), 'base64');
    hostKey = new TokenSigner(new Uint8Array(secret), () => Date.now() * 1000);
  });
  after(async () => {
    await h.stop();
  });

  it('keeps everything closed without a token, except login and availability checks', async () => {
    assert.equal((await http('GET', `${h.uri}/core/node-groups/default`)).status, 403, 'readiness answers 403');
    assert.equal((await http('GET', `${h.uri}/core/examples/available`)).status, 200);
    const list = await http('GET', `${h.uri}/core/examples`);
    assert.equal(list.status, 200, 'factory listings are filtered, as in Xenon');
    assert.deepEqual(list.json.documentLinks, []);
    for (const [method, path, body] of [
      ['POST', '/core/examples', { name: 'x' }],
      ['GET', '/', undefined],
      ['GET', '/core/management', undefined],
      ['DELETE', '/core/management', undefined],
      ['GET', ADMIN_LINK, undefined],
      ['GET', '/core/authz/users/admin@localhost/stats', undefined],
      ['GET', `/core/document-index?documentSelfLink=${ADMIN_LINK}`, undefined],
      ['POST', '/core/query-tasks', { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'email', matchValue: ADMIN } } } }],
      ['POST', '/management/migration-tasks', {}],
      ['GET', '/core/examples/config', undefined],
    ] as const) {
      const r = await http(method, `${h.uri}${path}`, body);
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.match(r.json.message, /^forbidden: .*guest-user may not .*log in at \/core\/authn\/basic/);
    }
    assert.equal((await http('GET', `${h.uri}/core/examples/available`)).status, 200, 'the host is still up (DELETE /core/management was refused)');
  });

  it('logs in with HTTP Basic as Xenon does: 401 without credentials, 400 when malformed, 403 when wrong', async () => {
    const none = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Basic realm="xenon"');
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    for (const header of ['Bearer abc', 'Basic', `Basic ${b64('a:b')} extra`, 'Basic !!!not-base64', `Basic ${b64('no-colon')}`, `Basic ${b64(':pw')}`, `Basic ${b64('user@x:')}`]) {
      const r = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, { authorization: header });
      assert.equal(r.status, 400, `${header}: ${r.text}`);
      assert.match(r.json.message, /malformed/);
    }
    assert.equal((await http('POST', `${h.uri}${LOGIN}`, undefined, basic(ADMIN, ADMIN_PASSWORD))).status, 400, 'a body is required');
    assert.equal((await http('POST', `${h.uri}${LOGIN}`, { requestType: 'HACK' }, basic(ADMIN, ADMIN_PASSWORD))).status, 400);
    const wrong = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic(ADMIN, 'nope'));
    const unknown = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic('nobody@x', 'nope'));
    assert.equal(wrong.status, 403);
    assert.equal(unknown.status, 403);
    assert.equal(wrong.json.message, unknown.json.message, 'the answer does not tell which users exist');
  });

  it('answers the token in x-xenon-auth-token and the cookie; both work; the body is echoed', async () => {
    const r = await http('POST', `${h.uri}${LOGIN}`, '{requestType=LOGIN, sessionExpirationSeconds: 120}', basic(ADMIN, ADMIN_PASSWORD));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { requestType: 'LOGIN', sessionExpirationSeconds: 120 });
    const token = r.headers.get('x-xenon-auth-token')!;
    assert.match(token, /^eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9\.[\w-]+\.[\w-]+$/, "Xenon's JWT header");
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    assert.equal(claims.iss, 'xn');
    assert.equal(claims.sub, ADMIN_LINK);
    assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 120)) < 5);
    assert.ok(claims.exp >= Date.now() / 1000 + 119, 'the session lasts at least the seconds asked for');
    const cookie = r.headers.get('set-cookie')!;
    assert.match(cookie, new RegExp(`^xenon-auth-cookie=${token.replace(/\./g, '\\.')}; Max-Age=120; Expires=.+; Path=/; HttpOnly`));
    assert.equal((await http('GET', `${h.uri}/core/node-groups/default`, undefined, as(token))).status, 200);
    assert.equal((await http('GET', `${h.uri}/core/node-groups/default`, undefined, { cookie: `other=1; xenon-auth-cookie=${token}` })).status, 200);
  });

  it('creates the admin at a link derived from --adminUser and stamps documentAuthPrincipalLink', async () => {
    const u = await http('GET', `${h.uri}${ADMIN_LINK}`, undefined, as(admin));
    assert.equal(u.status, 200);
    assert.equal(u.json.email, ADMIN);
    const e = await http('POST', `${h.uri}/core/examples`, { name: 'stamped', documentSelfLink: 'stamped' }, as(admin));
    assert.equal(e.json.documentAuthPrincipalLink, ADMIN_LINK);
    const me = await http('GET', `${h.uri}/core/authz/verification?path=/core/examples&action=DELETE`, undefined, as(admin));
    assert.deepEqual([me.json.principal, me.json.allowed], [ADMIN_LINK, true]);
  });

  it('stores passwords only as salted hashes and never returns credentials, not even to the admin', async () => {
    const password = 'bob-Secret-pw:with-colon';
    const link = await createUser(h.uri, admin, 'bob@example.com');
    assert.equal(link, '/core/authz/users/bob@example.com', 'the link is derived from the email');
    const c = await http('POST', `${h.uri}/core/auth/credentials`, { userEmail: 'bob@example.com', privateKey: password }, as(admin));
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json.privateKey, undefined, 'not in the POST answer');
    assert.equal(c.json.documentSelfLink, '/core/auth/credentials/bob@example.com');
    await login(h.uri, 'bob@example.com', password);
    assert.equal((await http('GET', `${h.uri}${c.json.documentSelfLink}`, undefined, as(admin))).status, 403);
    assert.equal((await http('GET', `${h.uri}/core/document-index?documentSelfLink=${c.json.documentSelfLink}`, undefined, as(admin))).status, 403);
    const listing = await http('GET', `${h.uri}/core/auth/credentials?expand`, undefined, as(admin));
    assert.deepEqual(listing.json.documentLinks, []);
    const query = await http(
      'POST',
      `${h.uri}/core/query-tasks`,
      { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'userEmail', matchValue: 'bob@example.com' } }, options: ['EXPAND_CONTENT'] } },
      as(admin),
    );
    assert.deepEqual(query.json.results.documentLinks, []);
    const p = await http('PATCH', `${h.uri}${c.json.documentSelfLink}`, { privateKey: 'bob-new-pw' }, as(admin));
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.privateKey, undefined);
    await login(h.uri, 'bob@example.com', 'bob-new-pw');
    assert.equal((await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic('bob@example.com', password))).status, 403);
    for (const f of ['index.sqlite', 'index.sqlite-wal']) {
      const path = join(h.sandbox, f);
      if (!existsSync(path)) continue;
      const bytes = readFileSync(path);
      assert.ok(!bytes.includes(password) && !bytes.includes('bob-new-pw') && !bytes.includes(ADMIN_PASSWORD), `no clear password in ${f}`);
    }
  });

  let alice = '';
  let aliceLink = '';
  it('lets roles decide every request: verbs, resource groups, and a DENY that always wins', async () => {
    aliceLink = await createUser(h.uri, admin, 'alice@example.com', 'alice-pw');
    await grant(h.uri, admin, 'alice-examples', { userLinks: [aliceLink], query: q.any(q.prefix('/core/examples')), verbs: ['GET', 'POST'] });
    await grant(h.uri, admin, 'alice-no-secrets', { userLinks: [aliceLink], query: q.any(q.field('name', 'secret')), verbs: ['GET'], policy: 'DENY' });
    for (const name of ['pub', 'secret', 'pub2']) assert.equal((await http('POST', `${h.uri}/core/examples`, { name, documentSelfLink: name }, as(admin))).status, 200);
    alice = await login(h.uri, 'alice@example.com', 'alice-pw');
    assert.equal((await http('GET', `${h.uri}/core/examples/pub`, undefined, as(alice))).status, 200);
    const denied = await http('GET', `${h.uri}/core/examples/secret`, undefined, as(alice));
    assert.equal(denied.status, 403);
    assert.equal(denied.json.message, 'forbidden: /core/authz/users/alice@example.com may not GET /core/examples/secret');
    const list = await http('GET', `${h.uri}/core/examples?expand`, undefined, as(alice));
    assert.deepEqual(list.json.documentLinks.sort(), ['/core/examples/pub', '/core/examples/pub2', '/core/examples/stamped']);
    assert.deepEqual(Object.keys(list.json.documents).sort(), ['/core/examples/pub', '/core/examples/pub2', '/core/examples/stamped']);
    const odata = await http('GET', `${h.uri}/core/examples?$filter=name eq secret&$count=true`, undefined, as(alice));
    assert.equal(odata.json.totalCount, 0);
    const direct = await http(
      'POST',
      `${h.uri}/core/query-tasks`,
      { taskInfo: { isDirect: true }, querySpec: { query: { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } } } },
      as(alice),
    );
    assert.equal(direct.status, 200, direct.text);
    assert.ok(!direct.json.results.documentLinks.includes('/core/examples/secret'));
    assert.ok(direct.json.results.documentLinks.includes('/core/examples/pub'));
    assert.equal((await http('GET', `${h.uri}${ADMIN_LINK}`, undefined, as(alice))).status, 403, 'nothing outside her resource group');
    assert.equal((await http('DELETE', `${h.uri}/core/examples/pub`, undefined, as(alice))).status, 403, 'no DELETE verb');
    assert.equal((await http('PATCH', `${h.uri}/core/examples/pub`, { counter: 3 }, as(alice))).status, 403, 'no PATCH verb');
    const created = await http('POST', `${h.uri}/core/examples`, { name: 'by-alice', documentSelfLink: 'by-alice' }, as(alice));
    assert.equal(created.status, 200, created.text);
    assert.equal(created.json.documentAuthPrincipalLink, aliceLink);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'pub', documentSelfLink: 'pub' }, as(alice))).status, 409, 'a POST to an existing link is a conflict, not a bypass');
    assert.equal((await http('POST', `${h.uri}/core/authz/users`, { email: 'mallory@example.com' }, as(alice))).status, 403);
  });

  it('applies role changes to tokens already issued (no new login)', async () => {
    const r = await http('PATCH', `${h.uri}/core/authz/roles/alice-examples-role`, { verbs: ['GET', 'POST', 'PATCH'] }, as(admin));
    assert.equal(r.status, 200, r.text);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/pub`, { counter: 3 }, as(alice))).status, 200);
  });

  it('checks a write against the state it produces, not only the current one', async () => {
    const carolLink = await createUser(h.uri, admin, 'carol@example.com', 'carol-pw');
    await grant(h.uri, admin, 'carol-blue', { userLinks: [carolLink], query: q.any(q.field('tags.item', 'blue')), verbs: ['GET', 'POST', 'PUT', 'PATCH'] });
    const carol = await login(h.uri, 'carol@example.com', 'carol-pw');
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'b', tags: ['blue'], documentSelfLink: 'carol-b' }, as(carol))).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'r', tags: ['red'], documentSelfLink: 'carol-r' }, as(carol))).status, 403);
    const put = await http('PUT', `${h.uri}/core/examples/carol-b`, { name: 'b', tags: ['red'] }, as(carol));
    assert.equal(put.status, 403, 'moving a document out of her resource group is refused');
    assert.match(put.json.message, /resulting state/);
    // A history import replays every version: each one is a state she writes, not only the last.
    const version = (name: string, tags: string[], n: number, action: string) => ({
      documentSelfLink: 'carol-h',
      name,
      tags,
      documentVersion: n,
      documentUpdateAction: action,
      documentUpdateTimeMicros: 1_700_000_000_000_000 + n,
    });
    const history = { destinationFactoryLink: '/core/examples', history: true, documents: [{ versions: [version('hidden', ['red'], 0, 'POST'), version('h', ['blue'], 1, 'PUT')] }] };
    assert.equal((await http('POST', `${h.uri}/management/migration-import`, history, as(carol))).status, 403);
    assert.equal((await http('GET', `${h.uri}/core/examples/carol-h`, undefined, as(admin))).status, 404);
    const malformed = await http('POST', `${h.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', history: true, documents: [{ versions: {} }] }, as(carol));
    assert.equal(malformed.status, 400);
    assert.match(malformed.json.message, /versions/);
  });

  it('shows query tasks and result pages only to their creator', async () => {
    const spec = { querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: '/core/examples/', matchType: 'PREFIX' } }, resultLimit: 1 } };
    const task = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, ...spec }, as(alice));
    const page = task.json.results.nextPageLink;
    assert.ok(page);
    const bob = await login(h.uri, 'bob@example.com', 'bob-new-pw');
    assert.equal((await http('GET', `${h.uri}${page}`, undefined, as(bob))).status, 403);
    assert.equal((await http('GET', `${h.uri}${page}`)).status, 403);
    const mine = await http('GET', `${h.uri}${page}`, undefined, as(alice));
    assert.equal(mine.status, 200, mine.text);
    assert.equal(mine.json.results.documentLinks.length, 1);
    const async = await http('POST', `${h.uri}/core/query-tasks`, spec, as(alice));
    assert.equal(async.status, 202);
    assert.equal(async.json.documentAuthPrincipalLink, aliceLink);
    assert.equal((await http('GET', `${h.uri}${async.json.documentSelfLink}`, undefined, as(bob))).status, 403);
    assert.equal((await http('GET', `${h.uri}${async.json.documentSelfLink}`, undefined, as(alice))).status, 200);
    const bobsView = await http('GET', `${h.uri}/core/query-tasks`, undefined, as(bob));
    assert.ok(!bobsView.json.documentLinks.includes(async.json.documentSelfLink));
    assert.ok((await http('GET', `${h.uri}/core/query-tasks`, undefined, as(admin))).json.documentLinks.includes(async.json.documentSelfLink));
  });

  it('expands selected links (EXPAND_LINKS) only as far as the caller may read', async () => {
    const made = await http('POST', `${h.uri}/core/examples`, { name: 'pointer', documentSelfLink: 'pointer', tags: ['/core/examples/pub', '/core/examples/secret'] }, as(admin));
    assert.equal(made.status, 200, made.text);
    const spec = { query: { term: { propertyName: 'name', matchValue: 'pointer' } }, options: ['SELECT_LINKS', 'EXPAND_LINKS'], linkTerms: [{ propertyName: 'tags' }] };
    const r = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: spec }, as(alice));
    assert.equal(r.status, 200, r.text);
    const selected = r.json.results.selectedDocuments;
    assert.equal(selected['/core/examples/pub'].name, 'pub');
    assert.equal(selected['/core/examples/secret'].statusCode, 403, 'alice may not read secret, so its GET answered 403');
    assert.equal(selected['/core/examples/secret'].name, undefined);
    const asAdmin = await http('POST', `${h.uri}/core/query-tasks`, { taskInfo: { isDirect: true }, querySpec: spec }, as(admin));
    assert.equal(asAdmin.json.results.selectedDocuments['/core/examples/secret'].name, 'secret');
  });

  it('notifies a subscriber only of documents it may read, and lets only readers subscribe to a document', async () => {
    const l = await startListener();
    try {
      assert.equal((await http('POST', `${h.uri}/core/examples/subscriptions`, { reference: l.url('/alice') }, as(alice))).status, 200);
      for (const [name, link] of [
        ['secret', 'secret-2'],
        ['open', 'open-1'],
      ]) {
        assert.equal((await http('POST', `${h.uri}/core/examples`, { name, documentSelfLink: link }, as(admin))).status, 200);
      }
      const got = await waitFor(async () => l.at('/alice').length >= 1 && l.at('/alice'), "alice's notification");
      // Notifications leave in order, so secret-2's would have come first.
      assert.deepEqual(
        got.map((r) => r.body.documentSelfLink),
        ['/core/examples/open-1'],
      );
      const denied = await http('POST', `${h.uri}/core/examples/secret/subscriptions`, { reference: l.url('/secret') }, as(alice));
      assert.equal(denied.status, 403, denied.text);
      assert.equal((await http('POST', `${h.uri}/core/examples/pub/subscriptions`, { reference: l.url('/guest') })).status, 403, 'a guest may not read pub');
      assert.equal((await http('POST', `${h.uri}/core/examples/pub/subscriptions`, { reference: l.url('/pub') }, as(alice))).status, 200);
    } finally {
      await l.close();
    }
  });

  it("reports to a CONTINUOUS query only documents its creator may read, and lets only the task's readers subscribe", async () => {
    const l = await startListener();
    try {
      const query = { term: { propertyName: 'documentKind', matchValue: 'com:vmware:xenon:services:common:ExampleService:ExampleServiceState' } };
      const created = await http('POST', `${h.uri}/core/query-tasks`, { querySpec: { query, options: ['CONTINUOUS', 'EXPAND_CONTENT'] } }, as(alice));
      assert.equal(created.status, 202, created.text);
      const task = `${h.uri}${created.json.documentSelfLink}`;
      await waitFor(async () => (await http('GET', task, undefined, as(alice))).json.results !== undefined, "alice's initial results");
      assert.equal((await http('POST', `${task}/subscriptions`, { reference: l.url('/cq-guest') })).status, 403, 'a guest may not read the task');
      assert.equal((await http('POST', `${task}/subscriptions`, { reference: l.url('/cq-alice') }, as(alice))).status, 200);
      for (const [name, link] of [
        ['secret', 'secret-cq'],
        ['open', 'open-cq'],
      ]) {
        assert.equal((await http('POST', `${h.uri}/core/examples`, { name, documentSelfLink: link }, as(admin))).status, 200);
      }
      const got = await waitFor(async () => l.at('/cq-alice').length >= 1 && l.at('/cq-alice'), "alice's continuous result");
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        l.at('/cq-alice').map((r) => r.body.results.documentLinks),
        [['/core/examples/open-cq']],
        'secret-cq, which alice may not read, is not reported',
      );
      assert.equal(got[0]!.body.results.continuousResults.documentCountAdded, 1);
      assert.equal((await http('DELETE', task, undefined, as(alice))).status, 200);
    } finally {
      await l.close();
    }
  });

  it('refuses a role naming a missing group, keeps a used resource group, and fails closed on a dangling DENY', async () => {
    const missing = await http(
      'POST',
      `${h.uri}/core/authz/roles`,
      { userGroupLink: '/core/authz/user-groups/alice-examples-users', resourceGroupLink: '/core/authz/resource-groups/nope', verbs: ['GET'], policy: 'ALLOW' },
      as(admin),
    );
    assert.equal(missing.status, 400);
    assert.equal(missing.json.message, 'resourceGroupLink /core/authz/resource-groups/nope does not exist: create it under /core/authz/resource-groups first');
    const noGroup = await http(
      'POST',
      `${h.uri}/core/authz/roles`,
      { userGroupLink: '/core/authz/user-groups/nope', resourceGroupLink: '/core/authz/resource-groups/alice-examples-resources', verbs: ['GET'], policy: 'ALLOW' },
      as(admin),
    );
    assert.equal(noGroup.status, 400);
    const badVerb = await http(
      'POST',
      `${h.uri}/core/authz/roles`,
      { userGroupLink: '/core/authz/user-groups/alice-examples-users', resourceGroupLink: '/core/authz/resource-groups/alice-examples-resources', verbs: ['FLY'], policy: 'ALLOW' },
      as(admin),
    );
    assert.equal(badVerb.status, 400);
    const used = await http('DELETE', `${h.uri}/core/authz/resource-groups/alice-examples-resources`, undefined, as(admin));
    assert.equal(used.status, 409);
    assert.match(used.json.message, /is used by role \/core\/authz\/roles\/alice-examples-role/);
    // A migrated role may arrive before its resource group: a DENY then denies everything (fail closed).
    const dangling = await http(
      'POST',
      `${h.uri}/core/authz/roles`,
      { documentSelfLink: 'dangling', userGroupLink: '/core/authz/user-groups/alice-examples-users', resourceGroupLink: '/core/authz/resource-groups/not-yet', verbs: ['GET'], policy: 'DENY' },
      { ...as(admin), pragma: 'xn-from-migration' },
    );
    assert.equal(dangling.status, 200, dangling.text);
    assert.equal((await http('GET', `${h.uri}/core/examples/pub`, undefined, as(alice))).status, 403);
    assert.equal((await http('DELETE', `${h.uri}/core/authz/roles/dangling`, undefined, as(admin))).status, 200);
    assert.equal((await http('GET', `${h.uri}/core/examples/pub`, undefined, as(alice))).status, 200);
  });

  it('treats tampered, malformed, expired, foreign-key, unknown-user and revoked tokens as guest, saying why', async () => {
    const probe = async (token: string) => http('GET', `${h.uri}/core/node-groups/default`, undefined, as(token));
    const [hd, pl, sig] = alice.split('.');
    const tampered = await probe(`${hd}.${pl}.${sig!.slice(0, -3)}${sig!.endsWith('AAA') ? 'BBB' : 'AAA'}`);
    assert.equal(tampered.status, 403);
    assert.match(tampered.json.message, /guest \(the auth token was refused: bad signature/);
    const forged = await probe(`${hd}.${Buffer.from(JSON.stringify({ iss: 'xn', sub: '/core/authz/system-user', exp: 9e9 })).toString('base64url')}.${sig}`);
    assert.match(forged.json.message, /bad signature/);
    assert.match((await probe('not-a-token')).json.message, /refused: malformed/);
    const foreign = new TokenSigner(new TextEncoder().encode('a-key-nobody-shares-a-key-nobody-shares'), () => Date.now() * 1000).sign(ADMIN_LINK, Math.floor(Date.now() / 1000) + 60);
    assert.match((await probe(foreign)).json.message, /bad signature/);
    const ghost = await probe(hostKey.sign('/core/authz/users/ghost@example.com', Math.floor(Date.now() / 1000) + 60));
    assert.match(ghost.json.message, /user \/core\/authz\/users\/ghost@example.com does not exist on this host/);
    // Token expiry has a resolution of one second: a 2 s session is valid now and expired after 3.1 s.
    const short = await login(h.uri, ADMIN, ADMIN_PASSWORD, 2);
    assert.equal((await probe(short)).status, 200);
    await new Promise((r) => setTimeout(r, 3100));
    const expired = await probe(short);
    assert.equal(expired.status, 403);
    assert.match(expired.json.message, /refused: expired/);
    const session = await login(h.uri, ADMIN, ADMIN_PASSWORD);
    const out = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGOUT' }, as(session));
    assert.equal(out.status, 200);
    assert.match(out.headers.get('set-cookie')!, /^xenon-auth-cookie=; Max-Age=0/);
    const revoked = await probe(session);
    assert.equal(revoked.status, 403);
    assert.match(revoked.json.message, /revoked \(logged out\)/);
    assert.equal((await probe(admin)).status, 200, 'other sessions of the same user keep working');
    assert.equal((await http('GET', `${h.uri}/core/examples/available`)).status, 200, 'the host is up');
  });

  it('ends the sessions a user started before a password change, and only those', async () => {
    const carolLink = await createUser(h.uri, admin, 'carol@example.com', 'carol-pw-1');
    await grant(h.uri, admin, 'carol-examples', { userLinks: [carolLink], query: q.any(q.prefix('/core/examples')), verbs: ['GET', 'POST'] });
    const before = await login(h.uri, 'carol@example.com', 'carol-pw-1');
    const claims = JSON.parse(Buffer.from(before.split('.')[1]!, 'base64url').toString());
    assert.equal(typeof claims.iat, 'number', 'a login token carries iat (Xenon Claims.issuedAt)');
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-1' }, as(before))).status, 200);
    const bystander = await login(h.uri, 'alice@example.com', 'alice-pw');
    const credentials = '/core/auth/credentials/carol@example.com';
    // iat has a resolution of one second: a token of the very second of the change stays valid.
    await new Promise((r) => setTimeout(r, 1100));
    const forged = await http('PATCH', `${h.uri}${credentials}`, { passwordChangedTimeMicros: 9e15 }, as(admin));
    assert.equal(forged.status, 200, forged.text);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-1b' }, as(before))).status, 200, 'the stamp is the host’s, not a client’s: nothing changed');

    const changed = await http('PATCH', `${h.uri}${credentials}`, { privateKey: 'carol-pw-2' }, as(admin));
    assert.equal(changed.status, 200, changed.text);
    const refused = await http('POST', `${h.uri}/core/examples`, { name: 'carol-2' }, as(before));
    assert.equal(refused.status, 403);
    assert.match(refused.json.message, /guest \(the auth token was issued before the password of \/core\/authz\/users\/carol@example.com was changed\)/);
    assert.equal((await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic('carol@example.com', 'carol-pw-1'))).status, 403, 'the old password is refused');
    const after = await login(h.uri, 'carol@example.com', 'carol-pw-2');
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-3' }, as(after))).status, 200, 'a login after the change works');
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'alice-x' }, as(bystander))).status, 200, 'other users keep their sessions');

    // Changing something else on the credentials is not a password change.
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await http('PATCH', `${h.uri}${credentials}`, { customProperties: { team: 'ops' } }, as(admin))).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-4' }, as(after))).status, 200);
    // Setting the same password again is not a change either (an admin bootstrap on every member does).
    assert.equal((await http('POST', `${h.uri}/core/auth/credentials`, { userEmail: 'carol@example.com', privateKey: 'carol-pw-2' }, as(admin))).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-4b' }, as(after))).status, 200);
    // A POST that sets a password on existing credentials (idempotent POST: a PUT) is a change.
    assert.equal((await http('POST', `${h.uri}/core/auth/credentials`, { userEmail: 'carol@example.com', privateKey: 'carol-pw-3' }, as(admin))).status, 200);
    assert.equal((await http('POST', `${h.uri}/core/examples`, { name: 'carol-5' }, as(after))).status, 403);
    await login(h.uri, 'carol@example.com', 'carol-pw-3');
  });

  it('accepts peer traffic (replication pragmas) only from the system identity of the group', async () => {
    const rpl = await http('PUT', `${h.uri}/core/examples/pub`, { name: 'pub' }, { ...as(admin), pragma: 'xn-rpl' });
    assert.equal(rpl.status, 403);
    assert.match(rpl.json.message, /accepted only from (the system identity|members of the node group)/);
    assert.equal((await http('PATCH', `${h.uri}/core/examples/pub`, { counter: 4 }, { ...as(admin), pragma: 'xn-synch-owner' })).status, 403);
    const system = hostKey.sign('/core/authz/system-user', Math.floor(Date.now() / 1000) + 60);
    const who = await http('GET', `${h.uri}/core/authz/verification`, undefined, as(system));
    assert.equal(who.json.isSystem, true);
    assert.equal((await http('PUT', `${h.uri}/core/examples/pub`, { name: 'pub' }, { ...as(system), pragma: 'xn-rpl' })).status, 200);
    assert.equal(
      (await http('GET', `${h.uri}/core/auth/credentials/bob@example.com`, undefined, as(system))).json.privateKey.startsWith('$scrypt$'),
      true,
      'the system identity reads hashes (migration)',
    );
  });

  it('slows down repeated failed logins, per user', async () => {
    const timed = async (password: string) => {
      const t0 = performance.now();
      const r = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic('alice@example.com', password));
      return { status: r.status, ms: performance.now() - t0 };
    };
    const first = [await timed('x1'), await timed('x2'), await timed('x3')];
    assert.deepEqual(
      first.map((a) => a.status),
      [403, 403, 403],
    );
    const fourth = await timed('x4');
    const fifth = await timed('x5');
    assert.ok(fourth.ms >= 150, `4th attempt delayed (${fourth.ms} ms)`);
    assert.ok(fifth.ms >= 350 && fifth.ms > fourth.ms, `5th attempt delayed more (${fifth.ms} ms)`);
    const right = await timed('alice-pw');
    assert.equal(right.status, 200);
    assert.ok(right.ms >= 700, `even the right password waits its turn (${right.ms} ms)`);
    const after = await timed('alice-pw');
    assert.equal(after.status, 200);
    assert.ok(after.ms < right.ms - 400, `a success clears the record (${after.ms} ms after ${right.ms} ms)`);
    // A burst of parallel guesses, before any failure was recorded, queues too (it ran at once).
    const t0 = performance.now();
    const burst = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const r = await http('POST', `${h.uri}${LOGIN}`, { requestType: 'LOGIN' }, basic('burst@example.com', `guess-${i}`));
        return { status: r.status, ms: performance.now() - t0 };
      }),
    );
    assert.ok(burst.every((b) => b.status === 403));
    const slowest = Math.max(...burst.map((b) => b.ms));
    assert.ok(slowest >= 1700, `the sixth parallel guess waited for the five before it (${Math.round(slowest)} ms)`);
  });
});

describe('auth at start-up: keys and the admin', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [CLI, 'host', '--port=0', '--logLevel=warn', ...args], { encoding: 'utf8', timeout: 20_000 });

  it('refuses an unreadable key file or a wrong passphrase with a clear message', () => {
    const dir = tempDir();
    const key = writeKeyFile(dir, 'k.pem', 'right');
    for (const [args, message] of [
      [[`--keyFile=${join(dir, 'missing.pem')}`], /cannot read --keyFile=/],
      [[`--keyFile=${key}`, '--keyPassphrase=wrong'], /cannot load --keyFile=.*: wrong --keyPassphrase/],
      [[`--keyFile=${key}`], /cannot load --keyFile=.*: the key is encrypted; give --keyPassphrase/],
      [[`--keyFile=${join(ROOT, 'package.json')}`], /cannot load --keyFile=.*: not a PEM private key/],
    ] as const) {
      const r = cli([`--sandbox=${tempDir()}`, ...AUTH_ARGS, ...args]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
    }
  });

  it('needs --adminPassword to bootstrap, not to restart; the generated key survives restarts (mode 0600)', async () => {
    const sandbox = tempDir();
    const first = cli([`--sandbox=${sandbox}`, '--isAuthorizationEnabled=true']);
    assert.equal(first.status, 1);
    assert.match(first.stderr, /auth is on but there is no admin user admin@localhost yet: start the host with --adminPassword/);
    const h = await startHost([...AUTH_ARGS, '--adminUser=root@example.com'], { sandbox });
    const token = await login(h.uri, 'root@example.com', ADMIN_PASSWORD);
    assert.equal((await http('GET', `${h.uri}/core/authz/users/root@example.com`, undefined, as(token))).status, 200);
    assert.equal(statSync(join(sandbox, 'auth-signing.key')).mode & 0o777, 0o600);
    await h.stop();
    const again = await startHost(['--isAuthorizationEnabled=true', '--adminUser=root@example.com'], { sandbox });
    try {
      assert.equal((await http('GET', `${again.uri}/core/node-groups/default`, undefined, as(token))).status, 200, 'a token from before the restart');
    } finally {
      await again.stop();
    }
  });

  it('changes nothing when auth is off: no auth services, no principal stamped', async () => {
    const h = await startHost(['--adminPassword=x']);
    try {
      const root = await http('GET', `${h.uri}/`);
      assert.ok(!root.json.documentLinks.some((l: string) => l.startsWith('/core/authz') || l.startsWith('/core/auth')));
      assert.equal((await http('POST', `${h.uri}/core/authn/basic`, { requestType: 'LOGIN' }, basic(ADMIN, 'x'))).status, 404);
      const e = await http('POST', `${h.uri}/core/examples`, { name: 'x' }, as('whatever'));
      assert.equal(e.status, 200);
      assert.equal(e.json.documentAuthPrincipalLink, undefined);
    } finally {
      await h.stop();
    }
  });
});
