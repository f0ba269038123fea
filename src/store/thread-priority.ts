import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The index writer thread's scheduling priority (Linux). While it only applies writes already
 * acknowledged from the commit log, nobody waits for it, and it runs at a background priority (a
 * nice value), as databases run compaction: on a busy machine the requests' threads get the cores
 * first and the writer takes what they leave. Whenever someone waits for it (a reader settling, an
 * import awaiting its commit, a writer held back by the backlog), it runs at the host's own
 * priority again. The commit log's backlog bound (MAX_BACKLOG in commit-queue.ts) holds requests
 * back if the writer falls behind, so a starved writer cannot grow memory without bound.
 *
 * A thread may lower its priority freely but raise it again only with CAP_SYS_NICE or an
 * RLIMIT_NICE that reaches the old value: without either, the writer stays at the host's priority
 * (never lowered, since it could not come back when someone needs it).
 */
export class ThreadPriority {
  private lowered = false;

  private constructor(
    private readonly tid: number,
    private readonly normal: number,
    private readonly background: number,
  ) {}

  /**
   * For thread `tid` of this process, lowered by `nice` (1–19) while in the background; undefined
   * when priorities cannot be changed both ways here (not Linux, no privilege, nice 0).
   */
  static of(tid: number, nice: number): ThreadPriority | undefined {
    if (nice <= 0 || process.platform !== 'linux') return undefined;
    let normal: number;
    try {
      normal = getPriority(tid);
    } catch {
      return undefined;
    }
    const background = Math.min(19, normal + nice);
    if (background === normal || !mayRaiseTo(normal)) return undefined;
    return new ThreadPriority(tid, normal, background);
  }

  /** Background (lowered) or not; a failed change turns priorities off for good (the thread stays at the host's). */
  set(inBackground: boolean): void {
    if (inBackground === this.lowered) return;
    try {
      setPriority(this.tid, inBackground ? this.background : this.normal);
      this.lowered = inBackground;
    } catch {
      // The thread is gone (the store closed) or the privilege was dropped: leave it where it is.
    }
  }
}

/** Lowers the calling thread's priority by `nice` (Linux; no privilege needed) for good; nothing elsewhere or on failure. */
export function lowerThisThread(nice: number): void {
  const tid = nice > 0 && process.platform === 'linux' ? currentThreadId() : undefined;
  if (tid === undefined) return;
  try {
    setPriority(tid, Math.min(19, getPriority(tid) + nice));
  } catch {
    // Left at the host's priority.
  }
}

/** The calling thread's kernel id (Linux, from /proc/thread-self: "<pid>/task/<tid>"); undefined elsewhere. */
export function currentThreadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isSafeInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether this process may set a thread's nice value back down to `nice`: CAP_SYS_NICE, or RLIMIT_NICE (it allows down to 20 - limit). */
function mayRaiseTo(nice: number): boolean {
  try {
    const capabilities = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const CAP_SYS_NICE = 23n;
    if (capabilities && (BigInt(`0x${capabilities}`) >> CAP_SYS_NICE) & 1n) return true;
    const limit = /^Max nice priority\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (limit === 'unlimited') return true;
    return limit !== undefined && 20 - Number(limit) <= nice;
  } catch {
    return false;
  }
}
