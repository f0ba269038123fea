import { kryptonError, KryptonError } from '../core/errors.js';
import type { ClientRequest, HttpClient } from '../core/http-client.js';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({ attempts: 4, baseDelayMs: 250 });

/** Statuses worth retrying: the peer may come back (timeouts, unavailability, 5xx). */
function retriable(err: unknown): boolean {
  if (!(err instanceof KryptonError)) return false;
  return err.statusCode === 408 || err.statusCode >= 500;
}

/**
 * One remote call of the migration task with bounded retries and exponential backoff with jitter;
 * a 4xx is final at once. The error names the call, so a FAILED task says what to fix.
 */
export async function call<T>(client: HttpClient, url: string, req: ClientRequest, what: string, signal: AbortSignal, retry: RetryPolicy = DEFAULT_RETRY): Promise<T> {
  let last: unknown;
  for (let attempt = 1; attempt <= retry.attempts; attempt++) {
    if (signal.aborted) throw kryptonError('CONFLICT', 'migration task cancelled');
    try {
      return (await client.send<T>(url, { ...req, signal })).body;
    } catch (err) {
      last = err;
      if (signal.aborted) throw kryptonError('CONFLICT', 'migration task cancelled');
      if (!retriable(err) || attempt === retry.attempts) break;
      const delay = retry.baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  const e = last as KryptonError;
  throw kryptonError(e instanceof KryptonError && e.statusCode < 500 ? 'VALIDATION' : 'UNAVAILABLE', `${what} failed: ${e.message}`, {
    cause: e,
    statusCode: e instanceof KryptonError ? e.statusCode : 500,
  });
}

/** At most `free` (as constructed) holders at once; the others wait, first come first served. */
export class Semaphore {
  private readonly waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
