import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, http, runCli, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { ADMIN, ADMIN_PASSWORD, AUTH_ARGS, as, comparableAs, createAs, createUser, grant, login, q, snapshotAs, writeKeyFile } from './support/auth.js';
import { TokenSigner } from '../src/auth/auth-token.js';

const PASSPHRASE = 'blue green pass phrase';

async function finished(base: string, link: string, token: string): Promise<any> {
  return waitFor(
    async () => {
      const t = (await http('GET', `${base}${link}`, undefined, as(token))).json;
      return ['FINISHED', 'FAILED', 'CANCELLED'].includes(t?.taskInfo?.stage) ? t : undefined;
    },
    `task ${link} to end`,
    60_000,
  );
}
const MIGRATOR = 'migrator@vmware.com';

describe('auth across two node groups sharing --keyFile (side-by-side upgrade)', () => {
  let blue: RunningHost;
  let green: RunningHost;
  let red: RunningHost;
  let adminBlue = '';
  let adminGreen = '';
  /** Tokens any member of blue or green could mint (the shared key), e.g. the system identity. */
  let groupKey: TokenSigner;
  const dir = tempDir();
  const keyFile = writeKeyFile(dir, 'upgrade-key.pem', PASSPHRASE);
  const task = (extra: Record<string, unknown> = {}) => ({
    sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
    destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
    sourceFactoryLink: '/core/examples',
    destinationFactoryLink: '/core/examples',
    ...extra,
  });

  const shared = [...AUTH_ARGS, `--keyFile=${keyFile}`, `--keyPassphrase=${PASSPHRASE}`];
  const greenArgs = [...shared, '--id=green', `--services=${join(ROOT, 'samples', 'employee-v2.mjs')}`];
  before(async () => {
    [blue, green, red] = await Promise.all([
      startHost([...shared, '--id=blue', `--services=${join(ROOT, 'samples', 'employee-v1.mjs')}`]),
      startHost(greenArgs),
      startHost([...AUTH_ARGS, '--id=red']),
    ]);
    [adminBlue, adminGreen] = await Promise.all([login(blue.uri, ADMIN, ADMIN_PASSWORD), login(green.uri, ADMIN, ADMIN_PASSWORD)]);
    const der = createPrivateKey({ key: readFileSync(keyFile), passphrase: PASSPHRASE }).export({ type: 'pkcs8', format: 'der' });
    groupKey = new TokenSigner(new Uint8Array(der), () => Date.now() * 1000);
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop(), red.stop()]);
  });

  it("gives both groups the same admin link, and each accepts the other's tokens; a host with another key does not", async () => {
    assert.equal((await http('GET', `${blue.uri}/core/authz/users/admin@localhost`, undefined, as(adminGreen))).status, 200);
    assert.equal((await http('GET', `${green.uri}/core/authz/users/admin@localhost`, undefined, as(adminBlue))).status, 200);
    const r = await http('GET', `${red.uri}/core/authz/users/admin@localhost`, undefined, as(adminBlue));
    assert.equal(r.status, 403);
    assert.match(r.json.message, /bad signature/);
  });

  it("works for the seeds' example@vmware.com: created on blue and on green, logged in on blue, token used on green", async () => {
    const onBlue = await createUser(blue.uri, adminBlue, 'example@vmware.com', 'example-Pw1');
    const onGreen = await createUser(green.uri, adminGreen, 'example@vmware.com');
    assert.equal(onBlue, '/core/authz/users/example@vmware.com');
    assert.equal(onGreen, onBlue, 'the same documentSelfLink on both groups');
    await grant(green.uri, adminGreen, 'example-reads', { userLinks: [onGreen], query: q.any(q.prefix('/core/examples')), verbs: ['GET'] });
    assert.equal((await http('POST', `${green.uri}/core/examples`, { name: 'hello', documentSelfLink: 'hello' }, as(adminGreen))).status, 200);
    const token = await login(blue.uri, 'example@vmware.com', 'example-Pw1');
    const r = await http('GET', `${green.uri}/core/examples/hello`, undefined, as(token));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.name, 'hello');
    assert.equal((await http('POST', `${green.uri}/core/examples`, { name: 'x' }, as(token))).status, 403, "green's own roles decide");
    assert.equal((await http('GET', `${red.uri}/core/examples`, undefined, as(token))).json.documentLinks.length, 0);
    await createUser(blue.uri, adminBlue, 'only-blue@vmware.com', 'only-Pw1');
    const stranger = await http('GET', `${green.uri}/core/examples/hello`, undefined, as(await login(blue.uri, 'only-blue@vmware.com', 'only-Pw1')));
    assert.equal(stranger.status, 403);
    assert.match(stranger.json.message, /user \/core\/authz\/users\/only-blue@vmware.com does not exist on this host/);
    // Logout revokes on the group that issued the token; green is another group (docs/auth.md).
    assert.equal((await http('POST', `${blue.uri}/core/authn/basic`, { requestType: 'LOGOUT' }, as(token))).status, 200);
    assert.match((await http('GET', `${blue.uri}/core/authz/verification`, undefined, as(token))).json.tokenProblem, /revoked \(logged out\)/);
  });

  let migratorLink = '';
  it('refuses a migration task to a user without read on the source factory or write on the destination factory', async () => {
    migratorLink = await createUser(green.uri, adminGreen, MIGRATOR, 'migrator-Pw1');
    assert.equal(await createUser(blue.uri, adminBlue, MIGRATOR), migratorLink);
    await grant(green.uri, adminGreen, 'migrator-tasks', {
      userLinks: [migratorLink],
      query: q.any(q.prefix('/management/migration-tasks'), q.link('/core/node-groups/default')),
      verbs: ['GET', 'POST', 'PATCH'],
    });
    const token = await login(green.uri, MIGRATOR, 'migrator-Pw1');
    const r = await http('POST', `${green.uri}/management/migration-tasks`, task(), as(token));
    assert.equal(r.status, 403, r.text);
    assert.equal(
      r.json.message,
      `forbidden: ${migratorLink} may not post this migration task: it needs read on the source factory and write on the destination factory; missing: GET on ${blue.uri}/core/examples, POST on ${green.uri}/core/examples, PUT on ${green.uri}/core/examples`,
    );
    const list = await http('GET', `${green.uri}/management/migration-tasks`, undefined, as(adminGreen));
    assert.equal(list.json.documentCount, 0, 'nothing was started');
    const guest = await http('POST', `${green.uri}/management/migration-tasks`, task());
    assert.equal(guest.status, 403);
  });

  it("migrates with the creator's identity on both groups, beyond its token's lifetime, across continuous runs", async () => {
    await grant(blue.uri, adminBlue, 'migrator-reads', { userLinks: [migratorLink], query: q.any(q.prefix('/core/examples'), q.link('/core/node-groups/default')), verbs: ['GET'] });
    await grant(blue.uri, adminBlue, 'migrator-not-hidden', { userLinks: [migratorLink], query: q.any(q.field('name', 'hidden')), verbs: ['GET'], policy: 'DENY' });
    await grant(green.uri, adminGreen, 'migrator-writes', { userLinks: [migratorLink], query: q.any(q.prefix('/core/examples')), verbs: ['GET', 'POST', 'PUT'] });
    await createAs(blue.uri, adminBlue, 300, 'm');
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'hidden', documentSelfLink: 'hidden' }, as(adminBlue))).status, 200);
    const token = await login(green.uri, MIGRATOR, 'migrator-Pw1', 2);
    const loggedInAt = Date.now();
    const posted = await http('POST', `${green.uri}/management/migration-tasks`, task({ continuousMigration: true, maintenanceIntervalMicros: 300_000, querySpec: { resultLimit: 64 } }), as(token));
    assert.equal(posted.status, 200, posted.text);
    assert.equal(posted.json.ownerPrincipal, migratorLink);
    const link = posted.json.documentSelfLink;
    const first = await waitFor(async () => {
      const t = (await http('GET', `${green.uri}${link}`, undefined, as(adminGreen))).json;
      assert.notEqual(t.taskInfo.stage, 'FAILED', JSON.stringify(t.taskInfo));
      return t.progress.runCount >= 1 && t.taskInfo.stage === 'FINISHED' ? t : undefined;
    }, 'the first run');
    assert.equal(first.progress.processedServiceCount, 300, 'the 300 examples the migrator may read');
    const expected = await comparableAs(blue.uri, adminBlue);
    expected.delete('/core/examples/hidden');
    const onGreen = await comparableAs(green.uri, adminGreen);
    onGreen.delete('/core/examples/hello');
    assert.deepEqual(onGreen, expected, 'green has what the migrator may read on blue');
    assert.equal((await http('GET', `${green.uri}/core/examples/hidden`, undefined, as(adminGreen))).status, 404, 'the task read with its creator identity, not as system');
    assert.equal((await snapshotAs(green.uri, adminGreen)).get('/core/examples/m-1').documentAuthPrincipalLink, migratorLink, "the destination writes are the creator's");
    // The creator's token expires; the task keeps its identity.
    // (A 2 s session lasts 2 to 3 s: its exp is whole seconds, rounded up.)
    await new Promise((r) => setTimeout(r, Math.max(0, loggedInAt + 3100 - Date.now())));
    const expired = await http('GET', `${green.uri}${link}`, undefined, as(token));
    assert.equal(expired.status, 403);
    assert.match(expired.json.message, /expired/);
    const runsBefore = (await http('GET', `${green.uri}${link}`, undefined, as(adminGreen))).json.progress.runCount;
    await createAs(blue.uri, adminBlue, 40, 'late');
    const patched = await http('PATCH', `${blue.uri}/core/examples/m-7`, { counter: 7007 }, as(adminBlue));
    await waitFor(async () => {
      const g = await snapshotAs(green.uri, adminGreen);
      return g.has('/core/examples/late-39') && g.get('/core/examples/m-7').counter === 7007 ? true : undefined;
    }, 'the later runs to bring the new and changed documents');
    const t = (await http('GET', `${green.uri}${link}`, undefined, as(adminGreen))).json;
    assert.ok(t.progress.runCount > runsBefore, `more runs after the token expired (${runsBefore} → ${t.progress.runCount})`);
    assert.notEqual(t.taskInfo.stage, 'FAILED');
    assert.equal((await snapshotAs(green.uri, adminGreen)).get('/core/examples/m-7').documentUpdateTimeMicros, patched.json.documentUpdateTimeMicros);
    const cancel = await http('PATCH', `${green.uri}${link}`, { taskInfo: { stage: 'CANCELLED' } }, as(adminGreen));
    assert.equal(cancel.status, 200);
  });

  it('migrates users, groups, resource groups, roles and credentials keeping their links; passwords travel as hashes', async () => {
    const carol = await createUser(blue.uri, adminBlue, 'carol@vmware.com', 'carol-Pw1');
    await grant(blue.uri, adminBlue, 'carol-reads', { userLinks: [carol], query: q.any(q.prefix('/core/examples')), verbs: ['GET'] });
    const migratorToken = await login(green.uri, MIGRATOR, 'migrator-Pw1');
    const refused = await http(
      'POST',
      `${green.uri}/management/migration-tasks`,
      task({ sourceFactoryLink: '/core/auth/credentials', destinationFactoryLink: '/core/auth/credentials' }),
      as(migratorToken),
    );
    assert.equal(refused.status, 403, 'credentials need an administrator of both groups');
    for (const factory of ['/core/authz/users', '/core/authz/user-groups', '/core/authz/resource-groups', '/core/authz/roles', '/core/auth/credentials']) {
      const r = await http('POST', `${green.uri}/management/migration-tasks`, task({ sourceFactoryLink: factory, destinationFactoryLink: factory }), as(adminGreen));
      assert.equal(r.status, 200, r.text);
      const done = await finished(green.uri, r.json.documentSelfLink, adminGreen);
      assert.equal(done.taskInfo.stage, 'FINISHED', `${factory}: ${JSON.stringify(done.taskInfo)}`);
    }
    const token = await login(green.uri, 'carol@vmware.com', 'carol-Pw1');
    assert.equal((await http('GET', `${green.uri}/core/examples/m-1`, undefined, as(token))).status, 200, "carol's role came along");
    const system = as(groupKey.sign('/core/authz/system-user', Math.floor(Date.now() / 1000) + 60));
    const [b, g] = await Promise.all([blue, green].map((h) => http('GET', `${h.uri}/core/auth/credentials/carol@vmware.com`, undefined, system)));
    assert.match(b!.json.privateKey, /^\$scrypt\$/);
    assert.equal(g!.json.privateKey, b!.json.privateKey, 'the same hash, not re-hashed, never in clear');
  });

  it('carries a password change to the other group: the sessions started before it end there too', async () => {
    const before = await login(blue.uri, 'carol@vmware.com', 'carol-Pw1');
    assert.equal((await http('GET', `${green.uri}/core/examples/m-1`, undefined, as(before))).status, 200, 'a blue token works on green');
    // Token issue times have a resolution of one second.
    await new Promise((r) => setTimeout(r, 1100));
    const changed = await http('PATCH', `${blue.uri}/core/auth/credentials/carol@vmware.com`, { privateKey: 'carol-Pw2' }, as(adminBlue));
    assert.equal(changed.status, 200, changed.text);
    const onBlue = await http('GET', `${blue.uri}/core/examples/m-1`, undefined, as(before));
    assert.equal(onBlue.status, 403);
    assert.match(onBlue.json.message, /issued before the password of \/core\/authz\/users\/carol@vmware.com was changed/);
    assert.equal((await http('GET', `${green.uri}/core/examples/m-1`, undefined, as(before))).status, 200, 'green has not seen the change yet');
    const r = await http('POST', `${green.uri}/management/migration-tasks`, task({ sourceFactoryLink: '/core/auth/credentials', destinationFactoryLink: '/core/auth/credentials' }), as(adminGreen));
    assert.equal(r.status, 200, r.text);
    assert.equal((await finished(green.uri, r.json.documentSelfLink, adminGreen)).taskInfo.stage, 'FINISHED');
    assert.equal((await http('GET', `${green.uri}/core/examples/m-1`, undefined, as(before))).status, 403, 'the migrated credentials end it on green');
    const after = await login(green.uri, 'carol@vmware.com', 'carol-Pw2');
    assert.equal((await http('GET', `${green.uri}/core/examples/m-1`, undefined, as(after))).status, 200);
  });

  it('runs `krypton migrate --token` with a token from the other group; without one it says 403', async () => {
    const run = (extra: string[]) =>
      spawnSync(process.execPath, [CLI, 'migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=100', ...extra], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    const refused = run([]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /forbidden: \/core\/authz\/guest-user may not POST \/management\/migration-tasks/);
    const ok = run([`--token=${await login(blue.uri, ADMIN, ADMIN_PASSWORD)}`]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /FINISHED: migrated \d+, skipped \d+/);
  });

  it('authorizes the transformation service call like every other call of the task', async () => {
    await createAs(blue.uri, adminBlue, 50, 'emp', '/quickstart/employees');
    await grant(blue.uri, adminBlue, 'migrator-employees', { userLinks: [migratorLink], query: q.any(q.prefix('/quickstart/employees')), verbs: ['GET'] });
    await grant(green.uri, adminGreen, 'migrator-employees', {
      userLinks: [migratorLink],
      query: q.any(q.prefix('/quickstart/employees'), q.prefix('/quickstart/mailboxes')),
      verbs: ['GET', 'POST', 'PUT'],
    });
    const token = await login(green.uri, MIGRATOR, 'migrator-Pw1');
    const body = task({ sourceFactoryLink: '/quickstart/employees', destinationFactoryLink: '/quickstart/employees', transformationServiceLink: '/quickstart/employee-transform' });
    const refused = await http('POST', `${green.uri}/management/migration-tasks`, body, as(token));
    assert.equal(refused.status, 403);
    assert.match(refused.json.message, new RegExp(`missing: POST on ${green.uri}/quickstart/employee-transform`));
    await grant(green.uri, adminGreen, 'migrator-transform', { userLinks: [migratorLink], query: q.any(q.link('/quickstart/employee-transform')), verbs: ['POST'] });
    const r = await http('POST', `${green.uri}/management/migration-tasks`, body, as(token));
    assert.equal(r.status, 200, r.text);
    const final = await finished(green.uri, r.json.documentSelfLink, adminGreen);
    assert.equal(final.taskInfo.stage, 'FINISHED', JSON.stringify(final.taskInfo));
    assert.equal((await snapshotAs(green.uri, adminGreen, '/quickstart/employees')).size, 50);
    assert.equal((await snapshotAs(green.uri, adminGreen, '/quickstart/mailboxes')).size, 50);
  });

  it("resumes a task after kill -9 of the host running it, still with its creator's identity", async () => {
    await createAs(blue.uri, adminBlue, 1500, 'resume', '/core/examples', 32);
    const token = await login(green.uri, MIGRATOR, 'migrator-Pw1', 1);
    // Small pages keep the run going past its first progress save (one per 250 ms), so a checkpoint shows while STARTED.
    const r = await http('POST', `${green.uri}/management/migration-tasks`, task({ querySpec: { resultLimit: 5 } }), as(token));
    assert.equal(r.status, 200, r.text);
    const link = r.json.documentSelfLink;
    await waitFor(
      async () => {
        const t = (await http('GET', `${green.uri}${link}`, undefined, as(adminGreen))).json;
        return Object.keys(t.checkpoints ?? {}).length > 0 && t.taskInfo.stage === 'STARTED' ? true : undefined;
      },
      'a checkpoint while STARTED',
      30_000,
      5,
    );
    await green.kill();
    green = await startHost(greenArgs, { sandbox: green.sandbox, port: green.port });
    const done = await finished(green.uri, link, adminGreen);
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.ok(done.progress.runCount >= 2, 'resumed, not restarted by hand');
    const g = await snapshotAs(green.uri, adminGreen);
    for (let i = 0; i < 1500; i++) assert.equal(g.get(`/core/examples/resume-${i}`)?.documentAuthPrincipalLink, migratorLink, `resume-${i}`);
  });
  it('runs `krypton cutover --token` with one admin token on both groups; a token without the rights freezes nothing', async () => {
    const args = ['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/quickstart/employees', '--transform=/quickstart/employee-transform'];
    const user = await login(blue.uri, 'example@vmware.com', 'example-Pw1');
    const denied = await runCli([...args, `--token=${user}`]);
    assert.equal(denied.code, 1, denied.stdout);
    assert.match(denied.stderr, /forbidden: \/core\/authz\/users\/example@vmware\.com may not/);
    assert.doesNotMatch(denied.stdout, /rolled back/);
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`, undefined, as(adminBlue))).json.frozen, false);
    // Allowed to read the node group but not to freeze: refused at the freeze, nothing to roll back.
    const userLink = '/core/authz/users/example@vmware.com';
    await grant(blue.uri, adminBlue, 'example-groups', { userLinks: [userLink], query: q.any(q.link('/core/node-groups/default')), verbs: ['GET'] });
    await grant(green.uri, adminGreen, 'example-groups', { userLinks: [userLink], query: q.any(q.link('/core/node-groups/default')), verbs: ['GET'] });
    const refusedFreeze = await runCli([...args, `--token=${user}`]);
    assert.equal(refusedFreeze.code, 1, refusedFreeze.stdout);
    assert.match(refusedFreeze.stderr, /freezing http:\/\/127\.0\.0\.1:\d+ failed: http:\/\/127\.0\.0\.1:\d+: forbidden/);
    assert.doesNotMatch(refusedFreeze.stdout, /rolled back/);
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`, undefined, as(adminBlue))).json.frozen, false);

    const r = await runCli([...args, `--token=${adminBlue}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /3\/4 verify \(digest\): 50 documents on both sides/);
    const refused = await http('POST', `${blue.uri}/quickstart/employees`, { name: 'late', managerLink: '' }, as(adminBlue));
    assert.equal(refused.status, 503, refused.text);
    const back = await runCli(['cutover', '--rollback', `--source=${blue.uri}`, `--token=${adminGreen}`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`, undefined, as(adminBlue))).json.frozen, false);
  });
});
