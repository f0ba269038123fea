/**
 * Serializes updates per document link (Xenon processes updates to one service one at a time,
 * FIFO). GETs do not take the lock: they read the last committed version.
 *
 * A held link maps to the holders waiting behind it, in arrival order (null: none); a free link is absent. Taking
 * a free link allocates no promise (tryAcquire): a migration import takes a thousand at a time.
 */
export class LinkLocks {
  private readonly waiting = new Map<string, Array<() => void> | null>();

  /** Takes `link` now if no one holds it (returns the release function); undefined if it is held. */
  tryAcquire(link: string): (() => void) | undefined {
    if (this.waiting.has(link)) return undefined;
    this.waiting.set(link, null);
    return this.releaser(link);
  }

  /** Waits for earlier holders of `link`; returns the release function. */
  acquire(link: string): Promise<() => void> {
    const now = this.tryAcquire(link);
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      let queue = this.waiting.get(link);
      if (!queue) {
        queue = [];
        this.waiting.set(link, queue);
      }
      queue.push(() => resolve(this.releaser(link)));
    });
  }

  async with<T>(link: string, fn: () => Promise<T> | T): Promise<T> {
    const release = this.tryAcquire(link) ?? (await this.acquire(link));
    try {
      return await fn();
    } finally {
      release();
    }
  }

  get size(): number {
    return this.waiting.size;
  }

  /** Hands the link to the next waiter, or frees it. A second call does nothing. */
  private releaser(link: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.waiting.get(link);
      const next = queue?.shift();
      if (next) next();
      else this.waiting.delete(link);
    };
  }
}
