import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, freePort, http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { assertSameDocuments, blueGreenSuite, createExamples, migrate, migrationTask, snapshot, waitForStage } from './support/data.js';
import { importExamples } from './support/cluster.js';

const task = migrationTask;

/** Every version `host` holds of `link`, oldest first, as `ACTION:name`. */
async function historyOf(host: RunningHost, link: string): Promise<string[]> {
  const v = await http('POST', `${host.uri}/core/query-tasks`, {
    taskInfo: { isDirect: true },
    querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: link } }, options: ['INCLUDE_ALL_VERSIONS', 'EXPAND_CONTENT'] },
  });
  return Object.values(v.json.results.documents as Record<string, any>)
    .sort((a, b) => a.documentVersion - b.documentVersion)
    .map((d) => `${d.documentUpdateAction}:${d.name}`);
}

describe('migration task: page size', () => {
  const hosts = blueGreenSuite(5, 'ps', { before, after });
  const BIG = 12_000; // two default pages, each written in slices
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    ({ blue, green } = hosts);
    await importExamples(blue.uri, BIG, 'big');
  });

  it('shows the page size it uses: 10,000 by default, at most 10,000 (each page is held in memory on both hosts)', async () => {
    const total = BIG + 5;
    for (const [given, used, migrated] of [
      [undefined, 10_000, total],
      [250, 250, 0],
      [50_000, 10_000, 0],
    ] as const) {
      const done = await migrate(green, task(blue, green, { querySpec: given === undefined ? undefined : { resultLimit: given } }));
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      assert.equal(done.querySpec.resultLimit, used, `resultLimit ${given}`);
      assert.equal(done.progress.processedServiceCount, migrated, `migrated with resultLimit ${given}`);
      assert.equal(done.progress.skippedServiceCount, total - migrated, `skipped with resultLimit ${given}`);
    }
    assert.equal(await assertSameDocuments(blue.uri, green.uri), total);
  });
});

describe('migration task: state, validation, selection, options', () => {
  const hosts = blueGreenSuite(40, 'sel', { before, after });
  let blue: RunningHost;
  let green: RunningHost;
  before(() => ({ blue, green } = hosts));

  it("rejects an invalid task with Xenon's messages and starts nothing", async () => {
    const r = await http('POST', `${green.uri}/management/migration-tasks`, { sourceFactoryLink: '/core/examples' });
    assert.equal(r.status, 400);
    assert.equal(r.json.message, 'sourceNode or sourceUri need to be specified. destinationFactory cannot be null. destinationNode or destinationReferences need to be specified.');
    const both = await http('POST', `${green.uri}/management/migration-tasks`, task(blue, green, { sourceReferences: [blue.uri] }));
    assert.equal(both.status, 400);
    assert.match(both.json.message, /cannot specify both sourceNode and sourceReferences/);
    const notObject = await http('POST', `${green.uri}/management/migration-tasks`, task(blue, green, { querySpec: 'all' }));
    assert.equal(notObject.status, 400);
    assert.equal(notObject.json.message, 'querySpec must be a JSON object');
    const list = await http('GET', `${green.uri}/management/migration-tasks`);
    assert.equal(list.json.documentCount, 0);
  });

  it('honours a single-term querySpec (Xenon dropped it), combined with the factory prefix', async () => {
    const done = await migrate(green, task(blue, green, { querySpec: { query: { term: { propertyName: 'name', matchValue: 'sel-1*', matchType: 'WILDCARD' } } } }));
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    const g = await snapshot(green.uri);
    assert.deepEqual([...g.keys()].sort(), Array.from({ length: 11 }, (_, i) => `/core/examples/sel-${i === 0 ? 1 : 10 + i - 1}`).sort());
  });

  it('migrates into another factory link with explicit references, and counts with ESTIMATE_COUNT', async () => {
    const done = await migrate(green, {
      sourceReferences: [blue.uri],
      destinationReferences: [green.uri],
      sourceFactoryLink: '/core/examples',
      destinationFactoryLink: '/core/examples',
      migrationOptions: ['ESTIMATE_COUNT'],
    });
    assert.equal(done.progress.estimatedTotalServiceCount, 40);
    assert.equal(done.progress.processedServiceCount, 29);
    assert.equal(done.progress.skippedServiceCount, 11);
    await assertSameDocuments(blue.uri, green.uri);
    // The estimate counts what the task selects, not the whole factory (the progress bar's total).
    const one = await migrate(green, { ...task(blue, green, { querySpec: { query: { term: { propertyName: 'name', matchValue: 'sel-5' } } } }), migrationOptions: ['ESTIMATE_COUNT'] });
    assert.equal(one.progress.estimatedTotalServiceCount, 1);
  });

  it('replays every version with ALL_VERSIONS', async () => {
    await http('POST', `${blue.uri}/core/examples`, { name: 'h0', documentSelfLink: 'history' });
    await http('PATCH', `${blue.uri}/core/examples/history`, { name: 'h1' });
    await http('PUT', `${blue.uri}/core/examples/history`, { name: 'h2' });
    const done = await migrate(green, task(blue, green, { migrationOptions: ['ALL_VERSIONS'], querySpec: { query: { term: { propertyName: 'name', matchValue: 'h2' } } } }));
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.deepEqual(await historyOf(green, '/core/examples/history'), ['POST:h0', 'PATCH:h1', 'PUT:h2']);
  });

  it('replaces newer destination copies only with DELETE_AFTER, and replays delete + re-create histories', async () => {
    const g = await http('PUT', `${green.uri}/core/examples/sel-5`, { name: 'newer on green', counter: 999 });
    assert.equal(g.status, 200, g.text);
    const plain = await migrate(green, task(blue, green, { querySpec: { query: { term: { propertyName: 'name', matchValue: 'sel-5' } } } }));
    assert.equal(plain.progress.skippedServiceCount, 1, 'a newer destination copy is not overwritten');
    assert.equal((await http('GET', `${green.uri}/core/examples/sel-5`)).json.name, 'newer on green');
    const forced = await migrate(green, task(blue, green, { migrationOptions: ['DELETE_AFTER'], querySpec: { query: { term: { propertyName: 'name', matchValue: 'sel-5' } } } }));
    assert.equal(forced.progress.processedServiceCount, 1);
    assert.equal((await http('GET', `${green.uri}/core/examples/sel-5`)).json.name, 'sel-5');

    await http('POST', `${blue.uri}/core/examples`, { name: 'r0', documentSelfLink: 'reborn' });
    await http('DELETE', `${blue.uri}/core/examples/reborn`);
    await http('POST', `${blue.uri}/core/examples`, { name: 'r1', documentSelfLink: 'reborn' }, { pragma: 'xn-force-index-update' });
    await http('PATCH', `${blue.uri}/core/examples/reborn`, { name: 'r2' });
    const done = await migrate(green, task(blue, green, { migrationOptions: ['ALL_VERSIONS'], querySpec: { query: { term: { propertyName: 'name', matchValue: 'r2' } } } }));
    assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
    assert.deepEqual(await historyOf(green, '/core/examples/reborn'), ['POST:r1', 'PATCH:r2'], 'as in Xenon, a re-creation purges the history before it');
  });

  it('brings deletions across with INCLUDE_DELETED', async () => {
    await http('DELETE', `${blue.uri}/core/examples/sel-3`);
    assert.equal((await http('GET', `${green.uri}/core/examples/sel-3`)).status, 200);
    const done = await migrate(green, task(blue, green, { querySpec: { options: ['INCLUDE_DELETED'] } }));
    assert.equal(done.taskInfo.stage, 'FINISHED');
    assert.equal(done.progress.deletedDocumentCount, 1);
    assert.equal((await http('GET', `${green.uri}/core/examples/sel-3`)).status, 404);
    await assertSameDocuments(blue.uri, green.uri);
  });

  it('fails with an actionable message when the source is unreachable, and a re-run after the fix completes', async () => {
    const done = await migrate(green, task(blue, green, { sourceNodeGroupReference: 'http://127.0.0.1:1/core/node-groups/default' }));
    assert.equal(done.taskInfo.stage, 'FAILED');
    assert.match(done.taskInfo.failure.message, /GET source node group http:\/\/127\.0\.0\.1:1\/core\/node-groups\/default failed/);
    const missing = await migrate(green, task(blue, green, { destinationFactoryLink: '/core/nowhere' }));
    assert.equal(missing.taskInfo.stage, 'FAILED');
    assert.match(missing.taskInfo.failure.message, /destination factory \/core\/nowhere does not exist/);
    const fixed = await migrate(green, task(blue, green));
    assert.equal(fixed.taskInfo.stage, 'FINISHED');
  });
});

describe('migration task: transformation (Employee v1 → v2 sample)', () => {
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    blue = await startHost(['--id=blue', `--services=${join(ROOT, 'samples', 'employee-v1.mjs')}`]);
    green = await startHost(['--id=green', `--services=${join(ROOT, 'samples', 'employee-v2.mjs')}`]);
    await createExamples(blue.uri, 1000, 'emp', 16, '/quickstart/employees');
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it("describes v2's fields in its template, the required ones marked REQUIRED", async () => {
    const tpl = await http('GET', `${green.uri}/quickstart/employees/template`);
    const fields = tpl.json.documents['/quickstart/employees/child-template'].documentDescription.propertyDescriptions;
    assert.deepEqual(fields.email, { typeName: 'STRING', exampleValue: 'example string', indexingOptions: [], usageOptions: ['REQUIRED'] });
    assert.deepEqual(fields.location.usageOptions, []);
    // A field named …Link is a LINK, as Xenon marks it by name.
    assert.deepEqual(fields.managerLink, { typeName: 'STRING', exampleValue: 'some/service', indexingOptions: [], usageOptions: ['LINK'] });
  });

  it('v2 refuses v1 documents without its transformation', async () => {
    const r = await http('POST', `${green.uri}/quickstart/employees`, { name: 'no email' });
    assert.equal(r.status, 400);
    const done = await migrate(green, { ...task(blue, green), sourceFactoryLink: '/quickstart/employees', destinationFactoryLink: '/quickstart/employees' });
    assert.equal(done.taskInfo.stage, 'FAILED');
    assert.match(done.taskInfo.failure.message, /rejected .*email is required in release 2/);
  });

  for (const [contract, options] of [
    ['the default map contract', []],
    ['USE_TRANSFORM_REQUEST', ['USE_TRANSFORM_REQUEST']],
  ] as const) {
    it(`migrates 1,000 employees through ${contract}, one document becoming two in two factories`, async () => {
      const done = await migrate(green, {
        ...task(blue, green),
        sourceFactoryLink: '/quickstart/employees',
        destinationFactoryLink: '/quickstart/employees',
        transformationServiceLink: '/quickstart/employee-transform',
        migrationOptions: options,
      });
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      const employees = await snapshot(green.uri, '/quickstart/employees');
      const mailboxes = await snapshot(green.uri, '/quickstart/mailboxes');
      assert.equal(employees.size, 1000);
      assert.equal(mailboxes.size, 1000);
      for (const e of employees.values()) {
        assert.match(e.email, /^emp\.\d+@example\.com$/);
        const m = mailboxes.get(`/quickstart/mailboxes/${e.documentSelfLink.split('/').pop()}`);
        assert.equal(m.address, e.email);
      }
      // v2 validation passed for every document: a PUT of each as-is succeeds.
      const one = [...employees.values()][0];
      assert.equal((await http('PUT', `${green.uri}${one.documentSelfLink}`, one)).status, 200);
    });
  }
});

describe('migration task: continuous migration while blue takes writes', () => {
  it('ends with green equal to blue after the writer stops and one more run completes', async () => {
    const [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green'])]);
    try {
      await createExamples(blue.uri, 200, 'c');
      const r = await http(
        'POST',
        `${green.uri}/management/migration-tasks`,
        task(blue, green, { continuousMigration: true, maintenanceIntervalMicros: 200_000, querySpec: { options: ['INCLUDE_DELETED'], resultLimit: 50 } }),
      );
      assert.equal(r.status, 200);
      const link = r.json.documentSelfLink;
      assert.ok(r.json.migrationOptions.includes('CONTINUOUS'));
      let stop = false;
      let n = 0;
      const writer = (async () => {
        while (!stop) {
          await http('POST', `${blue.uri}/core/examples`, { name: `live-${n}`, documentSelfLink: `live-${n}` });
          await http('PATCH', `${blue.uri}/core/examples/c-${n % 200}`, { counter: 1000 + n });
          if (n % 10 === 0) await http('DELETE', `${blue.uri}/core/examples/live-${n - 5}`);
          n++;
        }
      })();
      await waitFor(async () => ((await http('GET', `${green.uri}${link}`)).json.progress.runCount >= 3 ? true : undefined), 'three continuous runs');
      stop = true;
      await writer;
      const runs = (await http('GET', `${green.uri}${link}`)).json.progress.runCount;
      await waitFor(async () => {
        const t = (await http('GET', `${green.uri}${link}`)).json;
        return t.progress.runCount >= runs + 2 && t.taskInfo.stage === 'FINISHED' ? true : undefined;
      }, 'two more completed runs');
      assert.ok(n > 20, `the writer made ${n} rounds`);
      await assertSameDocuments(blue.uri, green.uri);
      const cancel = await http('PATCH', `${green.uri}${link}`, { taskInfo: { stage: 'CANCELLED' } });
      assert.equal(cancel.status, 200);
      assert.equal((await http('GET', `${green.uri}${link}`)).json.taskInfo.stage, 'CANCELLED');
    } finally {
      await Promise.all([blue.stop(), green.stop()]);
    }
  });
});

describe('migration task: a failed continuous run', () => {
  it('is reported FAILED with its cause and run again at the next interval, which then completes', async () => {
    const port = await freePort();
    const green = await startHost(['--id=green']);
    let blue: RunningHost | undefined;
    try {
      const body = {
        sourceNodeGroupReference: `http://127.0.0.1:${port}/core/node-groups/default`,
        destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
        sourceFactoryLink: '/core/examples',
        destinationFactoryLink: '/core/examples',
        continuousMigration: true,
        maintenanceIntervalMicros: 300_000,
      };
      const r = await http('POST', `${green.uri}/management/migration-tasks`, body);
      assert.equal(r.status, 200, r.text);
      const link = r.json.documentSelfLink;
      const failed = await waitForStage(green.uri, link, ['FAILED']);
      assert.match(failed.taskInfo.failure.message, new RegExp(`127\\.0\\.0\\.1:${port}`), 'the message names the unreachable source');
      await waitFor(async () => ((await http('GET', `${green.uri}${link}`)).json.progress.runCount >= 2 ? true : undefined), 'a second run after the failure');
      blue = await startHost(['--id=blue'], { port });
      await createExamples(blue.uri, 30, 'late');
      await waitFor(async () => {
        const t = (await http('GET', `${green.uri}${link}`)).json;
        return t.taskInfo.stage === 'FINISHED' && t.progress.processedServiceCount === 30 ? true : undefined;
      }, 'a run that completes once the source is back');
      await assertSameDocuments(blue.uri, green.uri);
      // Later runs start at the checkpoint: nothing new, so nothing migrated and nothing skipped
      // (the document at the checkpoint is not read as skipped again on every run).
      const runs = (await http('GET', `${green.uri}${link}`)).json.progress.runCount;
      const idle = await waitFor(async () => {
        const t = (await http('GET', `${green.uri}${link}`)).json;
        return t.progress.runCount >= runs + 2 && t.taskInfo.stage === 'FINISHED' ? t : undefined;
      }, 'two more runs');
      assert.equal(idle.progress.processedServiceCount, 30);
      assert.equal(idle.progress.skippedServiceCount, 0);
      assert.equal((await http('PATCH', `${green.uri}${link}`, { taskInfo: { stage: 'CANCELLED' } })).status, 200);
    } finally {
      await Promise.all([blue?.stop(), green.stop()]);
    }
  });
});

describe('migration task: checkpoints survive a restart of the host running it', () => {
  it('resumes a running task from its checkpoint after kill -9', async () => {
    const [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green'])]);
    let green2: RunningHost | undefined;
    try {
      // Enough pages that the run is still going when its first progress save lands (saves are
      // throttled to one per 250 ms; a faster run would finish before a checkpoint shows).
      await importExamples(blue.uri, 30_000, 'r');
      const r = await http('POST', `${green.uri}/management/migration-tasks`, task(blue, green, { querySpec: { resultLimit: 100 } }));
      const link = r.json.documentSelfLink;
      await waitFor(
        async () => {
          const t = (await http('GET', `${green.uri}${link}`)).json;
          return Object.keys(t.checkpoints ?? {}).length > 0 && t.progress.processedServiceCount > 0 && t.taskInfo.stage === 'STARTED' ? true : undefined;
        },
        'a checkpoint while STARTED',
        30_000,
        5,
      );
      await green.kill();
      green2 = await startHost([], { sandbox: green.sandbox, port: green.port });
      const done = await waitForStage(green2.uri, link, ['FINISHED', 'FAILED']);
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      assert.equal(await assertSameDocuments(blue.uri, green2.uri), 30_000);
      assert.ok(done.progress.runCount >= 2, 'the run was resumed, not forgotten');
    } finally {
      await Promise.all([blue.stop(), green.stop(), green2?.stop()]);
    }
  });
});
