import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, startHost, tempDir, type RunningHost } from './support/hosts.js';
import { assertSameDocuments, snapshot, waitForStage } from './support/data.js';

describe("the seeds' walkthrough, verbatim: ab, curl, migration task", () => {
  let blue: RunningHost;
  let green: RunningHost;
  const dir = tempDir();
  const body = join(dir, 'xenonMigrateExampleService.json');

  before(async () => {
    blue = await startHost(['--id=blueNodeAtPort8000', '--adminPassword=changeme']);
    green = await startHost(['--id=greenNodeAtPort8001', '--adminPassword=changeme']);
    writeFileSync(
      body,
      JSON.stringify({
        sourceNodeGroupReference: `http://localhost:${blue.port}/core/node-groups/default`,
        destinationNodeGroupReference: `http://localhost:${green.port}/core/node-groups/default`,
        sourceFactoryLink: '/core/examples',
        destinationFactoryLink: '/core/examples',
        continuousMigration: 'false',
      }),
    );
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('loads 1,000 examples into blue with ab', () => {
    const example = join(dir, 'xenonExampleService.json');
    writeFileSync(example, '{"name": "example-1", "counter": 1}\n');
    const out = execFileSync('ab', ['-p', example, '-T', 'application/json', '-c', '5', '-n', '1000', `http://localhost:${blue.port}/core/examples`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.match(out, /Complete requests:\s+1000/);
    assert.match(out, /Failed requests:\s+0/);
  });

  it('shows 1,000 on blue and 0 on green', async () => {
    const b = JSON.parse(execFileSync('curl', ['-s', `localhost:${blue.port}/core/examples`], { encoding: 'utf8' }));
    const g = JSON.parse(execFileSync('curl', ['-s', `localhost:${green.port}/core/examples`], { encoding: 'utf8' }));
    assert.equal(b.documentCount, 1000);
    assert.equal(g.documentCount, 0);
  });

  let firstTask = '';
  it("migrates with the seeds' curl command and finishes with the same documents on green", async () => {
    const out = execFileSync('curl', ['-s', '-H', 'Content-Type: application/json', '--data', `@${body}`, `http://localhost:${green.port}/management/migration-tasks`], { encoding: 'utf8' });
    const created = JSON.parse(out);
    assert.match(created.documentSelfLink, /^\/management\/migration-tasks\/.+/);
    assert.equal(created.continuousMigration, false);
    firstTask = created.documentSelfLink;
    const done = await waitForStage(green.uri, firstTask, ['FINISHED', 'FAILED']);
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.equal(done.progress.processedServiceCount, 1000);
    assert.equal(await assertSameDocuments(blue.uri, green.uri), 1000);
    const g = await snapshot(green.uri);
    for (const d of g.values()) assert.equal(d.isFromMigration, true);
    const stats = await http('GET', `${green.uri}${firstTask}/stats`);
    assert.equal(stats.json.entries.processedServiceCount.latestValue, 1000);
    assert.equal(stats.json.entries.fetchedDocumentCount.latestValue, 1000);
    // Xenon's count and retrieval stats: -1 without ESTIMATE_COUNT; page timings keyed by source node.
    assert.equal(stats.json.entries.countQueryTimeDurationMicros.latestValue, -1);
    assert.ok(stats.json.entries.retrievalOperationsDurationMicros.latestValue > 0);
    const perNode = Object.keys(stats.json.entries).filter((k) => k.startsWith('retrievalQueryTimeDurationMicros-'));
    assert.deepEqual(perNode, [`retrievalQueryTimeDurationMicros-${new URL(blue.uri).host}`]);
  });

  it('migrates nothing twice when the same task is posted again, and only what changed', async () => {
    const before = await snapshot(green.uri);
    const out = execFileSync('curl', ['-s', '-H', 'Content-Type: application/json', '--data', `@${body}`, `http://localhost:${green.port}/management/migration-tasks`], { encoding: 'utf8' });
    const second = JSON.parse(out).documentSelfLink;
    assert.notEqual(second, firstTask, 'a new run');
    const done = await waitForStage(green.uri, second, ['FINISHED', 'FAILED']);
    assert.equal(done.taskInfo.stage, 'FINISHED');
    assert.equal(done.progress.processedServiceCount, 0);
    assert.equal(done.progress.skippedServiceCount, 1000);
    const after = await snapshot(green.uri);
    assert.equal(after.size, 1000, 'no duplicate');
    for (const [link, d] of before) {
      assert.equal(after.get(link).documentVersion, d.documentVersion, 'no rewrite');
      assert.equal(after.get(link).documentUpdateTimeMicros, d.documentUpdateTimeMicros);
    }
    const changed = [...before.keys()][0]!;
    const p = await http('PATCH', `${blue.uri}${changed}`, { counter: 99 });
    assert.equal(p.status, 200);
    const third = JSON.parse(
      execFileSync('curl', ['-s', '-H', 'Content-Type: application/json', '--data', `@${body}`, `http://localhost:${green.port}/management/migration-tasks`], { encoding: 'utf8' }),
    ).documentSelfLink;
    const done3 = await waitForStage(green.uri, third, ['FINISHED', 'FAILED']);
    assert.equal(done3.progress.processedServiceCount, 1);
    assert.equal(done3.progress.skippedServiceCount, 999);
    const g = await http('GET', `${green.uri}${changed}`);
    assert.equal(g.json.counter, 99);
    assert.equal(g.json.documentUpdateTimeMicros, p.json.documentUpdateTimeMicros);
    await assertSameDocuments(blue.uri, green.uri);
  });
});
