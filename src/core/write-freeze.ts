import { fail } from './errors.js';
import type { Host } from './host.js';

export const WRITE_FREEZE_LINK = '/management/write-freeze';
const WRITE_FREEZE_KIND = 'krypton:WriteFreezeState';
/** Where a freeze is kept in the index's meta table, so that it outlives a restart. */
const META_KEY = 'writeFreeze';
/** How long a freeze waits, at most, for the writes admitted before it (`drainTimeoutMicros` changes it). */
export const DEFAULT_DRAIN_TIMEOUT_MICROS = 30_000_000;

interface Frozen {
  reason: string;
  sinceMicros: number;
}

/**
 * A host's write freeze, for the maintenance window of a side-by-side upgrade: while frozen, every
 * document write a client asks for (a factory POST, a PUT, PATCH or DELETE of a document, a
 * migration import) is refused with 503 `KRY_ERR_WRITES_FROZEN`, and the host keeps answering
 * reads and queries, so a last migration run (the final delta) and a verification see documents
 * that no longer change. Writes a node group makes on its own (replication of writes admitted
 * before the freeze, synchronization) and a host's internal bookkeeping are not refused.
 *
 * Freezing waits for the writes already admitted to finish and for the index to hold them, so
 * that what a query reads afterwards is final. The freeze is kept in the sandbox: a host
 * restarted during the window is still frozen.
 */
export class WriteFreeze {
  private state: Frozen | undefined;
  private inFlight = 0;
  private drainWaiters: Array<() => void> = [];
  /** Writes refused since the host started. */
  refused = 0;

  constructor(private readonly host: Host) {}

  /** Reads the freeze kept in the sandbox (at start). */
  load(): void {
    const raw = this.host.store.getMeta(META_KEY);
    if (!raw) return;
    try {
      const s = JSON.parse(raw) as Frozen;
      if (typeof s.sinceMicros === 'number') this.state = { reason: String(s.reason ?? ''), sinceMicros: s.sinceMicros };
    } catch {
      this.host.log.warn({ raw }, 'the write freeze kept in the sandbox is unreadable; the host takes writes');
    }
  }

  get frozen(): boolean {
    return this.state !== undefined;
  }

  /** Called once per document write a client asked for: refuses it while frozen, else counts it until `exit`. */
  admit(): void {
    if (this.state) this.refuse(this.state);
    this.inFlight++;
  }

  /** Throws the 503 of a write this host does not take while frozen (also one it would forward to the owner). */
  refuseWhileFrozen(): void {
    if (this.state) this.refuse(this.state);
  }

  private refuse(state: Frozen): never {
    this.refused++;
    const since = new Date(state.sinceMicros / 1000).toISOString();
    fail(
      'WRITES_FROZEN',
      `writes are frozen on this host since ${since}${state.reason ? ` (${state.reason})` : ''}; reads and queries are served. PUT ${WRITE_FREEZE_LINK} {"frozen": false} takes writes again`,
    );
  }

  /** An admitted write is done (committed or failed). */
  exit(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Freezes (or keeps frozen, with a new reason), then waits up to `drainTimeoutMicros` for the
   * writes admitted before to finish, and for the index to hold every acknowledged write.
   */
  async freeze(reason: string, drainTimeoutMicros: number): Promise<{ drained: boolean; drainedWrites: number; drainMicros: number }> {
    const started = this.host.clock.nowMicros();
    const next: Frozen = { reason, sinceMicros: this.state?.sinceMicros ?? started };
    await this.keep(next);
    this.state = next;
    const writesInFlight = this.inFlight;
    this.host.log.info({ reason, writesInFlight }, 'writes frozen');
    let drained = true;
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      drained = await new Promise<boolean>((resolve) => {
        this.drainWaiters.push(() => resolve(true));
        timer = setTimeout(() => resolve(false), Math.max(1, drainTimeoutMicros / 1000));
      });
      clearTimeout(timer);
    }
    // Every acknowledged write in the index: a query answered after this reply sees them all.
    await this.host.store.commits.settle();
    return { drained, drainedWrites: drained ? writesInFlight : writesInFlight - this.inFlight, drainMicros: this.host.clock.nowMicros() - started };
  }

  async unfreeze(): Promise<void> {
    if (!this.state) return;
    await this.keep(undefined);
    this.state = undefined;
    this.host.log.info('writes unfrozen');
  }

  private async keep(state: Frozen | undefined): Promise<void> {
    await this.host.store.submit([{ t: 'meta', key: META_KEY, value: state ? JSON.stringify(state) : '' }], 'applied');
  }

  describe(): Record<string, unknown> {
    return {
      frozen: this.state !== undefined,
      reason: this.state?.reason ?? '',
      sinceMicros: this.state?.sinceMicros ?? 0,
      writesInFlight: this.inFlight,
      refusedWriteCount: this.refused,
      documentKind: WRITE_FREEZE_KIND,
      documentSelfLink: WRITE_FREEZE_LINK,
      documentOwner: this.host.id,
    };
  }
}
