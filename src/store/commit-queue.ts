import { kryptonError } from '../core/errors.js';
import { encodeRecord, type CommitLog } from './commit-log.js';
import type { StoredVersion } from './sqlite-store.js';
import { opLink, type WriteOp } from './write-ops.js';

/**
 * Logged writes wait at most this long for the next batch (more time: larger, cheaper batches; a
 * reader never waits for it, see sync). Measured under the seeds' `ab -c 5` POST load: 50 ms batches
 * cost the writer thread 42–43 µs a request, 10 ms ones 56–57 (200 ms: no better than 50).
 */
const DEFAULT_FLUSH_DELAY_MS = 50;
/** Ops per batch, about (a batch is at least one submitted group). */
const MAX_BATCH_OPS = 10_000;
/**
 * Text of a batch's documents, at most (a batch takes at least one write): the writer thread holds
 * a batch about three times over while it applies it (message, documents, index fields), within the
 * heap it is given for one document as large as the body limit (see writerHeapMb). Without it, a
 * few dozen 50 MB documents posted at once were one batch and the writer ran out of memory, which
 * aborted the process. Batches of small documents never come near it (2,048 of 5 KB are 10 MB).
 */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Logged writes not yet applied, at most: above it a writer is answered once the backlog shrinks. */
const MAX_BACKLOG = 20_000;
/**
 * Batches handed to the writer at once: while it applies one, the next is already in its inbox, so
 * it never idles waiting for this thread to notice the answer (which waits for the event loop).
 */
const MAX_IN_FLIGHT = 2;

/**
 * Where batches are applied: the writer thread (or this thread). `post` starts applying one batch
 * (all groups in one transaction); its per-group results come back through CommitQueue.onApplied.
 */
export interface WriterBackend {
  /**
   * `logSeqs[k]`: the commit-log sequence number of group k, 0 when it is not logged (see
   * BatchApplier). A logged group carries its log record's text (`record`), which a writer thread
   * is sent instead of the ops.
   */
  post(id: number, groups: readonly PostedGroup[], logSeqs: number[]): void;
  /** Blocks this thread until batch `id` is applied; false if the writer is gone. */
  waitApplied(id: number): boolean;
  /**
   * After a halt: the writer applies the commit log's records the index lacks. Resolves with the
   * last sequence number applied and how many records that was; rejects if the index still cannot
   * take them. Absent: no log.
   */
  resume?(): Promise<{ last: number; writes: number }>;
  /**
   * Told whether anyone waits for the writer (see CommitQueue.updatePriority): false while it only
   * applies writes already acknowledged, so it may run at a background priority. Absent: no priorities.
   */
  prioritize?(someoneWaits: boolean): void;
}

/**
 * 'applied': the promise settles once the ops are committed to the index (and rejects with the
 * storage error). 'logged': once they are in the commit log (see commit-log.ts); the index catches
 * up within milliseconds and reads see them at once (overlay, sync). 'import': as 'applied', but
 * readers do not wait for it (sync): the writer answers nobody before the commit (a batched
 * migration import), so no client can expect to read it earlier. 'housekeeping': as 'applied', but
 * its submitter is the host's own periodic work (the expiry purge), which does not raise the
 * writer's priority (see updatePriority): a reader waiting for it does.
 */
export type Durability = 'logged' | 'applied' | 'import' | 'housekeeping';

export interface PostedGroup {
  ops: WriteOp[];
  record?: string | undefined;
}

interface Entry extends PostedGroup {
  /** Readers wait for it (sync): every entry but an 'import'. */
  awaited: boolean;
  /** Its submitter awaits the commit and the writer runs at the host's priority meanwhile: 'applied' and 'import'. */
  urgent?: boolean;
  seq: number;
  logged: boolean;
  /** The length of its documents' text (see MAX_BATCH_BYTES). */
  bytes: number;
  resolve?: () => void;
  reject?: (e: Error) => void;
}

interface Batch {
  id: number;
  entries: Entry[];
  lastSeq: number;
  released: boolean;
}

/**
 * Group commit: writes queued while a batch is being applied share the next transaction, so the
 * per-commit cost (WAL frames of every touched page) is paid once per batch. At most two batches
 * are in flight, except when a reader needs everything applied now (sync).
 *
 * With a commit log, request writes are 'logged': appended and answered at once, then applied in
 * batches every few milliseconds. Until then the newest version of each such link is served from
 * an in-memory overlay (getLatest), and every other read first waits for the index (sync), so a
 * client always reads its own acknowledged writes.
 */
export class CommitQueue {
  private queue: Entry[] = [];
  private readonly posted: Batch[] = [];
  private nextBatchId = 1;
  private timer: NodeJS.Timeout | undefined;
  private immediate = false;
  private backlog = 0;
  private backlogWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  /** settle() callers, each waiting for the answer to batch `id` (ids never decrease: batches are posted in order). */
  private appliedWaiters: Array<{ id: number; resolve: () => void }> = [];
  /** Inside settledRead: reads do not wait (see there). */
  private settledReading = false;
  private failure: Error | undefined;
  /**
   * The first acknowledged write the index did not apply (it and every later one are in the log
   * only, until resume or the next start); undefined while every one was applied.
   */
  private firstNotApplied: number | undefined;
  private resuming = false;
  /** Entries queued or posted whose submitter awaits the commit urgently (Entry.urgent). */
  private commitWaiters = 0;
  /** Inside a blocking sync(). */
  private syncing = false;
  /** What the backend was last told (see updatePriority); undefined: nothing yet. */
  private urgent: boolean | undefined;
  /** Entries readers wait for (see Entry.awaited), queued or posted, not yet answered by the writer. */
  private awaited = 0;
  /** Newest logged-but-unapplied version per link (null: purged). */
  private readonly overlay = new Map<string, { seq: number; v: StoredVersion | null }>();
  private readonly listeners: Array<(ops: readonly WriteOp[]) => void> = [];
  /** Called once per batch with the logged (already acknowledged) writes it could not apply: the first one's error, and their ops. */
  onApplyError: (message: string, ops: readonly WriteOp[]) => void = () => undefined;

  constructor(
    private readonly backend: WriterBackend,
    private readonly log: CommitLog | undefined,
    private seq: number,
    private readonly flushDelayMs = DEFAULT_FLUSH_DELAY_MS,
    private readonly maxBatch = 2048,
  ) {
    // Nobody waits yet: the writer starts in the background. Later changes come with waiters only.
    this.updatePriority();
  }

  /** Called with each group's ops once durable (logged or committed), before its writer is answered. */
  onCommitted(listener: (ops: readonly WriteOp[]) => void): void {
    this.listeners.push(listener);
  }

  private committed(ops: readonly WriteOp[]): void {
    for (const l of this.listeners) l(ops);
  }

  /**
   * Queues ops to commit atomically (see Durability). Rejects with the storage error. A logged write
   * is durable when this returns undefined (appended, no backlog to wait for): a request's write
   * then needs no promise at all.
   */
  submit(ops: WriteOp[], durability: Durability = 'applied'): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (durability === 'logged' && this.log) {
      const seq = this.seq + 1;
      const record = encodeRecord(seq, ops);
      try {
        this.log.append(seq, record);
      } catch (cause) {
        return Promise.reject(kryptonError('STORAGE', `commit log append failed: ${(cause as Error).message}`, { cause }));
      }
      this.seq = seq;
      this.remember(seq, ops);
      this.queue.push({ ops, record, seq, logged: true, awaited: true, bytes: record.length });
      this.backlog++;
      this.awaited++;
      this.committed(ops);
      this.schedule(this.queue.length >= this.maxBatch);
      // A logged write adds no waiter (its writer is answered now): the priority changes only if it is held.
      if (this.backlog <= MAX_BACKLOG) return undefined;
      const held = new Promise<void>((resolve) => this.backlogWaiters.push(resolve));
      this.updatePriority();
      return held;
    }
    return new Promise((resolve, reject) => {
      const awaited = durability !== 'import';
      if (awaited) this.awaited++;
      const urgent = durability !== 'housekeeping';
      if (urgent) this.commitWaiters++;
      this.queue.push({ ops, seq: ++this.seq, logged: false, awaited, urgent, resolve, reject, bytes: documentBytes(ops) });
      this.schedule(true);
      this.updatePriority();
    });
  }

  /** The newest version of `link` among logged writes not yet in the index: undefined = ask the index. */
  pendingLatest(link: string): StoredVersion | null | undefined {
    if (this.overlay.size === 0) return undefined;
    return this.overlay.get(link)?.v;
  }

  private remember(seq: number, ops: readonly WriteOp[]): void {
    for (const op of ops) {
      if (op.t === 'purge') this.overlay.set(op.link, { seq, v: null });
      else if (op.t === 'write') {
        const v = op.v;
        this.overlay.set(v.link, {
          seq,
          v: { id: 0, link: v.link, factory: v.factory, version: v.version, kind: v.kind, updateTime: v.updateTime, action: v.action, expiration: v.expiration, owner: v.owner, json: v.json },
        });
      }
    }
  }

  private schedule(urgent: boolean): void {
    if (urgent) {
      if (this.immediate) return;
      this.immediate = true;
      setImmediate(() => {
        this.immediate = false;
        this.flush(false);
      });
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush(false);
    }, this.flushDelayMs);
    this.timer.unref(); // close() drains what is queued
  }

  /** Posts queued ops as a batch; unless forced, only while fewer than MAX_IN_FLIGHT are posted (an answer posts the next). */
  private flush(force: boolean, upTo = this.queue.length): void {
    if (this.failure || this.queue.length === 0 || (!force && this.posted.length >= MAX_IN_FLIGHT)) return;
    // A forced flush (sync) posts the first `upTo` entries, in as many batches as their size needs.
    let left = Math.min(upTo, this.queue.length);
    do {
      const take = this.batchLength(force, left);
      this.post(this.queue.splice(0, take));
      left -= take;
    } while (force && left > 0 && !this.failure);
  }

  /**
   * How many of the first `left` queued entries the next batch takes: at least one, and at most
   * MAX_BATCH_BYTES of text; unless forced, also at most maxBatch writes and about MAX_BATCH_OPS ops.
   */
  private batchLength(force: boolean, left: number): number {
    let take = 0;
    let ops = 0;
    let bytes = 0;
    for (; take < left; take++) {
      const e = this.queue[take]!;
      if (take > 0 && (bytes + e.bytes > MAX_BATCH_BYTES || (!force && (take >= this.maxBatch || ops >= MAX_BATCH_OPS)))) break;
      ops += e.ops.length;
      bytes += e.bytes;
    }
    return take;
  }

  private post(entries: Entry[]): void {
    const lastSeq = entries[entries.length - 1]!.seq;
    const logSeqs = entries.map((e) => (e.logged ? e.seq : 0));
    const batch: Batch = { id: this.nextBatchId++, entries, lastSeq, released: false };
    this.posted.push(batch);
    try {
      this.backend.post(batch.id, entries, logSeqs);
      // Sent: the text is not needed again (the overlay and release work from the ops).
      for (const e of entries) e.record = undefined;
    } catch (err) {
      this.onApplied(batch.id, err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The writer's answer for batch `id`: per-group error messages, or an error for the whole batch. */
  onApplied(id: number, results: ReadonlyArray<string | undefined> | Error): void {
    const i = this.posted.findIndex((b) => b.id === id);
    if (i < 0) return;
    const batch = this.posted.splice(i, 1)[0]!;
    const errorOf = (k: number) => (results instanceof Error ? results.message : results[k]);
    // The first acknowledged write the index did not take: it and every later one stay in the log.
    const lost = batch.entries.find((e, k) => e.logged && errorOf(k) !== undefined);
    this.release(batch, lost?.seq);
    if (lost) {
      this.firstNotApplied = Math.min(this.firstNotApplied ?? lost.seq, lost.seq);
      this.halt(errorOf(batch.entries.indexOf(lost))!);
    }
    // Acknowledged writes the index did not take are reported once for the batch (a full disk fails them all).
    let notApplied: { error: string; ops: WriteOp[] } | undefined;
    for (let k = 0; k < batch.entries.length; k++) {
      const e = batch.entries[k]!;
      const error = errorOf(k);
      if (e.logged) {
        if (error === undefined) continue;
        notApplied ??= { error, ops: [] };
        notApplied.ops.push(...e.ops);
      } else if (error !== undefined) e.reject!(new Error(error));
      else {
        this.committed(e.ops);
        e.resolve!();
      }
    }
    if (notApplied) this.onApplyError(notApplied.error, notApplied.ops);
    this.wakeSettled(id);
    // Logged writes wait for the timer (larger batches); anyone awaiting a commit goes now.
    if (this.queue.length > 0) this.schedule(this.queue.length >= this.maxBatch || this.queue.some((e) => !e.logged));
    else if (this.posted.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    this.updatePriority();
  }

  /**
   * Tells the backend whether anyone waits for the writer: a submitter awaiting its commit (an
   * import), a reader settling, a writer held by the backlog, a drain, a blocking sync. Nobody does
   * while it applies only writes already acknowledged from the commit log: that work can run when
   * the machine has a core to spare, after the requests (see store/thread-priority.ts). Called at
   * each change; the backend is told only when the answer changes.
   */
  private updatePriority(): void {
    if (!this.backend.prioritize) return;
    const urgent = this.commitWaiters > 0 || this.syncing || this.appliedWaiters.length > 0 || this.backlogWaiters.length > 0 || this.idleWaiters.length > 0;
    if (urgent === this.urgent) return;
    this.urgent = urgent;
    this.backend.prioritize(urgent);
  }

  /**
   * Everything of a batch that is applied leaves the overlay, the backlog and the log. Logged writes
   * from `lostFrom` on were not applied: they stay in the overlay (reads keep seeing them) and in the log.
   */
  private release(batch: Batch, lostFrom?: number): void {
    if (batch.released) return;
    batch.released = true;
    // Applied: up to the first write the index did not take, whichever batch held it. A later batch
    // is answered too (not applied) and its own first write is not that one: releasing the log up
    // to it deleted the segments of the earlier batch's unapplied writes, acknowledged and then lost.
    const applied = Math.min(batch.lastSeq, (lostFrom ?? Number.POSITIVE_INFINITY) - 1, (this.firstNotApplied ?? Number.POSITIVE_INFINITY) - 1);
    for (const e of batch.entries) {
      if (e.awaited) this.awaited--;
      if (!e.logged) {
        if (e.urgent) this.commitWaiters--;
        continue;
      }
      this.backlog--;
      if (e.seq > applied) continue;
      for (const op of e.ops) {
        const link = opLink(op);
        if (link === undefined) continue;
        // Only a version the index holds leaves the overlay (not a later one of the same link).
        const o = this.overlay.get(link);
        if (o && o.seq <= applied) this.overlay.delete(link);
      }
    }
    this.log?.release(applied);
    if (this.backlog <= MAX_BACKLOG && this.backlogWaiters.length > 0) {
      const waiters = this.backlogWaiters;
      this.backlogWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Blocks until every acknowledged write is in the index: reads other than getLatest call this
   * first, so queries, listings and scans see every write a client was answered for. Batched
   * imports ('import') are answered only after their commit, so a reader does not wait for them
   * (a query on a migration's destination is not held up by its import); `all` waits for them too
   * (writes on the main connection, which must follow every queued write). Free when nothing is pending.
   */
  sync(all = false): void {
    if (this.settledReading && !all) return;
    const id = this.lastAwaitedBatch(all);
    if (id === undefined) return;
    this.syncing = true;
    this.updatePriority();
    let applied: boolean;
    try {
      applied = this.backend.waitApplied(id);
    } finally {
      this.syncing = false;
    }
    // The answers arrive by message, so onApplied (which tells the backend again) runs next.
    if (!applied) {
      throw kryptonError('STORAGE', 'the index writer stopped before applying acknowledged writes; they are in the commit log and are applied at the next start');
    }
    // The batches are released when their answers arrive (onApplied): only those tell what failed.
  }

  /**
   * sync() without blocking the thread: resolves once every write readers must see, queued or
   * posted now, is applied (or the writer failed). A read handler awaits it before reading, so the
   * event loop keeps serving while the writer catches up, then reads inside settledRead.
   */
  settle(): Promise<void> {
    const id = this.lastAwaitedBatch(false);
    if (id === undefined) return Promise.resolve();
    const settled = new Promise<void>((resolve) => this.appliedWaiters.push({ id, resolve }));
    this.updatePriority();
    return settled;
  }

  /**
   * Runs `fn`, synchronous reads, without waiting for the index: call it right after awaiting
   * settle(), in the same turn. Every write acknowledged before the reader arrived is then in the
   * index; writes acknowledged while it waited are concurrent with it, and waiting for them (under
   * a steady write load there always are some) would block the thread again.
   */
  settledRead<T>(fn: () => T): T {
    this.settledReading = true;
    try {
      return fn();
    } finally {
      this.settledReading = false;
    }
  }

  /** Posts what readers wait for (all: everything queued) and returns the batch to wait for; undefined: nothing. */
  private lastAwaitedBatch(all: boolean): number | undefined {
    if (this.failure || (this.queue.length === 0 && this.posted.length === 0)) return undefined;
    if (!all && this.awaited === 0) return undefined;
    let upTo = this.queue.length;
    if (!all) while (upTo > 0 && !this.queue[upTo - 1]!.awaited) upTo--;
    if (upTo > 0) this.flush(true, upTo);
    let target = this.posted.length - 1;
    if (!all) while (target >= 0 && !this.posted[target]!.entries.some((e) => e.awaited)) target--;
    return target < 0 ? undefined : this.posted[target]!.id;
  }

  private wakeSettled(appliedId: number): void {
    const waiters = this.appliedWaiters;
    while (waiters.length > 0 && waiters[0]!.id <= appliedId) waiters.shift()!.resolve();
  }

  /**
   * An acknowledged write could not be applied (disk full, I/O error, the index locked by another
   * process): stop writing. The writer applies nothing after it, it and every later acknowledged
   * write stay in the commit log, and the next start replays them. Until then writes are refused
   * (reads keep seeing acknowledged writes through the overlay).
   */
  private halt(cause: string): void {
    if (this.failure) return;
    this.fail(
      kryptonError(
        'STORAGE',
        `the index could not apply an acknowledged write (${cause}); writes are refused until it does: the host tries again every few seconds, and a restart applies it from the commit log too`,
      ),
    );
  }

  /** True while writes are refused after an acknowledged write was not applied (resume may end it). */
  get isHalted(): boolean {
    return this.firstNotApplied !== undefined && this.failure !== undefined;
  }

  /**
   * Ends a halt if the index now takes the acknowledged writes it lacked (space freed, the lock
   * released): the writer applies them from the commit log, in order; then they leave the queue,
   * the overlay and the log, and writes are taken again. Returns how many were applied; undefined
   * when there is nothing to resume (no halt, or a resume already running). Rejects with the reason
   * while the index still refuses them (the halt goes on; nothing was skipped).
   */
  async resume(): Promise<number | undefined> {
    if (!this.isHalted || this.resuming || !this.backend.resume) return undefined;
    this.resuming = true;
    let last: number;
    let writes: number;
    try {
      ({ last, writes } = await this.backend.resume());
    } finally {
      this.resuming = false;
    }
    // Writes were refused since the halt, so the log ends where it is; anything short of it stays
    // halted. (Not at this.seq: a write that is not logged, such as an expiry purge, takes a number too.)
    const logged = this.log?.lastSeq ?? this.seq;
    if (last < logged) throw new Error(`the index holds the commit log up to #${last} of #${logged} (${this.log?.describe()})`);
    if (this.posted.length > 0) throw new Error(`${this.posted.length} batches are still with the index writer`);
    for (const e of this.queue) {
      if (e.awaited) this.awaited--;
      this.backlog--;
    }
    this.queue = [];
    this.overlay.clear();
    this.log?.release(last);
    this.firstNotApplied = undefined;
    this.failure = undefined;
    return writes;
  }

  /** The writer is gone or halted: queued and in-flight writes fail, later ones are refused. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    // Queued logged writes stay queued: acknowledged, in the overlay and in the log (replayed at start).
    const queued = this.queue;
    this.queue = queued.filter((e) => e.logged);
    for (const e of queued) {
      if (e.logged) continue;
      if (e.awaited) this.awaited--;
      if (e.urgent) this.commitWaiters--;
      e.reject!(err);
    }
    for (const b of [...this.posted]) this.onApplied(b.id, err);
    this.wakeSettled(Number.MAX_SAFE_INTEGER);
    const waiters = [...this.idleWaiters, ...this.backlogWaiters];
    this.idleWaiters = [];
    this.backlogWaiters = [];
    for (const w of waiters) w();
    this.updatePriority();
  }

  /** Applies everything, including what arrives meanwhile. */
  async drain(): Promise<void> {
    while (!this.failure && (this.queue.length > 0 || this.posted.length > 0)) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      this.updatePriority();
      this.flush(false);
      await idle;
    }
  }

  /** True when no acknowledged write is waiting for the index (false once one was lost: the log must be kept). */
  get idle(): boolean {
    return this.queue.length === 0 && this.posted.length === 0 && this.firstNotApplied === undefined;
  }
}

/** The length of the documents' text that ops write (a batch's size; see MAX_BATCH_BYTES). */
function documentBytes(ops: readonly WriteOp[]): number {
  let n = 0;
  for (const op of ops) if (op.t === 'write') n += op.v.json.length;
  return n;
}
