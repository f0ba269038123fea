import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, runCli, startCli, startHost, tempDir, waitFor, type RunningHost } from './support/hosts.js';
import { assertSameDocuments, blueGreenSuite, createExamples, migrate, migrationTask, waitForStage } from './support/data.js';
import { FAST_GROUP, groupState, SECRET, startGroup, type GroupMember } from './support/cluster.js';

/**
 * A client writing to blue until blue refuses (503): creates, patches and deletes documents, and
 * remembers what blue acknowledged. Returns once refused, with the counts.
 */
async function writeUntilFrozen(base: string, prefix: string): Promise<{ acked: number; refusedWith: any }> {
  let acked = 0;
  for (let i = 0; ; i++) {
    const r =
      i % 3 === 0
        ? await http('POST', `${base}/core/examples`, { name: `${prefix}-${i}`, counter: i, documentSelfLink: `${prefix}-${i}` })
        : i % 3 === 1
          ? await http('PATCH', `${base}/core/examples/${prefix}-${i - 1}`, { counter: i * 10 })
          : await http('DELETE', `${base}/core/examples/${prefix}-${i - 2 - 3}`); // a document created two rounds ago
    if (r.status === 503) return { acked, refusedWith: r.json };
    assert.equal(r.status, 200, r.text);
    acked++;
  }
}

describe('krypton cutover: write freeze, final delta, verification, cutover and rollback', () => {
  const hosts = blueGreenSuite(400, 'co', { before, after });
  let blue: RunningHost;
  let green: RunningHost;
  before(() => ({ blue, green } = hosts));

  it('cuts over while a client writes to blue: green ends equal to blue, blue refuses writes, --rollback undoes it', async () => {
    // A continuous migration runs while blue serves traffic (the seeds' step 1).
    const created = await http(
      'POST',
      `${green.uri}/management/migration-tasks`,
      migrationTask(blue, green, { continuousMigration: true, maintenanceIntervalMicros: 200_000, querySpec: { options: ['INCLUDE_DELETED'] } }),
    );
    assert.equal(created.status, 200, created.text);
    const taskLink = created.json.documentSelfLink;
    await waitForStage(green.uri, taskLink, ['FINISHED']);
    const writer = writeUntilFrozen(blue.uri, 'live');
    await new Promise((r) => setTimeout(r, 700));
    const r = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', `--task=${taskLink}`, '--pollMillis=50']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const { acked, refusedWith } = await writer;
    assert.ok(acked > 10, `the client wrote during the migration (${acked} writes acknowledged)`);
    assert.equal(refusedWith.kryptonCode, 'KRY_ERR_WRITES_FROZEN');
    assert.match(r.stdout, /1\/4 freeze writes on 1 member\(s\) of http:\/\/127\.0\.0\.1:\d+: frozen; waited [\d.]+ ms for \d+ write\(s\) in flight \(\d+ ms\)/);
    assert.match(r.stdout, /cancelled \/management\/migration-tasks\/\S+; the delta starts at its checkpoint \d+/);
    assert.match(r.stdout, /2\/4 final delta: migrated \d+, skipped \d+, deleted \d+ \(/);
    assert.match(r.stdout, /3\/4 verify \(digest\): \d+ documents on both sides, digest [0-9a-f]{16}…/);
    assert.match(r.stdout, /4\/4 cutover: .* stays read-only .* Send clients to/);
    assert.match(r.stdout, /writes were refused for [\d.]+ m?s so far/);
    // Everything blue acknowledged is on green: creations, patches and deletions.
    const count = await assertSameDocuments(blue.uri, green.uri);
    assert.ok(count > 400, String(count));
    assert.equal((await http('GET', `${green.uri}${taskLink}`)).json.taskInfo.stage, 'CANCELLED');
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'late' })).status, 503);
    assert.equal((await http('POST', `${green.uri}/core/examples`, { name: 'on-green', documentSelfLink: 'on-green' })).status, 200);

    const back = await runCli(['cutover', '--rollback', `--source=${blue.uri}`]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /rolled back: 1 member\(s\) of http:\/\/127\.0\.0\.1:\d+ take writes again/);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'after-rollback', documentSelfLink: 'after-rollback' })).status, 200);
  });

  it('rolls back (blue takes writes again) and exits 1 when green does not equal blue', async () => {
    // on-green was written to green only (above), and co-7 is changed on green now: the delta
    // carries blue's newer writes, not those.
    assert.equal((await http('PATCH', `${green.uri}/core/examples/co-7`, { counter: 7000 })).status, 200);
    // A continuous task runs on green, and --task does not name it: the command says what it would save.
    const running = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, { continuousMigration: true, maintenanceIntervalMicros: 60_000_000 }));
    const runningLink = running.json.documentSelfLink;
    await waitForStage(green.uri, runningLink, ['FINISHED']);
    const r = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=50']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /verification failed: source http:\/\/127\.0\.0\.1:\d+: (\d+) documents, .*; destination http:\/\/127\.0\.0\.1:\d+: \d+ documents/);
    // It names the documents that differ (found by halving update-time ranges whose digests differ).
    assert.match(r.stderr, /\n {2}on-green: only on the destination http:\/\/127\.0\.0\.1:\d+ \(updated \d+ \(20\d\d-/);
    assert.match(r.stderr, /\n {2}co-7: updated \d+ \(20[^)]+\) on the source http:\/\/127\.0\.0\.1:\d+, \d+ \(20[^)]+\) on the destination http/);
    assert.equal(r.stderr.match(/\n {2}\S+: /g)?.length, 2, r.stderr);
    assert.match(r.stdout, /rolled back: 1 member\(s\) of .* take writes again/);
    assert.ok(
      r.stdout.includes(`note: the continuous task ${runningLink} migrates /core/examples to ${green.uri}: with --task=${runningLink} the final delta would start at its checkpoint`),
      r.stdout,
    );
    await http('PATCH', `${green.uri}${runningLink}`, { taskInfo: { stage: 'CANCELLED' } });
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`)).json.frozen, false);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'still-writable' })).status, 200);
    await http('DELETE', `${green.uri}/core/examples/on-green`);
  });

  it('rolls back and exits 1 when the final delta fails, saying how to run the replaced continuous task again', async () => {
    const created = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, { continuousMigration: true, maintenanceIntervalMicros: 200_000 }));
    const taskLink = created.json.documentSelfLink;
    await waitForStage(green.uri, taskLink, ['FINISHED']);
    const r = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--to=/core/no-such-factory', `--task=${taskLink}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the final delta ended FAILED: the destination factory \/core\/no-such-factory does not exist/);
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`)).json.frozen, false);
    assert.ok(r.stdout.includes(`the continuous task ${green.uri}${taskLink} stays cancelled: PATCH it with {"taskInfo": {"stage": "STARTED"}} to run it again`), r.stdout);
    assert.equal((await http('PATCH', `${green.uri}${taskLink}`, { taskInfo: { stage: 'STARTED' } })).status, 200);
    await waitForStage(green.uri, taskLink, ['FINISHED']);
    await http('PATCH', `${green.uri}${taskLink}`, { taskInfo: { stage: 'CANCELLED' } });
  });

  it('rolls back on Ctrl-C; a second Ctrl-C quits at once, leaving blue frozen until --rollback', async () => {
    // --pollMillis=1000: the final delta lasts at least a second, so the signals arrive during it.
    const args = ['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=1000'];
    await createExamples(blue.uri, 2000, 'ctrl-c-a');
    const once = startCli(args);
    // The delta task's first poll is printed (stage=STARTED): the command now waits a second before the next.
    const deltaStarted = (cli: { stdout: () => string }) => waitFor(async () => /2\/4 final delta[\s\S]*stage=STARTED/.test(cli.stdout()), 'the final delta running', 30_000, 5);
    await deltaStarted(once);
    once.proc.kill('SIGINT');
    assert.equal(await once.exited, 1, once.stderr());
    assert.match(once.stdout(), /interrupted: rolling back after the current step/);
    assert.match(once.stderr(), /krypton: interrupted/);
    assert.match(once.stdout(), /rolled back: 1 member\(s\) of http:\/\/127\.0\.0\.1:\d+ take writes again/);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'after-ctrl-c' })).status, 200);

    await createExamples(blue.uri, 2000, 'ctrl-c-b');
    const twice = startCli(args);
    await deltaStarted(twice);
    twice.proc.kill('SIGINT');
    await waitFor(async () => /interrupted: rolling back/.test(twice.stdout()), 'the first Ctrl-C taken', 10_000, 10);
    twice.proc.kill('SIGINT');
    assert.equal(await twice.exited, 130, twice.stderr());
    assert.match(
      twice.stderr(),
      /quit before rolling back: members of http:\/\/127\.0\.0\.1:\d+ may still refuse writes; unfreeze them with: krypton cutover --rollback --source=http:\/\/127\.0\.0\.1:\d+/,
    );
    assert.doesNotMatch(twice.stdout(), /rolled back/);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'still-frozen' })).status, 503, twice.stdout() + twice.stderr());
    const back = await runCli(['cutover', '--rollback', `--source=${blue.uri}`]);
    assert.equal(back.code, 0, back.stderr);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'unfrozen' })).status, 200);

    // Ctrl-C once the cutover is complete changes nothing: exit 0, blue stays frozen (the signal
    // used to kill the command while it closed its connections, which a script read as a failure).
    // (--verify=none: an earlier test left green's copy of one document newer than blue's on purpose.)
    const late = startCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--verify=none']);
    let ended = false;
    void late.exited.then(() => (ended = true));
    await waitFor(async () => /4\/4 cutover/.test(late.stdout()) || ended, 'the cutover complete', 30_000, 1);
    assert.match(late.stdout(), /4\/4 cutover/, late.stdout() + late.stderr());
    late.proc.kill('SIGINT');
    assert.equal(await late.exited, 0, late.stdout() + late.stderr());
    assert.doesNotMatch(late.stdout(), /interrupted/);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'cut over' })).status, 503);
    assert.equal((await runCli(['cutover', '--rollback', `--source=${blue.uri}`])).code, 0);
  });

  it('refuses bad flags with exit code 2 and freezes nothing', async () => {
    for (const args of [['cutover'], ['cutover', `--source=${blue.uri}`], ['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--verify=maybe']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--source is required|--destination is required|--verify must be digest, content, count or none/);
    }
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`)).json.frozen, false);
  });
});

describe('krypton cutover with a node group of two as blue', () => {
  let members: GroupMember[] = [];
  let green: RunningHost | undefined;
  after(async () => {
    await Promise.all([...members.map((m) => m.stop()), green?.stop()]);
  });

  it('freezes every member, verifies each against green, and rolls all back', async () => {
    members = await startGroup(2, 'cob');
    green = await startHost(['--id=green2']);
    await createExamples(members[0]!.uri, 120, 'grp');
    const r = await runCli(['cutover', `--source=${members[1]!.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=50']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /1\/4 freeze writes on 2 member\(s\)/);
    assert.match(r.stdout, /3\/4 verify \(digest\): 120 documents on both sides/);
    for (const m of members) {
      const w = await http('POST', `${m.uri}/core/examples`, { name: 'refused' });
      assert.equal(w.status, 503, `${m.uri}: ${w.text}`);
    }
    await assertSameDocuments(members[0]!.uri, green.uri);
    const back = await runCli(['cutover', '--rollback', `--source=${members[0]!.uri}`]);
    assert.equal(back.code, 0, back.stderr);
    for (const m of members) assert.equal((await http('GET', `${m.uri}/management/write-freeze`)).json.frozen, false);
    assert.equal((await http('POST', `${members[1]!.uri}/core/examples`, { name: 'writable' })).status, 200);
    // One member frozen alone refuses every write sent to it, also those the other member owns.
    assert.equal((await http('PUT', `${members[1]!.uri}/management/write-freeze`, { frozen: true })).status, 200);
    for (let i = 0; i < 8; i++) {
      const w = await http('PATCH', `${members[1]!.uri}/core/examples/grp-${i}`, { counter: 1000 });
      assert.equal(w.status, 503, `grp-${i}: ${w.text}`);
      assert.equal(w.json.kryptonCode, 'KRY_ERR_WRITES_FROZEN');
    }
    assert.equal((await http('PUT', `${members[1]!.uri}/management/write-freeze`, { frozen: false })).status, 200);
  });

  it('rolls back when a member joins blue during the window (it was never frozen)', async () => {
    // --pollMillis=6000: the final delta lasts six seconds, time for a new member to start and join.
    const cli = startCli(['cutover', `--source=${members[0]!.uri}`, `--destination=${green!.uri}`, '--factory=/core/examples', '--pollMillis=6000']);
    await waitFor(async () => /1\/4 freeze writes on 2 member\(s\) .*: frozen/.test(cli.stdout()), 'blue frozen', 30_000, 10);
    const late = await startHost(['--id=cob-late', `--groupSecret=${SECRET}`, ...FAST_GROUP, `--peerNodes=${members[0]!.uri}`]);
    try {
      await waitFor(async () => Object.keys((await groupState(members[0]!)).nodes).includes('cob-late'), 'the new member listed by blue', 20_000);
      assert.equal(await cli.exited, 1, cli.stdout() + cli.stderr());
      assert.match(cli.stderr(), /cob-late \(http:\/\/127\.0\.0\.1:\d+\) joined the node group of http:\/\/127\.0\.0\.1:\d+ during the window and was not frozen/);
      assert.doesNotMatch(cli.stdout(), /4\/4 cutover/);
      assert.match(cli.stdout(), /rolled back: 2 member\(s\)/);
      for (const m of members) assert.equal((await http('GET', `${m.uri}/management/write-freeze`)).json.frozen, false);
    } finally {
      await late.stop();
    }
  });
});

describe('krypton cutover --task of a continuous task that does not carry deletions', () => {
  const hosts = blueGreenSuite(200, 'nd', { before, after });

  it('reads the whole factory in the final delta, so deletions made during the continuous phase reach green', async () => {
    const { blue, green } = hosts;
    const created = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green, { continuousMigration: true, maintenanceIntervalMicros: 200_000 }));
    const taskLink = created.json.documentSelfLink;
    await waitForStage(green.uri, taskLink, ['FINISHED']);
    for (let i = 0; i < 10; i++) assert.equal((await http('DELETE', `${blue.uri}/core/examples/nd-${i}`)).status, 200);
    await http('POST', `${blue.uri}/core/examples`, { name: 'nd-new', documentSelfLink: 'nd-new' });
    // The continuous runs pass the deletions over: green still holds those documents.
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await http('GET', `${green.uri}/core/examples/nd-0`)).status, 200);
    const r = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', `--task=${green.uri}${taskLink}`, '--pollMillis=50']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /it did not carry deletions \(querySpec\.options lacks INCLUDE_DELETED\), so the delta reads every source document/);
    assert.match(r.stdout, /2\/4 final delta: migrated \d+, skipped \d+, deleted 10 \(/);
    assert.equal(await assertSameDocuments(blue.uri, green.uri), 191);
  });
});

describe('krypton cutover of several factories', () => {
  let blue: RunningHost;
  let green: RunningHost;
  before(async () => {
    const mod = join(tempDir(), 'widgets.mjs');
    writeFileSync(
      mod,
      `export const Widgets = { type: 'stateful', factoryLink: '/test/widgets', documentKind: 'widget' };
       export const Copies = { type: 'stateful', factoryLink: '/test/copies', documentKind: 'copy' };\n`,
    );
    [blue, green] = await Promise.all([startHost(['--id=blue3', `--services=${mod}`]), startHost(['--id=green3', `--services=${mod}`])]);
    await Promise.all([createExamples(blue.uri, 150, 'mx'), createExamples(blue.uri, 80, 'wd', 16, '/test/widgets')]);
  });
  after(async () => {
    await Promise.all([blue.stop(), green.stop()]);
  });

  it('runs a final delta and a verification per factory, each from its own continuous task', async () => {
    const tasks: string[] = [];
    for (const factory of ['/core/examples', '/test/widgets']) {
      const body = {
        ...migrationTask(blue, green),
        sourceFactoryLink: factory,
        destinationFactoryLink: factory,
        continuousMigration: true,
        maintenanceIntervalMicros: 200_000,
        querySpec: { options: ['INCLUDE_DELETED'] },
      };
      const created = await http('POST', `${green.uri}/management/migration-tasks`, body);
      assert.equal(created.status, 200, created.text);
      tasks.push(created.json.documentSelfLink);
    }
    for (const t of tasks) await waitForStage(green.uri, t, ['FINISHED']);
    await createExamples(blue.uri, 5, 'wd-late', 1, '/test/widgets');
    assert.equal((await http('DELETE', `${blue.uri}/core/examples/mx-3`)).status, 200);
    const args = ['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples,/test/widgets'];

    // Checked before anything is frozen: one destination per factory, tasks of the factories named.
    const badTo = await runCli([...args, '--to=/core/examples', `--task=${tasks.join(',')}`]);
    assert.equal(badTo.code, 2, badTo.stderr);
    assert.match(badTo.stderr, /--to names 1 factories and --factory 2/);
    const badTask = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', `--task=${tasks[1]}`]);
    assert.equal(badTask.code, 2, badTask.stderr);
    assert.match(badTask.stderr, /migrates \/test\/widgets, which --factory does not name/);
    assert.equal((await http('GET', `${blue.uri}/management/write-freeze`)).json.frozen, false);

    const r = await runCli([...args, `--task=${tasks[1]},${tasks[0]}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    // The continuous tasks may have carried the late changes already: the deltas' counts vary.
    assert.match(r.stdout, /2\/4 final delta of \/core\/examples: migrated \d+, skipped \d+, deleted \d+ \(/);
    assert.match(r.stdout, /2\/4 final delta of \/test\/widgets: migrated \d+, skipped \d+, deleted \d+ \(/);
    assert.match(r.stdout, /3\/4 verify \(digest\) of \/core\/examples: 149 documents on both sides/);
    assert.match(r.stdout, /3\/4 verify \(digest\) of \/test\/widgets: 85 documents on both sides/);
    assert.match(r.stdout, /4\/4 cutover: .* \(2 factories\)/);
    await assertSameDocuments(blue.uri, green.uri);
    await assertSameDocuments(blue.uri, green.uri, '/test/widgets');
    for (const t of tasks) assert.equal((await http('GET', `${green.uri}${t}`)).json.taskInfo.stage, 'CANCELLED');
    assert.equal((await http('POST', `${blue.uri}/test/widgets`, { name: 'late' })).status, 503);
  });

  it('verifies a factory under the destination link of its --task when --to is not given', async () => {
    assert.equal((await runCli(['cutover', '--rollback', `--source=${blue.uri}`])).code, 0);
    const body = {
      ...migrationTask(blue, green),
      sourceFactoryLink: '/test/widgets',
      destinationFactoryLink: '/test/copies',
      continuousMigration: true,
      maintenanceIntervalMicros: 200_000,
      querySpec: { options: ['INCLUDE_DELETED'] },
    };
    const task = (await http('POST', `${green.uri}/management/migration-tasks`, body)).json.documentSelfLink;
    await waitForStage(green.uri, task, ['FINISHED']);
    // Green's own /test/widgets now differs from blue's: only /test/copies may be compared.
    assert.equal((await http('POST', `${green.uri}/test/widgets`, { name: 'green-only' })).status, 200);
    const r = await runCli(['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/test/widgets', `--task=${task}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /3\/4 verify \(digest\): 85 documents on both sides/);
    const copies = (await http('GET', `${green.uri}/test/copies`)).json.documentCount;
    assert.equal(copies, 85);
  });
});

describe('krypton cutover --verify=content', () => {
  const hosts = blueGreenSuite(300, 'cv', { before, after });

  it('compares every user field too: a copy changed on green at the same update time is named, and blue is unfrozen', async () => {
    const { blue, green } = hosts;
    assert.equal((await migrate(green, migrationTask(blue, green))).taskInfo.stage, 'FINISHED');
    const digest = async (h: RunningHost, extra = '') => (await http('GET', `${h.uri}/management/factory-digest?factoryLink=/core/examples${extra}`)).json;
    // Migrated copies hold the same content: isFromMigration (true on green) is left out of it,
    // as Xenon leaves EXCLUDE_FROM_SIGNATURE fields out of a signature.
    const [b, g] = [await digest(blue, '&content=true'), await digest(green, '&content=true')];
    assert.equal(b.content, true);
    assert.equal(g.digest, b.digest);
    assert.notEqual(b.digest, (await digest(blue)).digest);
    assert.equal((await http('GET', `${green.uri}/core/examples/cv-5`)).json.isFromMigration, true);

    // A copy with other content at the same update time: ids and update times still agree.
    const original = (await http('GET', `${blue.uri}/core/examples/cv-5`)).json;
    const changed = await http('POST', `${green.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents: [{ ...original, name: 'tampered' }], overwrite: true });
    assert.equal(changed.status, 200, changed.text);
    const copy = (await http('GET', `${green.uri}/core/examples/cv-5`)).json;
    assert.equal(copy.name, 'tampered');
    assert.equal(copy.documentUpdateTimeMicros, original.documentUpdateTimeMicros);
    assert.equal((await digest(green)).digest, (await digest(blue)).digest);
    assert.notEqual((await digest(green, '&content=true')).digest, b.digest);
    const listed = (await digest(green, '&content=true&list=true')).documents as Array<[string, number, string]>;
    const blueListed = (await digest(blue, '&content=true&list=true')).documents as Array<[string, number, string]>;
    assert.equal(listed.length, 300);
    const hashOf = (docs: Array<[string, number, string]>, id: string) => docs.find((d) => d[0] === id)![2];
    assert.match(hashOf(listed, 'cv-5'), /^[0-9a-f]{16}$/);
    assert.notEqual(hashOf(listed, 'cv-5'), hashOf(blueListed, 'cv-5'));
    assert.equal(hashOf(listed, 'cv-6'), hashOf(blueListed, 'cv-6'));

    const args = ['cutover', `--source=${blue.uri}`, `--destination=${green.uri}`, '--factory=/core/examples', '--pollMillis=50'];
    const r = await runCli([...args, '--verify=content']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /verification failed: .*\ndifferences:\n {2}cv-5: content differs \(updated \d+ \(\d{4}-\d\d-\d\dT[\d:.]+Z\) on both sides\)/);
    assert.match(r.stdout, /rolled back: 1 member\(s\)/);
    assert.equal((await http('POST', `${blue.uri}/core/examples`, { name: 'after-content-check', documentSelfLink: 'cv-after' })).status, 200);

    const refused = await runCli([...args, '--verify=content', '--transform=/core/transforms/x']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--verify=content .* --transform/);
    // Without content, the same copies pass: same ids and update times.
    const plain = await runCli(args);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.match(plain.stdout, /3\/4 verify \(digest\): 301 documents on both sides/);
    assert.equal((await runCli(['cutover', '--rollback', `--source=${blue.uri}`])).code, 0);
  });
});
