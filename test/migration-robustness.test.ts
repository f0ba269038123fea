import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importExamples, localCount } from './support/cluster.js';
import { migrate, migrationTask, waitForStage } from './support/data.js';
import { http, ROOT, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';

/** A transformation service that never answers (a bug in a user's upgrade code). */
function hangingTransformModule(): string {
  const file = join(tempDir(), 'hanging-transform.mjs');
  const api = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
  writeFileSync(file, `import { defineStatelessService } from '${api}';\nexport const Hang = defineStatelessService({ link: '/test/hang', handlers: { POST: () => new Promise(() => {}) } });\n`);
  return file;
}

describe('migration task: bad specs and a hung transformation service', () => {
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green', `--services=${hangingTransformModule()}`])]);
    // More than one slice (1,000 documents): slices in motion together share the run's 8 transformation calls.
    await importExamples(blue.uri, 2_500, 'rb');
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('refuses wrong field types and invalid queries with a 400, creating no task', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ continuousMigration: 1 }, /continuousMigration must be a boolean/],
      [{ continuousMigration: 'yes' }, /continuousMigration must be a boolean/],
      [{ maintenanceIntervalMicros: 'abc' }, /maintenanceIntervalMicros must be an integer/],
      [{ operationTimeoutMicros: 'x' }, /operationTimeoutMicros must be an integer/],
      [{ operationTimeoutMicros: 0 }, /operationTimeoutMicros must be positive/],
      [{ latestSourceUpdateTimeMicros: 'x' }, /latestSourceUpdateTimeMicros must be an integer/],
      [{ maximumConvergenceChecks: -1 }, /maximumConvergenceChecks must not be negative/],
      [{ querySpec: { options: ['BOGUS'] } }, /Unknown query option: BOGUS/],
      [{ querySpec: { query: { term: { propertyName: 'name', matchValue: 'x', matchType: 'FUZZY' } } } }, /matchType/],
      [{ migrationOptions: 'ALL_VERSIONS' }, /migrationOptions must be an array of option names/],
    ];
    const tasks = async () => (await http('GET', `${green.uri}/management/migration-tasks`)).json.documentLinks.length;
    const before = await tasks();
    for (const [extra, message] of cases) {
      const r = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, extra));
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.match(r.json.message, message);
    }
    assert.equal(await tasks(), before);
    // The seeds' string form still works.
    const ok = await migrate(green, migrationTask(blue, green, { continuousMigration: 'false' }));
    assert.equal(ok.taskInfo.stage, 'FINISHED');
    // Settings and identity are fixed at POST (where rights are checked): a PUT cannot swap them.
    const put = await http('PUT', `${green.uri}${ok.documentSelfLink}`, { ...ok, sourceFactoryLink: '/core/auth/credentials', ownerPrincipal: '/core/authz/users/admin@localhost' });
    assert.equal(put.status, 405);
    assert.match(put.json.message, /cannot be replaced/);
    const after = (await http('GET', `${green.uri}${ok.documentSelfLink}`)).json;
    assert.equal(after.sourceFactoryLink, '/core/examples');
    assert.equal(after.ownerPrincipal, undefined);
  });

  it('keeps other tasks moving while a transformation hangs, and cancelling the hung task frees it', async () => {
    const hung = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, { destinationFactoryLink: '/core/examples', transformationServiceLink: '/test/hang' }));
    assert.equal(hung.status, 200);
    const link = hung.json.documentSelfLink as string;
    const calls = async () => (await http('GET', `${green.uri}/test/hang/stats`)).json.entries?.POSTrequestCount?.latestValue ?? 0;
    await waitFor(async () => (await calls()) >= 8, 'the hung task to call its transformation');
    // The next slice is prepared meanwhile: its calls wait for the run's 8, they do not add to them.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await calls(), 8);
    // A plain task on the same destination: its calls to green must not queue behind the hung ones.
    const started = performance.now();
    const plain = await migrate(green, migrationTask(blue, green));
    assert.equal(plain.taskInfo.stage, 'FINISHED', JSON.stringify(plain.taskInfo));
    assert.ok(performance.now() - started < 30_000, 'the plain task did not wait for the hung one');
    assert.equal((await http('PATCH', `${green.uri}${link}`, { taskInfo: { stage: 'CANCELLED' } })).status, 200);
    const cancelled = await waitForStage(green.uri, link, ['CANCELLED', 'FAILED']);
    assert.equal(cancelled.taskInfo.stage, 'CANCELLED');
    const again = await migrate(green, migrationTask(blue, green));
    assert.equal(again.taskInfo.stage, 'FINISHED');
  });
});

describe('migration task: a cancelled run reports what it wrote', () => {
  let blue: RunningHost;
  let green: RunningHost;
  const total = 20_000;
  before(async () => {
    [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green'])]);
    await importExamples(blue.uri, total, 'cx');
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('counts every document written before the cancel, pages in motion included', async () => {
    const r = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, { querySpec: { resultLimit: 100 } }));
    assert.equal(r.status, 200);
    const link = r.json.documentSelfLink as string;
    await waitFor(async () => (await localCount(green)) > 0, 'the first documents on green', 30_000, 5);
    assert.equal((await http('PATCH', `${green.uri}${link}`, { taskInfo: { stage: 'CANCELLED' } })).status, 200);
    const task = await waitForStage(green.uri, link, ['CANCELLED']);
    const onGreen = await localCount(green);
    assert.ok(onGreen > 0 && onGreen < total, `cancelled mid-run (${onGreen} of ${total} on green)`);
    assert.equal(task.progress.processedServiceCount, onGreen);
    // The checkpoint covers what was written: a re-run migrates the rest and skips nothing it need not.
    const again = await migrate(green, migrationTask(blue, green, { querySpec: { resultLimit: 100 } }));
    assert.equal(again.progress.processedServiceCount, total - onGreen);
    assert.equal(await localCount(green), total);
  });
});
