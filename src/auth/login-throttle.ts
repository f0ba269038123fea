import { createHash } from 'node:crypto';
import { useRecent } from '../core/recently-used.js';

export interface ThrottleSettings {
  /** Failures per email before attempts are spaced out. */
  freeFailures: number;
  /** Failures per client address before attempts are spaced out (several users share an address). */
  freeFailuresPerAddress: number;
  /** Spacing after the free failures: base · 2^(failures − free), at most maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** An attempt that would have to wait longer than this is refused at once with 429. */
  maxWaitMs: number;
  /** A key with no attempt for this long starts over. */
  forgetAfterMs: number;
}

export const DEFAULT_THROTTLE: ThrottleSettings = Object.freeze({
  freeFailures: 3,
  freeFailuresPerAddress: 20,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxWaitMs: 30_000,
  forgetAfterMs: 15 * 60_000,
});

interface Entry {
  failures: number;
  /** Attempts reserved and not yet settled: they count as failures until they succeed (a burst of parallel guesses queues too). */
  pending: number;
  /** When the last attempt was (or is scheduled to be) made. */
  last: number;
  free: number;
}

const MAX_KEYS = 50_000;
/** Emails longer than this (none is valid: RFC 5321 allows 254) are kept as a digest, so a key stays small. */
const MAX_EMAIL_KEY = 320;

/** The email's key: the email itself, lower-cased, or a digest of a long one (it comes from any client's Authorization header). */
function emailKey(email: string): string {
  const e = email.toLowerCase();
  return e.length <= MAX_EMAIL_KEY ? `e:${e}` : `e#${createHash('sha256').update(e).digest('base64url')}`;
}

/**
 * Slows down repeated failed logins, per email and per client address: after the free failures,
 * each attempt is scheduled at least `delay(failures)` after the previous one (exponential, capped),
 * so parallel guesses queue up instead of running in parallel; an attempt that would wait longer
 * than maxWaitMs is refused with 429 and Retry-After. A success clears the email's record.
 */
export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly nowMs: () => number = Date.now,
    private readonly settings: ThrottleSettings = DEFAULT_THROTTLE,
  ) {}

  /**
   * Reserves this attempt's slot; returns how long to wait before checking the password, or
   * `refused` (answer 429, retry after `waitMs`) when the queue is already too long.
   */
  reserve(email: string, address: string): { waitMs: number; refused: boolean } {
    const now = this.nowMs();
    const keys = [this.entry(emailKey(email), this.settings.freeFailures, now), this.entry(`a:${address}`, this.settings.freeFailuresPerAddress, now)];
    const slot = Math.max(now, ...keys.map((e) => e.last + this.delay(e)));
    const waitMs = slot - now;
    if (waitMs > this.settings.maxWaitMs) return { waitMs, refused: true };
    for (const e of keys) {
      e.last = slot;
      e.pending++;
    }
    return { waitMs, refused: false };
  }

  /** The outcome of a reserved attempt: a success clears the email's record, a failure counts. */
  settle(email: string, address: string, ok: boolean): void {
    for (const k of [emailKey(email), `a:${address}`]) {
      const e = this.entries.get(k);
      if (!e) continue;
      e.pending = Math.max(0, e.pending - 1);
      if (!ok) e.failures++;
    }
    if (ok) this.entries.delete(emailKey(email));
  }

  private delay(e: Entry): number {
    const attempts = e.failures + e.pending;
    if (attempts < e.free) return 0;
    return Math.min(this.settings.baseDelayMs * 2 ** (attempts - e.free), this.settings.maxDelayMs);
  }

  private entry(key: string, free: number, now: number): Entry {
    const known = this.entries.get(key);
    if (known && now - known.last > this.settings.forgetAfterMs) this.entries.delete(key); // quiet long enough: starts over
    return useRecent(this.entries, key, () => ({ failures: 0, pending: 0, last: -Infinity, free }), MAX_KEYS);
  }
}
