import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, runCli, startCli, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { assertSameDocuments, blueGreenSuite, createExamples, waitForStage } from './support/data.js';
import { importExamples } from './support/cluster.js';

describe('krypton migrate (CLI) and task lifecycle edges', () => {
  const hosts = blueGreenSuite(300, 'cli', { before, after });
  let blue: RunningHost;
  let green: RunningHost;
  before(() => ({ blue, green } = hosts));

  it('migrates a factory, prints plain progress lines off a terminal, and exits 0 when FINISHED', async () => {
    const r = await runCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=50']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^migration task http:\/\/127\.0\.0\.1:\d+\/management\/migration-tasks\/\S+$/m);
    assert.match(r.stdout, /stage=(CREATED|STARTED|FINISHED) processed=\d+ skipped=\d+ total=300 rate=\d+\/s/);
    assert.match(r.stdout, /FINISHED: migrated 300, skipped 0 in [\d.]+ s/);
    await assertSameDocuments(blue.uri, green.uri);
  });

  it('exits 0 when Ctrl-C comes once the task has FINISHED', async () => {
    const cli = startCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=50']);
    let ended = false;
    void cli.exited.then(() => (ended = true));
    await waitFor(async () => /FINISHED: migrated/.test(cli.stdout()) || ended, 'the task finished', 30_000, 1);
    cli.proc.kill('SIGINT');
    assert.equal(await cli.exited, 0, cli.stdout() + cli.stderr());
  });

  it('applies --query from a file and --to another factory link', async () => {
    const dir = tempDir();
    const q = join(dir, 'q.json');
    writeFileSync(q, JSON.stringify({ query: { term: { propertyName: 'name', matchValue: 'cli-1*', matchType: 'WILDCARD' } } }));
    const r = await runCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--to=/core/examples', `--query=${q}`, '--pollMillis=50']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /FINISHED: migrated 0, skipped 111/);
  });

  it('exits 1 with the failure message when the task fails', async () => {
    const r = await runCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--to=/core/missing-factory', '--pollMillis=50']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FAILED: the destination factory \/core\/missing-factory does not exist/);
  });

  it('ends a continuous follow with exit 1 when someone else cancels the task', async () => {
    const cli = startCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--continuous', '--pollMillis=50']);
    const link = await waitFor(async () => /^migration task (\S+)$/m.exec(cli.stdout())?.[1], 'the task link', 30_000, 10);
    assert.equal((await http('PATCH', link, { taskInfo: { stage: 'CANCELLED' } })).status, 200);
    assert.equal(await cli.exited, 1, cli.stdout());
    assert.match(cli.stderr(), /CANCELLED: the task was cancelled/);
  });

  it('refuses missing flags with exit code 2', async () => {
    const r = await runCli(['migrate', `--source=${blue.uri}`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--destination is required/);
  });

  it('fails a task whose documentExpirationTimeMicros has passed, and DELETE stops a running task', async () => {
    const body = {
      sourceNodeGroupReference: `${blue.uri}/core/node-groups/default`,
      destinationNodeGroupReference: `${green.uri}/core/node-groups/default`,
      sourceFactoryLink: '/core/examples',
      destinationFactoryLink: '/core/examples',
      documentExpirationTimeMicros: Date.now() * 1000 + 1,
    };
    const t = await http('POST', `${green.uri}/management/migration-tasks`, body);
    const done = await waitForStage(green.uri, t.json.documentSelfLink, ['FINISHED', 'FAILED']);
    assert.equal(done.taskInfo.stage, 'FAILED', 'an expired task reports FAILED instead of vanishing');
    assert.match(done.taskInfo.failure.message, /expired .* raise documentExpirationTimeMicros and re-run/);
    const cont = await http('POST', `${green.uri}/management/migration-tasks`, { ...body, documentExpirationTimeMicros: 0, continuousMigration: true, maintenanceIntervalMicros: 100_000 });
    await waitFor(async () => ((await http('GET', `${green.uri}${cont.json.documentSelfLink}`)).json.progress.runCount >= 2 ? true : undefined), 'two runs');
    const del = await http('DELETE', `${green.uri}${cont.json.documentSelfLink}`);
    assert.equal(del.status, 200);
    assert.equal((await http('GET', `${green.uri}${cont.json.documentSelfLink}`)).status, 404);
  });
});

describe('transformation failures and empty results', () => {
  it('fails the task with the service error, and counts empty results as skipped', async () => {
    const dir = tempDir();
    const mod = join(dir, 'transform.mjs');
    writeFileSync(
      mod,
      `export const T = { type: 'stateless', link: '/test/transform', handlers: { POST: (op) => {
        const body = op.bodyObject();
        const [json, factory] = Object.entries(body)[0];
        const doc = JSON.parse(json);
        if (doc.name === 'boom') { const e = new Error('cannot transform boom'); e.statusCode = 500; throw e; }
        if (doc.counter % 2 === 1) return {};
        return { [json]: factory };
      } } };\n`,
    );
    const [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green', `--services=${mod}`])]);
    try {
      await createExamples(blue.uri, 20, 't');
      const base = {
        sourceReferences: [blue.uri],
        destinationReferences: [green.uri],
        sourceFactoryLink: '/core/examples',
        destinationFactoryLink: '/core/examples',
        transformationServiceLink: '/test/transform',
      };
      const ok = await http('POST', `${green.uri}/management/migration-tasks`, base);
      const done = await waitForStage(green.uri, ok.json.documentSelfLink, ['FINISHED', 'FAILED']);
      assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
      assert.equal(done.progress.processedServiceCount, 10);
      assert.equal(done.progress.skippedServiceCount, 10, 'empty results are counted, not lost silently');
      await http('POST', `${blue.uri}/core/examples`, { name: 'boom', counter: 2 });
      const bad = await http('POST', `${green.uri}/management/migration-tasks`, base);
      const failed = await waitForStage(green.uri, bad.json.documentSelfLink, ['FINISHED', 'FAILED']);
      assert.equal(failed.taskInfo.stage, 'FAILED');
      assert.match(failed.taskInfo.failure.message, /transformation .*\/test\/transform failed: cannot transform boom/);
    } finally {
      await Promise.all([blue.stop(), green.stop()]);
    }
  });
});

describe('krypton migrate while the destination restarts', () => {
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    [blue, green] = await Promise.all([startHost(['--id=blue']), startHost(['--id=green'])]);
    await importExamples(blue.uri, 20_000, 'rs');
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('keeps following the task across a kill -9 and restart of the destination, and exits 0 when it finishes', async () => {
    const dir = tempDir();
    const q = join(dir, 'q.json');
    writeFileSync(q, JSON.stringify({ resultLimit: 100 }));
    const cli = startCli(['migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', `--query=${q}`, '--pollMillis=50']);
    const link = await waitFor(async () => /^migration task (\S+)$/m.exec(cli.stdout())?.[1], 'the task link', 30_000, 10);
    await waitFor(async () => (await http('GET', link)).json?.progress?.processedServiceCount > 0, 'the first migrated documents', 30_000, 10);
    await green.kill();
    await waitFor(async () => cli.stdout().includes('destination unreachable'), 'the CLI to notice', 10_000, 10);
    green = await startHost(['--id=green'], { port: green.port, sandbox: green.sandbox });
    assert.equal(await cli.exited, 0, cli.stderr());
    assert.match(cli.stdout(), /destination reachable again/);
    assert.match(cli.stdout(), /FINISHED: migrated/);
    assert.equal((await http('GET', `${green.uri}/core/examples?$count=true`)).json.totalCount, 20_000);
  });
});
