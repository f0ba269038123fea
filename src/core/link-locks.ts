/**
 * Serializes updates per document link (Xenon processes updates to one service one at a time,
 * FIFO). GETs do not take the lock: they read the last committed version.
 */
export class LinkLocks {
  private readonly tails = new Map<string, Promise<void>>();

  /** Waits for earlier holders of `link`; returns the release function. */
  async acquire(link: string): Promise<() => void> {
    const previous = this.tails.get(link);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous ? previous.then(() => mine) : mine;
    this.tails.set(link, tail);
    if (previous) await previous;
    return () => {
      release();
      if (this.tails.get(link) === tail) this.tails.delete(link);
    };
  }

  async with<T>(link: string, fn: () => Promise<T> | T): Promise<T> {
    const release = await this.acquire(link);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  get size(): number {
    return this.tails.size;
  }
}
