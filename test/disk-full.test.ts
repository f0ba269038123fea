import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { http, startHost, tempDir, type RunningHost } from './support/hosts.js';

/** Mounts a tmpfs of `mb` MB at `dir` (root only); false where this machine does not allow it. */
function mountTmpfs(dir: string, mb: number, remount = false): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `${remount ? 'remount,' : ''}size=${mb}m`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Stops a host on the full disk: exit 0, or 1 when its last checkpoint did not fit, which it must say loses nothing. */
async function stopOnFullDisk(h: RunningHost): Promise<void> {
  if ((await h.stop()) !== 0) assert.match(h.output(), /nothing is lost[^\n]*"msg":"stopped with an error"/);
}

describe('a full disk', () => {
  it('refuses writes, loses no acknowledged one across stop and starts, and takes writes again once there is space', async (t) => {
    const mountPoint = tempDir();
    if (!mountTmpfs(mountPoint, 12)) {
      t.skip('this machine does not let the tests mount a tmpfs (root only)');
      return;
    }
    t.after(() => {
      try {
        execFileSync('umount', ['-l', mountPoint], { stdio: 'ignore' });
      } catch {
        /* already gone: nothing to clean */
      }
    });
    const sandbox = join(mountPoint, 'sandbox');
    const big = 'x'.repeat(20_000);
    const acked = new Map<string, Record<string, unknown>>();
    const h = await startHost(['--logLevel=info'], { sandbox });
    let refused: { status: number; json: Record<string, unknown> } | undefined;
    try {
      for (let i = 0; !refused; i++) {
        assert.ok(i < 1_000, '12 MB should be full long before 1,000 documents of 20 KB');
        const r = await http('POST', `${h.uri}/core/examples`, { name: `d-${i}`, counter: i, keyValues: { big } });
        if (r.status === 200) acked.set(r.json['documentSelfLink'] as string, r.json);
        else refused = r;
      }
      assert.equal(refused.status, 500);
      assert.equal(refused.json['documentKind'], 'com:vmware:xenon:common:ServiceErrorResponse');
      assert.match(String(refused.json['message']), /no space left on device|disk is full/);
      assert.ok(acked.size > 10);
      const [first] = acked.keys();
      assert.deepEqual((await http('GET', `${h.uri}${first}`)).json, acked.get(first!), 'reads go on');
    } finally {
      await stopOnFullDisk(h);
    }
    // Still full: a start that would have to skip acknowledged writes refuses to start instead.
    const early = await startHost(['--logLevel=info'], { sandbox }).catch((err: Error) => err);
    // (Or fails sooner, on its first own write, with SQLite's message: never by skipping a write.)
    if (early instanceof Error) assert.match(early.message, /host exited with 1: .*(Nothing was skipped: the log is kept|disk is full|no space left on device)/s);
    else await stopOnFullDisk(early);
    assert.ok(mountTmpfs(mountPoint, 64, true), 'the tmpfs grows');
    const again = await startHost(['--logLevel=info'], { sandbox });
    try {
      assert.equal((await http('GET', `${again.uri}/core/examples`)).json.documentCount, acked.size, 'every acknowledged document, and only those');
      for (const [link, doc] of acked) assert.deepEqual((await http('GET', `${again.uri}${link}`)).json, doc, `${link} is exactly as acknowledged`);
      assert.equal((await http('POST', `${again.uri}/core/examples`, { name: 'room again' })).status, 200);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });
});
