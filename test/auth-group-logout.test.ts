import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { as, createUser, grant, loginWhenKnown, q, startAuthGroup, writeKeyFile } from './support/auth.js';

const USER = 'dora@example.com';
const USER_PASSWORD = 'dora-pw';
const DOC = '/core/examples/dora-doc';

/**
 * DECISIONS.md: "Logout revokes the token on every member of the group that issued it."
 * docs/auth.md: the revocation is a replicated document, so a logout on one member reaches all.
 */
describe('logout in a node group with auth on (three members)', () => {
  const dir = tempDir();
  const keyFile = writeKeyFile(dir, 'group-key.pem');
  let members: RunningHost[] = [];
  let args: string[][] = [];
  let admin = '';

  before(async () => {
    ({ members, args, admin } = await startAuthGroup('lo', keyFile));
    const userLink = await createUser(members[0]!.uri, admin, USER, USER_PASSWORD);
    await grant(members[0]!.uri, admin, 'dora-read', { userLinks: [userLink], query: q.any(q.link(DOC)), verbs: ['GET'] });
    const d = await http('POST', `${members[1]!.uri}/core/examples`, { name: 'dora may read this', documentSelfLink: 'dora-doc' }, as(admin));
    assert.equal(d.status, 200, d.text);
  });
  after(async () => {
    await Promise.all(members.map((m) => m.stop()));
  });

  it('accepts a token issued by one member on all three, and refuses it everywhere after LOGOUT on that member', async () => {
    const token = await loginWhenKnown(members[0]!.uri, USER, USER_PASSWORD);
    // A second session of the same user, which the logout must leave alone.
    const other = await loginWhenKnown(members[0]!.uri, USER, USER_PASSWORD);
    assert.notEqual(other, token);

    for (const m of members) {
      const r = await waitFor(async () => {
        const g = await http('GET', `${m.uri}${DOC}`, undefined, as(token));
        return g.status === 200 ? g : undefined;
      }, `the token to be accepted on ${m.uri}`);
      assert.equal(r.json.name, 'dora may read this');
      // Not merely readable by anyone: without the token the document is refused.
      assert.equal((await http('GET', `${m.uri}${DOC}`)).status, 403);
    }

    const out = await http('POST', `${members[0]!.uri}/core/authn/basic`, { requestType: 'LOGOUT' }, as(token));
    assert.equal(out.status, 200, out.text);
    assert.match(out.headers.get('set-cookie') ?? '', /xenon-auth-cookie=;.*Max-Age=0/, 'the cookie is cleared');

    for (const m of members) {
      const refused = await waitFor(
        async () => {
          const g = await http('GET', `${m.uri}${DOC}`, undefined, as(token));
          return g.status === 403 ? g : undefined;
        },
        `the logged-out token to be refused on ${m.uri}`,
        15_000,
      );
      assert.match(refused.json.message, /revoked/, `the 403 says why on ${m.uri}: ${refused.text}`);
      assert.ok(!refused.text.includes('dora may read this'));
    }

    // The revocation is for that token only: the other session still works everywhere.
    for (const m of members) {
      const g = await http('GET', `${m.uri}${DOC}`, undefined, as(other));
      assert.equal(g.status, 200, `the other session on ${m.uri}: ${g.text}`);
    }
  });

  it('revokes a token everywhere when it logs out through another member than the one that issued it', async () => {
    const token = await loginWhenKnown(members[1]!.uri, USER, USER_PASSWORD);
    for (const m of members) assert.equal((await http('GET', `${m.uri}${DOC}`, undefined, as(token))).status, 200, `before logout on ${m.uri}`);
    const out = await http('POST', `${members[2]!.uri}/core/authn/basic`, { requestType: 'LOGOUT' }, as(token));
    assert.equal(out.status, 200, out.text);
    for (const m of members) {
      await waitFor(async () => (await http('GET', `${m.uri}${DOC}`, undefined, as(token))).status === 403, `the logged-out token to be refused on ${m.uri}`, 15_000);
    }
    // Logging in again gives a new, working session.
    const again = await loginWhenKnown(members[2]!.uri, USER, USER_PASSWORD);
    for (const m of members) assert.equal((await http('GET', `${m.uri}${DOC}`, undefined, as(again))).status, 200, `a new session on ${m.uri}`);
  });

  it('refuses the token on a member that was down during the logout, once it is back', async () => {
    const token = await loginWhenKnown(members[0]!.uri, USER, USER_PASSWORD);
    for (const m of members) assert.equal((await http('GET', `${m.uri}${DOC}`, undefined, as(token))).status, 200, `before logout on ${m.uri}`);
    const down = members[2]!;
    await down.stop();
    // Two of three members form the quorum: the logout is recorded.
    const out = await http('POST', `${members[0]!.uri}/core/authn/basic`, { requestType: 'LOGOUT' }, as(token));
    assert.equal(out.status, 200, out.text);
    for (const m of members.slice(0, 2)) {
      await waitFor(async () => (await http('GET', `${m.uri}${DOC}`, undefined, as(token))).status === 403, `the logged-out token to be refused on ${m.uri}`, 15_000);
    }
    members[2] = await startHost(args[2]!, { port: down.port, sandbox: down.sandbox });
    const refused = await waitFor(
      async () => {
        const g = await http('GET', `${members[2]!.uri}${DOC}`, undefined, as(token));
        return g.status === 403 ? g : undefined;
      },
      'the logged-out token to be refused on the restarted member',
      20_000,
    );
    assert.match(refused.json.message, /revoked/);
    // The member is serving: a live session reads the document through it.
    const live = await loginWhenKnown(members[2]!.uri, USER, USER_PASSWORD);
    assert.equal((await http('GET', `${members[2]!.uri}${DOC}`, undefined, as(live))).status, 200);
  });
});
