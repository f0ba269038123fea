/**
 * Group commit: writes that arrive in the same event-loop turn share one SQLite transaction, so the
 * per-commit cost (WAL frames for every touched page) is paid once per batch instead of once per
 * request. Each writer's promise settles only after its batch committed, so a 2xx still means
 * durable. If a batch fails, its items are retried one by one so one bad write fails alone.
 */
export class CommitQueue {
  private queue: Array<{ apply: () => void; resolve: () => void; reject: (e: unknown) => void }> = [];
  private scheduled = false;

  constructor(
    private readonly runTransaction: (fn: () => void) => void,
    private readonly maxBatch = 512,
  ) {}

  /** Queues `apply` (synchronous index writes); resolves once committed. */
  submit(apply: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ apply, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    try {
      this.runTransaction(() => batch.forEach((item) => item.apply()));
      batch.forEach((item) => item.resolve());
    } catch {
      for (const item of batch) {
        try {
          this.runTransaction(item.apply);
          item.resolve();
        } catch (err) {
          item.reject(err);
        }
      }
    }
  }
}
