import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { waitFor } from './support/hosts.js';

describe('index snapshots', () => {
  let dir: string;
  let store: SqliteStore;
  const value = (reader: { get<T>(sql: string, p: readonly unknown[]): T | undefined }) => reader.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', ['probe'])?.value;
  const set = (v: string) => store.submit([{ t: 'meta', key: 'probe', value: v }]);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'krypton-snap-'));
    store = SqliteStore.open(dir, { snapshotMaxAgeMs: 300 });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sees what was committed when it was taken, not what is committed later', async () => {
    await set('before');
    const snap = await store.snapshot();
    assert.ok(snap.open);
    await set('after');
    assert.equal(value(snap), 'before');
    assert.equal(await store.read(() => value(store)), 'after');
    snap.release();
    assert.equal(snap.open, false);
    assert.throws(() => value(snap), /after release/);
    const next = await store.snapshot();
    assert.equal(value(next), 'after', 'a connection given back starts a fresh view');
    next.release();
  });

  it('opens at most 8 at once; beyond that a snapshot is closed and its reader reads the live index', async () => {
    const held = await Promise.all(Array.from({ length: 8 }, () => store.snapshot()));
    assert.ok(held.every((s) => s.open));
    const ninth = await store.snapshot();
    assert.equal(ninth.open, false);
    for (const s of held) s.release();
    const again = await store.snapshot();
    assert.ok(again.open, 'released connections are reused');
    again.release();
  });

  it('is given back once it is older than its age limit, so a stalled reader cannot hold the WAL', async () => {
    const snap = await store.snapshot();
    assert.ok(snap.open);
    await waitFor(async () => !snap.open, 'the snapshot to expire', 5_000, 20);
  });
});
