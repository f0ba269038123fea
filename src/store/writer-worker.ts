import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './sqlite-store.js';
import { CommitLog, decodeRecord } from './commit-log.js';
import { BatchApplier, LOG_SEQ_KEY } from './write-ops.js';
import { currentThreadId } from './thread-priority.js';

/**
 * The writer thread: owns the index's write connection. The main thread parses requests, runs
 * handlers and serves reads on its own connection (WAL readers see every committed batch) while
 * this thread commits, so HTTP and JSON work overlap with SQLite work.
 */
const store = SqliteStore.open(workerData.dir as string, { writer: 'sync', walAutocheckpointPages: workerData.walAutocheckpointPages as number | undefined });
/** The last applied batch id, shared with the main thread (a read there may wait for a batch). */
const applied = new Int32Array(workerData.applied as SharedArrayBuffer);
const applier = new BatchApplier(store);
// The main thread sets this thread's priority (see thread-priority.ts): it needs the kernel's id for it.
parentPort!.postMessage({ tid: currentThreadId() });
/**
 * After a halt (see BatchApplier): applies the commit log's records the index lacks, in order, each
 * chunk with its log position. Returns the last sequence number applied and how many records that
 * was; throws, halted again, if the index still cannot take one.
 */
function catchUp(logDir: string): { last: number; writes: number } {
  applier.halted = undefined;
  let last = Number(store.getMeta(LOG_SEQ_KEY) ?? 0);
  let writes = 0;
  for (const records of CommitLog.chunks(logDir, last)) {
    const failed = applier
      .apply(
        records.map((r) => r.o),
        records.map((r) => r.s),
      )
      .find((e) => e !== undefined);
    if (failed !== undefined) throw new Error(failed);
    last = records[records.length - 1]!.s;
    writes += records.length;
  }
  return { last, writes };
}

parentPort!.on('message', (msg: { id: number; records?: Array<string | string[]>; logSeqs?: number[]; close?: boolean; resume?: string }) => {
  if (msg.resume !== undefined) {
    try {
      parentPort!.postMessage({ id: msg.id, resumed: catchUp(msg.resume) });
    } catch (err) {
      parentPort!.postMessage({ id: msg.id, resumeError: (err as Error).message });
    }
    return;
  }
  if (msg.close) {
    // A failed close (its last checkpoint on a full disk) is answered too: the main thread's own
    // close meets the same failure and reports it.
    const answer = () => parentPort!.postMessage({ id: msg.id, results: [] });
    store.close().then(answer, answer);
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
