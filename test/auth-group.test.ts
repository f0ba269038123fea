import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI, http, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { ADMIN, ADMIN_PASSWORD, AUTH_ARGS, as, createAs, createUser, grant, loginWhenKnown, q, startAuthGroup, writeKeyFile } from './support/auth.js';

/**
 * A node group with auth on: a member that takes a client's request and forwards it to the
 * document's owner must not lend the client the group's own (system) identity there.
 */
describe('auth in a node group (three members, default quorum)', () => {
  const dir = tempDir();
  const keyFile = writeKeyFile(dir, 'group-key.pem');
  let members: RunningHost[] = [];
  let blue: RunningHost;
  let admin = '';

  before(async () => {
    ({ members, admin } = await startAuthGroup('ag', keyFile));
    blue = await startHost([...AUTH_ARGS, `--keyFile=${keyFile}`, '--id=ag-blue']);
  });
  after(async () => {
    await Promise.all([...members, blue].map((m) => m.stop()));
  });

  it('starts fresh with the default quorum, and the admin logs in on every member', async () => {
    for (const m of members) await loginWhenKnown(m.uri, ADMIN, ADMIN_PASSWORD);
  });

  it("checks a user's writes on the owner as that user, whichever member takes them", async () => {
    const carolLink = await createUser(members[0]!.uri, admin, 'carol@example.com', 'carol-pw');
    await grant(members[0]!.uri, admin, 'carol-blue', { userLinks: [carolLink], query: q.any(q.field('tags.item', 'blue')), verbs: ['GET', 'POST', 'PUT', 'PATCH'] });
    const carol = await loginWhenKnown(members[1]!.uri, 'carol@example.com', 'carol-pw');
    const links = [];
    for (let i = 0; i < 12; i++) {
      const r = await http('POST', `${members[i % 3]!.uri}/core/examples`, { name: `c-${i}`, tags: ['blue'], documentSelfLink: `carol-${i}` }, as(carol));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.documentAuthPrincipalLink, carolLink, 'stamped with the user, not the system identity');
      links.push(r.json.documentSelfLink as string);
    }
    const owners = new Set<string>();
    for (const link of links) {
      owners.add((await http('GET', `${members[0]!.uri}${link}`, undefined, as(admin))).json.documentOwner);
      // Carol may write blue documents only: a PUT that would make one red is refused on every member.
      for (const m of members) {
        const put = await http('PUT', `${m.uri}${link}`, { name: 'now red', tags: ['red'] }, as(carol));
        assert.equal(put.status, 403, `PUT ${link} through ${m.uri}: ${put.text}`);
        assert.match(put.json.message, /resulting state/);
      }
      const red = await http('POST', `${members[1]!.uri}/core/examples`, { name: 'red', tags: ['red'], documentSelfLink: `${link.split('/').pop()}-red` }, as(carol));
      assert.equal(red.status, 403, red.text);
    }
    assert.equal(owners.size, 3, 'the documents are spread over all three owners');
  });

  it('never answers a password hash, whichever member owns the credentials', async () => {
    for (let i = 0; i < 9; i++) {
      const user = `u${i}@example.com`;
      const r = await http('POST', `${members[i % 3]!.uri}/core/authz/users`, { email: user }, as(admin));
      assert.equal(r.status, 200, r.text);
      const c = await http('POST', `${members[(i + 1) % 3]!.uri}/core/auth/credentials`, { userEmail: user, privateKey: `pw-${i}` }, as(admin));
      assert.equal(c.status, 200, c.text);
      assert.ok(!c.text.includes('$scrypt') && !c.text.includes(`pw-${i}`), `credentials reply through ${members[(i + 1) % 3]!.uri}: ${c.text}`);
    }
  });

  it("migrates into the group with the task creator's identity, each document written by its owner", async () => {
    await createAs(blue.uri, admin, 60, 'm');
    const tasks: string[] = [];
    for (const m of members) {
      const r = await http(
        'POST',
        `${m.uri}/management/migration-tasks`,
        {
          sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
          destinationNodeGroupReference: `${m.uri}/core/node-groups/default`,
          sourceFactoryLink: '/core/examples',
          destinationFactoryLink: '/core/examples',
        },
        as(admin),
      );
      assert.equal(r.status, 200, r.text);
      assert.match(r.json.ownerPrincipal, /\/core\/authz\/users\/admin@localhost$/, 'the creator, not the system identity');
      tasks.push(r.json.documentSelfLink);
      const done = await waitFor(
        async () => {
          const t = (await http('GET', `${m.uri}${r.json.documentSelfLink}`, undefined, as(admin))).json;
          return ['FINISHED', 'FAILED', 'CANCELLED'].includes(t?.taskInfo?.stage) ? t : undefined;
        },
        'the migration to end',
        60_000,
      );
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      assert.equal(done.progress.processedServiceCount + done.progress.skippedServiceCount, 60);
    }
    for (const m of members) {
      const listed = await waitFor(async () => {
        const r = await http('GET', `${m.uri}/core/examples?$filter=${encodeURIComponent("name eq 'm-*'")}&$count=true`, undefined, as(admin));
        return r.json?.totalCount === 60 ? r : undefined;
      }, `60 migrated documents on ${m.uri}`);
      assert.equal(listed.json.totalCount, 60);
    }
  });

  it('refuses a group member with auth on and no --keyFile (exit 2), the first member (no --peerNodes) too', () => {
    for (const group of [['--groupSecret=s', '--peerNodes=http://127.0.0.1:1'], ['--groupSecret=s']]) {
      const r = spawnSync(process.execPath, [CLI, 'host', '--port=0', ...AUTH_ARGS, ...group], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /same --keyFile/);
    }
  });
});
