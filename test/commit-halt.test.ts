import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
// The built modules, as a host runs them: the writer thread and the commit log need the compiled
// writer-worker.js beside the store (from the sources, the store writes in this thread, unlogged).
import { CommitLog } from '../dist/store/commit-log.js';
import { SqliteStore } from '../dist/store/sqlite-store.js';
import type { WriteOp } from '../dist/store/write-ops.js';
import { tempDir, waitFor } from './support/hosts.js';

/** A logged write of a new document at `link`, `big` its size in bytes (about). */
const write = (link: string, big = 100): WriteOp => ({
  t: 'write',
  v: {
    link,
    factory: '/f',
    version: 0,
    kind: null,
    updateTime: 1,
    action: 'POST',
    expiration: 0,
    owner: null,
    authPrincipal: null,
    json: JSON.stringify({ documentSelfLink: link, big: 'x'.repeat(big) }),
  },
  knownNew: true,
});

describe('a halt of the index writer', () => {
  it('keeps in the commit log every acknowledged write the index did not take, whichever batch is answered last', async () => {
    const dir = tempDir();
    // The writer thread and the commit log of a real sandbox; logged writes wait to be flushed.
    const store = SqliteStore.open(dir, { flushDelayMs: 60_000 });
    try {
      // Six acknowledged writes of 6 MB: each its own log segment (4 MB), two to a batch (16 MB).
      // The second repeats the first's link and version, which the index refuses: a halt.
      const links = ['/f/a', '/f/a', '/f/b', '/f/c', '/f/d', '/f/e'];
      for (const link of links) assert.equal(store.submit([write(link, 6 * 1024 * 1024)], 'logged'), undefined, 'acknowledged once logged');
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

  it('ends once the index takes the logged writes again, though a write that is not logged was numbered after them', async () => {
    const dir = tempDir();
    const store = SqliteStore.open(dir, { flushDelayMs: 60_000 });
    // Another connection holds the index's write lock: the writer's batch fails after its 5 s busy timeout.
    const other = new Database(join(dir, 'index.sqlite'));
    other.pragma('busy_timeout = 0');
    other.exec('BEGIN IMMEDIATE');
    try {
      assert.equal(store.submit([write('/f/one')], 'logged'), undefined);
      const purge = store.purgeExpired(1); // not logged (an expiry purge): it takes the next number
      purge.catch(() => undefined);
      store.sync();
      await waitFor(async () => store.writesHalted, 'the halt', 30_000);
      other.exec('ROLLBACK');
      assert.equal(await store.resumeWrites(), 1, 'the one logged write applied from the log');
      assert.equal(store.writesHalted, false);
      assert.equal(store.submit([write('/f/two')], 'logged'), undefined, 'writes are taken again');
      store.sync();
      const links = store.all<{ link: string }>('SELECT link FROM docs ORDER BY link', []).map((r) => r.link);
      assert.deepEqual(links, ['/f/one', '/f/two']);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close().catch(() => undefined);
    }
  });
});
