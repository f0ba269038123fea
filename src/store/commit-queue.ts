import type { WriteOp } from './write-ops.js';

/** Runs a batch of op groups; resolves with per-group error messages (undefined = committed). */
export type GroupExecutor = (groups: WriteOp[][]) => Promise<Array<string | undefined>>;

/**
 * Group commit: writes submitted while the previous batch is being committed share the next
 * transaction, so the per-commit cost (WAL frames of every touched page) is paid once per batch.
 * One batch is in flight at a time; the busier the host, the larger the batches. A writer's
 * promise settles only after its batch committed, so a 2xx still means durable.
 */
export class CommitQueue {
  private queue: Array<{ ops: WriteOp[]; resolve: () => void; reject: (e: Error) => void }> = [];
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private readonly listeners: Array<(ops: readonly WriteOp[]) => void> = [];

  constructor(
    private readonly execute: GroupExecutor,
    private readonly maxBatch = 1024,
  ) {}

  /** Called with each group's ops after it committed, before its writer is answered. */
  onCommitted(listener: (ops: readonly WriteOp[]) => void): void {
    this.listeners.push(listener);
  }

  private committed(ops: readonly WriteOp[]): void {
    for (const l of this.listeners) l(ops);
  }

  /** Queues ops to commit atomically; resolves once committed, rejects with the storage error. */
  submit(ops: WriteOp[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.inFlight || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /** Commits what is queued (waiting for the batch in flight first); resolves when all is committed. */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.inFlight = this.execute(batch.map((b) => b.ops)).then(
      (results) =>
        batch.forEach((b, i) => {
          if (results[i] !== undefined) return b.reject(new Error(results[i]));
          this.committed(b.ops);
          b.resolve();
        }),
      (err: unknown) => batch.forEach((b) => b.reject(err instanceof Error ? err : new Error(String(err)))),
    );
    await this.inFlight;
    this.inFlight = undefined;
    if (this.queue.length > 0) this.schedule();
  }

  /** Commits everything, including what arrives while flushing. */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight) await this.flush();
  }
}
