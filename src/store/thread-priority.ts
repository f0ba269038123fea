import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * The index writer thread's scheduling priority (Linux). While it only applies writes already
 * acknowledged from the commit log, nobody waits for it, and it runs in the background, as
 * databases run compaction: on a busy machine the requests' threads get the cores first and the
 * writer takes what they leave. Whenever someone waits for it (a reader settling, an import
 * awaiting its commit, a writer held back by the backlog), it runs at the host's own priority
 * again. The commit log's backlog bound (MAX_BACKLOG in commit-queue.ts) holds requests back if
 * the writer falls behind, so a starved writer cannot grow memory without bound.
 *
 * In the background it is first lowered by a nice value (one setpriority(2), raised back the same
 * way, at once). After IDLE_CLASS_AFTER_MS in the background it also takes the idle scheduling
 * class (SCHED_IDLE): then the kernel counts its core as free when it places a woken request
 * thread, and any other thread preempts it at once, which a nice value does not give (measured:
 * +12% POST requests/s over nice 19 alone). Node has no call for a thread's scheduling class, so
 * util-linux `chrt` sets it (a process spawned: about 2 ms of this thread's CPU, hence the delay,
 * which keeps it to one spawn per long write burst; without `chrt` the nice value alone is used).
 * When someone waits, the nice value is raised at once and `chrt` restores the normal class.
 *
 * A thread may lower its priority freely but raise it again only with CAP_SYS_NICE or an
 * RLIMIT_NICE that reaches the old value (the same for leaving SCHED_IDLE): without either, the
 * writer stays at the host's priority (never lowered, since it could not come back when someone
 * needs it).
 */
export class ThreadPriority {
  private lowered = false;
  /** The scheduling class wanted and the one set: idle (SCHED_IDLE) or not (SCHED_OTHER). */
  private wantIdle = false;
  private isIdle = false;
  /** The `chrt` changing the class, while one runs (one at a time; reconcile after it). */
  private changing = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** `chrt` is missing or failed: the thread never enters the idle class again (leaving it is still tried). */
  private noIdleClass = false;
  private stopped = false;

  private constructor(
    private readonly tid: number,
    private readonly normal: number,
    private readonly background: number,
    private readonly idleClassAfterMs: number,
  ) {}

  /**
   * For thread `tid` of this process, lowered by `nice` (1–19) while in the background; undefined
   * when priorities cannot be changed both ways here (not Linux, no privilege, nice 0).
   * `idleClassAfterMs`: how long in the background before SCHED_IDLE (undefined: never).
   */
  static of(tid: number, nice: number, idleClassAfterMs: number | undefined = IDLE_CLASS_AFTER_MS): ThreadPriority | undefined {
    if (nice <= 0 || process.platform !== 'linux') return undefined;
    let normal: number;
    try {
      normal = getPriority(tid);
    } catch {
      return undefined;
    }
    const background = lowerBy(normal, nice);
    if (background === normal || !mayRaiseTo(normal)) return undefined;
    return new ThreadPriority(tid, normal, background, idleClassAfterMs ?? Number.POSITIVE_INFINITY);
  }

  /** Background (lowered) or not. A failed change leaves the thread where it is. */
  set(inBackground: boolean): void {
    if (this.stopped || inBackground === this.lowered) return;
    try {
      setPriority(this.tid, inBackground ? this.background : this.normal);
      this.lowered = inBackground;
    } catch {
      // The thread is gone (the store closed) or the privilege was dropped: leave it where it is.
      return;
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (inBackground) {
      if (this.noIdleClass || !Number.isFinite(this.idleClassAfterMs)) return;
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        this.wantIdle = true;
        this.reconcile();
      }, this.idleClassAfterMs);
      this.idleTimer.unref();
    } else {
      this.wantIdle = false;
      this.reconcile();
    }
  }

  /** The thread is gone (its id may be another thread's from now on): change nothing more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.idleTimer);
  }

  /**
   * Runs `chrt` until the class set is the class wanted (one at a time). A failure ends the idle
   * class for good; a failure to leave it is tried again at the next raise, not in a loop.
   */
  private reconcile(): void {
    if (this.changing || this.stopped || this.wantIdle === this.isIdle || (this.wantIdle && this.noIdleClass)) return;
    const toIdle = this.wantIdle;
    this.changing = true;
    let ended = false;
    const end = (ok: boolean) => {
      if (ended) return;
      ended = true;
      this.changing = false;
      if (!ok) {
        this.noIdleClass = true;
        return;
      }
      this.isIdle = toIdle;
      this.reconcile();
    };
    const child = spawn('chrt', [toIdle ? '--idle' : '--other', '--pid', '0', String(this.tid)], { stdio: 'ignore' });
    child.once('error', () => end(false));
    child.once('exit', (code) => end(code === 0));
    child.unref();
  }
}

/** How long the writer stays in the background before it takes the idle scheduling class too. */
export const IDLE_CLASS_AFTER_MS = 1000;

/** Lowers the calling thread's priority by `nice` (Linux; no privilege needed) for good; nothing elsewhere or on failure. */
export function lowerThisThread(nice: number): void {
  const tid = nice > 0 && process.platform === 'linux' ? currentThreadId() : undefined;
  if (tid === undefined) return;
  try {
    setPriority(tid, lowerBy(getPriority(tid), nice));
  } catch {
    // Left at the host's priority.
  }
}

/** A nice value `by` lower than `nice`, within the lowest there is (19). */
function lowerBy(nice: number, by: number): number {
  return Math.min(19, nice + by);
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
