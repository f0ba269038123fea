import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
// The built modules, as a host runs them: the writer thread and the commit log need the compiled
// writer-worker.js beside the store (from the sources, the store writes in this thread, unlogged).
import { CommitLog } from '../dist/store/commit-log.js';
import { SqliteStore } from '../dist/store/sqlite-store.js';
import type { WriteOp } from '../dist/store/write-ops.js';
import { tempDir, waitFor } from './support/hosts.js';

describe('a halt of the index writer', () => {
  it('keeps in the commit log every acknowledged write the index did not take, whichever batch is answered last', async () => {
    const dir = tempDir();
    // The writer thread and the commit log of a real sandbox; logged writes wait to be flushed.
    const store = SqliteStore.open(dir, { flushDelayMs: 60_000 });
    const big = 'x'.repeat(6 * 1024 * 1024);
    const write = (link: string): WriteOp => ({
      t: 'write',
      v: { link, factory: '/f', version: 0, kind: null, updateTime: 1, action: 'POST', expiration: 0, owner: null, authPrincipal: null, json: JSON.stringify({ documentSelfLink: link, big }) },
      knownNew: true,
    });
    try {
      // Six acknowledged writes of 6 MB: each its own log segment (4 MB), two to a batch (16 MB).
      // The second repeats the first's link and version, which the index refuses: a halt.
      const links = ['/f/a', '/f/a', '/f/b', '/f/c', '/f/d', '/f/e'];
      for (const link of links) assert.equal(store.submit([write(link)], 'logged'), undefined, 'acknowledged once logged');
      // A read's sync flushes them all: three batches at once, answered in order.
      store.sync();
      await waitFor(async () => store.writesHalted, 'the halt');
      await new Promise((r) => setTimeout(r, 200)); // the answers to the later batches
      const logged = [...CommitLog.records(join(dir, 'commit-log'), 0)].map((r) => r.s);
      assert.deepEqual(logged, [2, 3, 4, 5, 6], 'every write from the refused one on is still in the log');
    } finally {
      await store.close().catch(() => undefined);
    }
  });
});
