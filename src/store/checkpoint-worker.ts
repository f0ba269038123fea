import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { lowerThisThread } from './thread-priority.js';

/**
 * The checkpointer thread: copies the WAL's committed pages into the database file, beside the
 * writer thread, so that the writer does not stop for it. A checkpoint with `synchronous=NORMAL`
 * syncs the WAL before copying and the database after; measured on this machine, a 16 MB
 * checkpoint took 40–47 ms of which 15–18 ms of CPU: the rest is waiting for the disk. Run by the
 * writer (SQLite's automatic checkpoint every 1,000 pages), the whole wait stopped every write
 * behind it; a 100,000-document migration spent about 0.2 s so.
 *
 * Every `intervalMs` after the writer applied a batch (the shared `applied` counter moved), this
 * thread runs a PASSIVE checkpoint on its own connection: it never blocks the writer or a reader,
 * and does nothing when another checkpoint runs. The writer keeps SQLite's automatic checkpoint at
 * a higher threshold (see WRITER_WAL_AUTOCHECKPOINT_PAGES in sqlite-store.ts): it bounds the WAL
 * even if this thread falls behind or stops, and by then finds nearly every page already copied.
 * A failed checkpoint here is left to the next one, or to the writer's. Nobody waits for this
 * thread (but a close, which stops it), so it runs at a background priority throughout (see
 * thread-priority.ts): lowering needs no privilege, and it is never raised.
 */
lowerThisThread(workerData.nice as number);
const db = new Database(join(workerData.dir as string, 'index.sqlite'));
db.pragma('synchronous = NORMAL');
db.pragma('cache_size = -2048');
const applied = new Int32Array(workerData.applied as SharedArrayBuffer);
let seen = Atomics.load(applied, 0);
const timer = setInterval(() => {
  const now = Atomics.load(applied, 0);
  if (now === seen) return;
  seen = now;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Left to the next checkpoint (see above).
  }
}, workerData.intervalMs as number);
parentPort!.on('message', (msg: { stop?: boolean }) => {
  if (!msg.stop) return;
  clearInterval(timer);
  db.close();
  parentPort!.postMessage({ stopped: true });
});
