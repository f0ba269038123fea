import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { http, startHost, waitFor } from './support/hosts.js';
import { assertSameDocuments, createExamples, snapshot, waitForStage } from './support/data.js';
import { importExamples, localCopy, localCount, ownerOf, restart, setQuorum, startGroup, waitConverged, type GroupMember } from './support/cluster.js';

const LOADED = 30_000;
const RESTORED = 300;
const TOTAL = LOADED + RESTORED;

describe('migration between two 3-node groups (blue → green)', () => {
  let blue: GroupMember[];
  let green: GroupMember[];
  const spec = () => ({
    sourceNodeGroupReference: `${blue[0]!.uri}/core/node-groups/default`,
    destinationNodeGroupReference: `${green[1]!.uri}/core/node-groups/default`,
    sourceFactoryLink: '/core/examples',
    destinationFactoryLink: '/core/examples',
    maintenanceIntervalMicros: 200_000,
  });

  before(async () => {
    // Data restored from another host: written by 'retired-host', whose sandbox becomes blue-1's.
    const retired = await startHost(['--id=retired-host']);
    await createExamples(retired.uri, RESTORED, 'restored');
    assert.equal(await retired.stop(), 0);
    [blue, green] = await Promise.all([startGroup(3, 'blue', [], { sandboxes: [retired.sandbox] }), startGroup(3, 'green')]);
    await importExamples(blue[1]!.uri, LOADED, 'doc', 5000);
    await Promise.all([setQuorum(blue, 3), setQuorum(green, 3)]);
  });
  after(async () => {
    await Promise.all([...blue, ...green].map((h) => h.stop()));
  });

  it('blue holds every document on every member; restored ones still name the retired host as owner', async () => {
    for (const m of blue) {
      await waitFor(async () => (await localCount(m)) === TOTAL, `${m.id} to hold ${TOTAL} documents`);
      assert.equal((await localCopy(m, '/core/examples/restored-7')).documentOwner, 'retired-host');
    }
  });

  it('a blue node killed mid-migration (quorum = group size) fails the task; after it returns a re-run completes, every document exactly once', async () => {
    const r = await http('POST', `${green[0]!.uri}/management/migration-tasks`, { ...spec(), querySpec: { resultLimit: 300 } });
    assert.equal(r.status, 200, r.text);
    const link = r.json.documentSelfLink;
    await waitFor(
      async () => {
        const t = (await http('GET', `${green[2]!.uri}${link}`)).json;
        assert.notEqual(t.taskInfo.stage, 'FINISHED', 'the run ended before a blue node could be killed');
        return t.progress.fetchedDocumentCount > 0;
      },
      'the migration to be under way',
      30_000,
      10,
    );
    const victim = blue[2]!;
    await victim.kill();
    const failed = await waitForStage(green[0]!.uri, link, ['FINISHED', 'FAILED']);
    assert.equal(failed.taskInfo.stage, 'FAILED');
    assert.match(failed.taskInfo.failure.message, new RegExp(`source|${victim.port}`));
    assert.ok(failed.progress.processedServiceCount < TOTAL);

    blue[2] = await restart({ ...victim, args: [...victim.args, '--membershipQuorum=3'] });
    await waitConverged(blue, 3);
    const rerun = await http('PATCH', `${green[1]!.uri}${link}`, { taskInfo: { stage: 'STARTED' } });
    assert.equal(rerun.status, 200, rerun.text);
    const done = await waitFor(
      async () => {
        const t = (await http('GET', `${green[0]!.uri}${link}`)).json;
        return t.progress.runCount >= 2 && ['FINISHED', 'FAILED'].includes(t.taskInfo.stage) ? t : undefined;
      },
      'the re-run to end',
      120_000,
    );
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));

    for (const m of green) await waitFor(async () => (await localCount(m)) === TOTAL, `${m.id} to hold every document`);
    assert.equal(await assertSameDocuments(blue[0]!.uri, green[2]!.uri), TOTAL, 'green equals blue');
    const docs = await snapshot(green[1]!.uri);
    for (const [l, d] of docs) assert.ok(d.documentVersion === 0 && d.documentUpdateAction === 'POST', `${l} was written once (version ${d.documentVersion})`);
    assert.equal(docs.get('/core/examples/restored-7').name, 'restored-7', 'restored documents migrated too');
  });

  it('each source node reads only what it owns: a second run reads every document exactly once and skips it', async () => {
    const r = await http('POST', `${green[2]!.uri}/management/migration-tasks`, spec());
    assert.equal(r.status, 200, r.text);
    const done = await waitForStage(green[2]!.uri, r.json.documentSelfLink, ['FINISHED', 'FAILED']);
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.equal(done.progress.fetchedDocumentCount, TOTAL, 'the three source nodes together read each document once');
    assert.equal(done.progress.skippedServiceCount, TOTAL);
    assert.equal(done.progress.processedServiceCount, 0);
    assert.deepEqual(Object.keys(done.checkpoints).sort(), blue.map((b) => b.uri).sort());
  });
});

describe('migration from a group member that owns none of the first documents', () => {
  let blue: GroupMember[];
  let green: Awaited<ReturnType<typeof startHost>>;
  before(async () => {
    [blue, green] = await Promise.all([startGroup(3, 'ob'), startHost(['--id=green'])]);
  });
  after(async () => {
    await Promise.all([...blue, green].map((h) => h.stop()));
  });

  it('pages the share of every member: the first documents in update order all belong to one member', async () => {
    // Ids by owner; the first member's documents are written first, so they lead the update-time order.
    const byOwner = new Map<string, string[]>(blue.map((m) => [m.id, []]));
    for (let i = 0; [...byOwner.values()].some((ids) => ids.length < 6); i++) {
      const id = `own-${i}`;
      const ids = byOwner.get(await ownerOf(blue[0]!, `/core/examples/${id}`))!;
      if (ids.length < 6) ids.push(id);
    }
    for (const m of blue) for (const id of byOwner.get(m.id)!) assert.equal((await http('POST', `${blue[0]!.uri}/core/examples`, { name: id, documentSelfLink: id })).status, 200);
    await waitFor(async () => (await Promise.all(blue.map((m) => localCount(m)))).every((c) => c === 18), 'every member to hold 18 documents');
    const done = await waitForStage(
      green.uri,
      (
        await http('POST', `${green.uri}/management/migration-tasks`, {
          sourceNodeGroupReference: `${blue[0]!.uri}/core/node-groups/default`,
          destinationReferences: [green.uri],
          sourceFactoryLink: '/core/examples',
          destinationFactoryLink: '/core/examples',
          querySpec: { resultLimit: 2 },
        })
      ).json.documentSelfLink,
      ['FINISHED', 'FAILED'],
    );
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.equal(done.progress.processedServiceCount, 18);
    assert.equal(await localCount(green), 18);
  });
});
