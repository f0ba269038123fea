import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { http, startHost, tempDir, waitFor, writesTakenAgain, type RunningHost } from './support/hosts.js';
import { migrationTask } from './support/data.js';

/** Mounts a tmpfs of `mb` MB at `dir` (root only); false where this machine does not allow it. */
function mountTmpfs(dir: string, mb: number, remount = false): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `${remount ? 'remount,' : ''}size=${mb}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A 12 MB tmpfs for the test, unmounted after it; undefined (the test skipped) where it cannot be mounted. */
function smallDisk(t: TestContext): string | undefined {
  const mountPoint = tempDir();
  if (!mountTmpfs(mountPoint, 12)) {
    t.skip('this machine does not let the tests mount a tmpfs (root only)');
    return undefined;
  }
  t.after(() => {
    try {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore' });
    } catch {
      /* already gone: nothing to clean */
    }
  });
  return mountPoint;
}

/** POSTs 20 KB documents until the host refuses one; returns the acknowledged ones. */
async function fill(h: RunningHost): Promise<Map<string, Record<string, unknown>>> {
  const big = 'x'.repeat(20_000);
  const acked = new Map<string, Record<string, unknown>>();
  for (let i = 0; ; i++) {
    assert.ok(i < 1_000, '12 MB should be full long before 1,000 documents of 20 KB');
    const r = await http('POST', `${h.uri}/core/examples`, { name: `d-${i}`, counter: i, keyValues: { big } });
    if (r.status === 200) {
      acked.set(r.json['documentSelfLink'] as string, r.json);
      continue;
    }
    assert.equal(r.status, 500);
    assert.equal(r.json['documentKind'], 'com:vmware:xenon:common:ServiceErrorResponse');
    assert.match(String(r.json['message']), /no space left on device|disk is full/);
    assert.ok(acked.size > 10);
    const [first] = acked.keys();
    assert.deepEqual((await http('GET', `${h.uri}${first}`)).json, acked.get(first!), 'reads go on');
    return acked;
  }
}

/** Every acknowledged document is in the index, exactly, and nothing else. */
async function assertHolds(h: RunningHost, acked: Map<string, Record<string, unknown>>): Promise<void> {
  const listed = (await http('GET', `${h.uri}/core/examples?expand`)).json;
  assert.equal(listed.documentCount, acked.size, 'every acknowledged document, and only those');
  for (const [link, doc] of acked) assert.deepEqual(listed.documents[link], doc, `${link} is exactly as acknowledged`);
}

/** Stops a host on the full disk: exit 0, or 1 when its last checkpoint did not fit, which it must say loses nothing. */
async function stopOnFullDisk(h: RunningHost): Promise<void> {
  if ((await h.stop()) !== 0) assert.match(h.output(), /nothing is lost[^\n]*"msg":"stopped with an error"/);
}

describe('a full disk', () => {
  it('refuses writes, then takes them again by itself once there is space, losing nothing', async (t) => {
    const mountPoint = smallDisk(t);
    if (!mountPoint) return;
    const h = await startHost(['--logLevel=info'], { sandbox: join(mountPoint, 'sandbox') });
    try {
      const acked = await fill(h);
      assert.ok(mountTmpfs(mountPoint, 64, true), 'the tmpfs grows');
      const after = await writesTakenAgain(h);
      acked.set('/core/examples/after', after);
      await assertHolds(h, acked);
      // When the index itself had halted (not only the log's appends failing), it resumed by itself.
      if (h.output().includes('acknowledged writes could not be applied')) assert.match(h.output(), /"msg":"the index takes writes again/);
    } finally {
      assert.equal(await h.stop(), 0);
    }
  });

  it('a migration onto a full disk: the task answers FAILED at once, and records it once there is space', async (t) => {
    const mountPoint = smallDisk(t);
    if (!mountPoint) return;
    const blue = await startHost();
    const green = await startHost(['--logLevel=info'], { sandbox: join(mountPoint, 'sandbox') });
    try {
      const big = 'x'.repeat(20_000);
      for (let i = 0; i < 700; i += 100) {
        const documents = Array.from({ length: 100 }, (_, k) => ({ name: `m-${i + k}`, documentSelfLink: `/m-${i + k}`, keyValues: { big } }));
        assert.equal((await http('POST', `${blue.uri}/management/migration-import`, { destinationFactoryLink: '/core/examples', documents })).status, 200);
      }
      const task = await http('POST', `${green.uri}/management/migration-tasks`, migrationTask(blue, green));
      assert.equal(task.status, 200, task.text);
      const link = `${green.uri}${task.json.documentSelfLink}`;
      // 14 MB of documents do not fit in 12 MB: the run fails, and says so although the index
      // cannot record it yet.
      const failed = await waitFor(async () => {
        const g = await http('GET', link);
        return g.json.taskInfo.stage === 'FAILED' && g.json;
      }, 'the task to fail');
      assert.match(String(failed.taskInfo.failure.message), /no space left on device|disk is full|database or disk is full/i);
      // What the index holds (a query reads it; a GET also sees an outcome not recorded yet).
      const stored = async () => {
        const q = await http('POST', `${green.uri}/core/query-tasks`, {
          taskInfo: { isDirect: true },
          querySpec: { query: { term: { propertyName: 'documentSelfLink', matchValue: task.json.documentSelfLink } }, options: ['EXPAND_CONTENT'] },
        });
        return q.json.results?.documents?.[task.json.documentSelfLink]?.taskInfo?.stage as string | undefined;
      };
      assert.equal(await stored(), 'STARTED', 'the disk is still full: GET answered the outcome not recorded yet');
      assert.ok(mountTmpfs(mountPoint, 64, true), 'the tmpfs grows');
      // Recorded: at once, or by a retry once there is room (the host takes writes again by itself).
      await waitFor(async () => (await stored()) === 'FAILED', 'the outcome recorded', 60_000, 250);
    } finally {
      await blue.stop();
      await stopOnFullDisk(green);
    }
    // Recorded: a restart finds the task FAILED (it would run it again had it stayed STARTED).
    const again = await startHost(['--logLevel=info'], { sandbox: green.sandbox });
    try {
      const tasks = (await http('GET', `${again.uri}/management/migration-tasks?expand`)).json;
      const [doc] = Object.values(tasks.documents) as Array<{ taskInfo: { stage: string } }>;
      assert.equal(doc!.taskInfo.stage, 'FAILED');
      assert.doesNotMatch(again.output(), /resuming migration task/);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });

  it('loses no acknowledged write across a stop and a start on the full disk', async (t) => {
    const mountPoint = smallDisk(t);
    if (!mountPoint) return;
    const sandbox = join(mountPoint, 'sandbox');
    const h = await startHost(['--logLevel=info'], { sandbox });
    let acked: Map<string, Record<string, unknown>>;
    try {
      acked = await fill(h);
    } finally {
      await stopOnFullDisk(h);
    }
    // Still full: a start that would have to skip acknowledged writes refuses to start instead
    // (or fails sooner, on its first own write, with SQLite's message: never by skipping a write).
    const early = await startHost(['--logLevel=info'], { sandbox }).catch((err: Error) => err);
    if (early instanceof Error) assert.match(early.message, /host exited with 1: .*(Nothing was skipped: the log is kept|disk is full|no space left on device)/s);
    else await stopOnFullDisk(early);
    assert.ok(mountTmpfs(mountPoint, 64, true), 'the tmpfs grows');
    const again = await startHost(['--logLevel=info'], { sandbox });
    try {
      await assertHolds(again, acked);
      assert.equal((await http('POST', `${again.uri}/core/examples`, { name: 'room again' })).status, 200);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });
});
