import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './sqlite-store.js';
import { decodeRecord } from './commit-log.js';
import { BatchApplier } from './write-ops.js';

/**
 * The writer thread: owns the index's write connection. The main thread parses requests, runs
 * handlers and serves reads on its own connection (WAL readers see every committed batch) while
 * this thread commits, so HTTP and JSON work overlap with SQLite work.
 */
const store = SqliteStore.open(workerData.dir as string, { writer: 'sync', walAutocheckpointPages: workerData.walAutocheckpointPages as number | undefined });
/** The last applied batch id, shared with the main thread (a read there may wait for a batch). */
const applied = new Int32Array(workerData.applied as SharedArrayBuffer);
const applier = new BatchApplier(store);
parentPort!.on('message', (msg: { id: number; records?: Array<string | string[]>; logSeqs?: number[]; close?: boolean }) => {
  if (msg.close) {
    void store.close().then(() => parentPort!.postMessage({ id: msg.id, results: [] }));
    return;
  }
  let results: Array<string | undefined>;
  try {
    results = applier.apply((msg.records ?? []).map(decodeRecord), msg.logSeqs ?? []);
  } catch (err) {
    // Unexpected (apply reports failures per group): nothing more may be applied after an acknowledged write.
    const message = (err as Error).message;
    if ((msg.logSeqs ?? []).some((s) => s > 0)) applier.halted ??= message;
    results = (msg.records ?? []).map(() => message);
  }
  Atomics.store(applied, 0, msg.id);
  Atomics.notify(applied, 0);
  parentPort!.postMessage({ id: msg.id, results });
});
parentPort!.postMessage({ id: 0, ready: true });
