import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CLI, ROOT, http, startHost, waitFor, type RunningHost } from './support/hosts.js';
import { assertSameDocuments, blueGreenSuite, createExamples, migrate, migrationTask, snapshot } from './support/data.js';

const task = migrationTask;

function finished(done: any): void {
  assert.equal(done.taskInfo.stage, 'FINISHED', JSON.stringify(done.taskInfo));
}

/** Every stored version of a factory's documents on a host: "link@version updateTime action", sorted. */
async function allVersions(base: string, factory = '/core/examples'): Promise<string[]> {
  const r = await http('POST', `${base}/core/query-tasks`, {
    taskInfo: { isDirect: true },
    querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: `${factory}/`, matchType: 'PREFIX' } }, options: ['INCLUDE_ALL_VERSIONS', 'EXPAND_CONTENT'] },
  });
  assert.equal(r.status, 200, r.text);
  return Object.values(r.json.results.documents as Record<string, any>)
    .map((d) => `${d.documentSelfLink}@${d.documentVersion} ${d.documentUpdateTimeMicros} ${d.documentUpdateAction}`)
    .sort();
}

describe('migration re-runs: time bound, changed documents', () => {
  const N = 10;
  // One at a time, so each document has its own update time.
  const hosts = blueGreenSuite(N, 'rr', { before, after }, 1);
  let blue: RunningHost;
  let green: RunningHost;
  /** Blue's documents, oldest update first. */
  let ordered: any[] = [];

  before(async () => {
    ({ blue, green } = hosts);
    ordered = [...(await snapshot(blue.uri)).values()].sort((a, b) => a.documentUpdateTimeMicros - b.documentUpdateTimeMicros);
    assert.equal(new Set(ordered.map((d) => d.documentUpdateTimeMicros)).size, N, 'distinct update times');
  });

  it('a one-shot task with latestSourceUpdateTimeMicros migrates only documents updated at or after it', async () => {
    const middle = ordered[4];
    const expected = ordered
      .slice(4)
      .map((d) => d.documentSelfLink)
      .sort();
    const done = await migrate(green, task(blue, green, { latestSourceUpdateTimeMicros: middle.documentUpdateTimeMicros }));
    finished(done);
    assert.equal(done.progress.processedServiceCount, N - 4, 'the document at the bound and the newer ones');
    assert.equal(done.progress.skippedServiceCount, 0);
    assert.equal(done.latestSourceUpdateTimeMicros, ordered[N - 1].documentUpdateTimeMicros, 'afterwards the newest update time seen');
    const g = await snapshot(green.uri);
    assert.deepEqual([...g.keys()].sort(), expected);
    assert.equal(g.get(middle.documentSelfLink).documentUpdateTimeMicros, middle.documentUpdateTimeMicros);
    for (const old of ordered.slice(0, 4)) assert.equal((await http('GET', `${green.uri}${old.documentSelfLink}`)).status, 404, `${old.documentSelfLink} is older than the bound`);

    // Without the bound the older ones follow; the others are skipped.
    const rest = await migrate(green, task(blue, green));
    finished(rest);
    assert.equal(rest.progress.processedServiceCount, 4);
    assert.equal(rest.progress.skippedServiceCount, N - 4);
    assert.equal(await assertSameDocuments(blue.uri, green.uri), N);
  });

  it('migrates a changed source document again (isFromMigration, source update time, new content) and skips the unchanged', async () => {
    const before = await snapshot(green.uri);
    const changed = ordered[2].documentSelfLink;
    const p = await http('PATCH', `${blue.uri}${changed}`, { name: 'renamed on blue', counter: 500, tags: ['changed'] });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.isFromMigration, false, "blue's own write");

    const done = await migrate(green, task(blue, green));
    finished(done);
    assert.equal(done.progress.processedServiceCount, 1);
    assert.equal(done.progress.skippedServiceCount, N - 1);

    const g = (await http('GET', `${green.uri}${changed}`)).json;
    assert.equal(g.isFromMigration, true);
    assert.equal(g.documentUpdateTimeMicros, p.json.documentUpdateTimeMicros, "the source's update time");
    assert.equal(g.name, 'renamed on blue');
    assert.equal(g.counter, 500);
    assert.deepEqual(g.tags, ['changed']);
    assert.ok(g.documentVersion > before.get(changed).documentVersion, 'an update of the existing document');
    const after = await snapshot(green.uri);
    assert.equal(after.size, N, 'no duplicate');
    for (const [link, d] of before) {
      if (link === changed) continue;
      assert.deepEqual(after.get(link), d, `${link} untouched`);
    }
    await assertSameDocuments(blue.uri, green.uri);
  });
});

describe('migration re-runs: transformation (Employee v1 → v2 sample)', () => {
  const N = 20;
  let blue: RunningHost;
  let green: RunningHost;
  const body = () => ({
    ...task(blue, green),
    sourceFactoryLink: '/quickstart/employees',
    destinationFactoryLink: '/quickstart/employees',
    transformationServiceLink: '/quickstart/employee-transform',
  });
  before(async () => {
    [blue, green] = await Promise.all([
      startHost(['--id=blue', `--services=${join(ROOT, 'samples', 'employee-v1.mjs')}`]),
      startHost(['--id=green', `--services=${join(ROOT, 'samples', 'employee-v2.mjs')}`]),
    ]);
    await createExamples(blue.uri, N, 'emp', 8, '/quickstart/employees');
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('migrates nothing the second time: processed 0, every transformed document skipped', async () => {
    const first = await migrate(green, body());
    finished(first);
    assert.equal(first.progress.processedServiceCount, 2 * N, 'an employee and a mailbox per source document');
    assert.equal(first.progress.skippedServiceCount, 0);
    const employees = await snapshot(green.uri, '/quickstart/employees');
    const mailboxes = await snapshot(green.uri, '/quickstart/mailboxes');
    assert.equal(employees.size, N);
    assert.equal(mailboxes.size, N);

    const second = await migrate(green, body());
    finished(second);
    assert.equal(second.progress.processedServiceCount, 0);
    assert.equal(second.progress.skippedServiceCount, 2 * N);
    assert.deepEqual(await snapshot(green.uri, '/quickstart/employees'), employees, 'employees not rewritten');
    assert.deepEqual(await snapshot(green.uri, '/quickstart/mailboxes'), mailboxes, 'mailboxes not rewritten');
  });
});

describe('migration re-runs: ALL_VERSIONS', () => {
  const N = 6;
  const hosts = blueGreenSuite(N, 'av', { before, after }, 1);
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    ({ blue, green } = hosts);
    for (let i = 0; i < N; i++) for (let k = 1; k <= i; k++) assert.equal((await http('PATCH', `${blue.uri}/core/examples/av-${i}`, { counter: 100 * i + k })).status, 200);
    assert.equal((await http('PUT', `${blue.uri}/core/examples/av-1`, { name: 'put', counter: 1000 })).status, 200);
  });

  let first: any;
  const VERSIONS = 1 + 2 + 3 + 4 + 5 + 6 + 1; // POST and i PATCHes of av-i, and the PUT of av-1

  it('migrates nothing the second time, and green keeps the same versions', async () => {
    first = await migrate(green, task(blue, green, { migrationOptions: ['ALL_VERSIONS'] }));
    finished(first);
    const history = await allVersions(green.uri);
    assert.deepEqual(history, await allVersions(blue.uri), "green holds blue's versions");
    assert.equal(history.length, VERSIONS, 'POST, the PATCHes and the PUT');
    const latest = await snapshot(green.uri);

    const second = await migrate(green, task(blue, green, { migrationOptions: ['ALL_VERSIONS'] }));
    finished(second);
    assert.equal(second.progress.processedServiceCount, 0);
    assert.equal(second.progress.skippedServiceCount, N);
    assert.deepEqual(await allVersions(green.uri), history, 'no new version, none replaced');
    const now = await snapshot(green.uri);
    for (const [link, d] of latest) assert.equal(now.get(link).documentVersion, d.documentVersion, `${link} same documentVersion`);
    assert.deepEqual(now, latest);
  });

  it("counts the versions written in processedServiceCount, as Xenon's ALL_VERSIONS does (xenon-migration.md §1.8)", async () => {
    assert.equal(first.progress.processedServiceCount, VERSIONS);
    const stats = await http('GET', `${green.uri}${first.documentSelfLink}/stats`);
    assert.equal(stats.json.entries.processedServiceCount.latestValue, VERSIONS);
  });

  it('replays only the changed document on a later run', async () => {
    const p = await http('PATCH', `${blue.uri}/core/examples/av-3`, { counter: 9999 });
    assert.equal(p.status, 200, p.text);
    const done = await migrate(green, task(blue, green, { migrationOptions: ['ALL_VERSIONS'] }));
    finished(done);
    assert.equal(done.progress.skippedServiceCount, N - 1);
    assert.ok(done.progress.processedServiceCount > 0);
    assert.deepEqual(await allVersions(green.uri), await allVersions(blue.uri));
    const g = (await http('GET', `${green.uri}/core/examples/av-3`)).json;
    assert.equal(g.counter, 9999);
    assert.equal(g.documentVersion, p.json.documentVersion);
  });
});

describe('krypton migrate --continuous interrupted with SIGINT', () => {
  const N = 15;
  const hosts = blueGreenSuite(N, 'ci', { before, after });
  let blue: RunningHost;
  let green: RunningHost;
  before(() => ({ blue, green } = hosts));

  it('cancels the task on the destination, says so and exits 130 after its first run completed', async () => {
    const p = spawn(process.execPath, [CLI, 'migrate', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--continuous', '--interval=300000', '--pollMillis=50'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    try {
      const link = await waitFor(async () => /^migration task http:\/\/127\.0\.0\.1:\d+(\/management\/migration-tasks\/\S+)$/m.exec(stdout)?.[1], 'the task link on stdout', 20_000);
      await waitFor(async () => {
        const t = (await http('GET', `${green.uri}${link}`)).json;
        return t.progress.runCount >= 1 && t.taskInfo.stage === 'FINISHED' && t.progress.processedServiceCount === N;
      }, 'the first run to complete');
      await waitFor(async () => new RegExp(`stage=FINISHED processed=${N} skipped=\\d+`).test(stdout), 'the CLI to report the finished run', 20_000);
      assert.equal(p.exitCode, null, 'a continuous migration keeps following after a run');
      await assertSameDocuments(blue.uri, green.uri);

      p.kill('SIGINT');
      await waitFor(async () => p.exitCode !== null, 'the CLI to exit after SIGINT', 15_000);
      assert.equal(await exited, 130, `exit code (stderr: ${stderr})`);
      assert.match(stdout, /^migration cancelled$/m);
      assert.doesNotMatch(stderr, /Error/);
      const t = await http('GET', `${green.uri}${link}`);
      assert.equal(t.status, 200);
      assert.equal(t.json.taskInfo.stage, 'CANCELLED');
      assert.equal(t.json.continuousMigration, true);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
});
