/**
 * Decides which server errors (5xx) of requests are logged: the same error at most once per window.
 * A failing disk or a handler that always throws would otherwise write one error, stack and all,
 * for every request. The repeats held back are counted and reported with the next one logged.
 */
export class ErrorLogThrottle {
  /** Per error key: until when repeats are held back, and how many were. Oldest first (insertion order). */
  private readonly recent = new Map<string, { until: number; held: number }>();

  constructor(
    private readonly windowMs = 10_000,
    /** Distinct errors remembered at most (errors whose messages name a link or an id are all distinct). */
    private readonly limit = 256,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Undefined: hold this one back (the same error was logged less than a window ago). A number: log
   * it, with that many repeats held back since the last time it was logged.
   */
  admit(key: string): number | undefined {
    const t = this.now();
    const seen = this.recent.get(key);
    if (seen && t < seen.until) {
      seen.held++;
      return undefined;
    }
    const held = seen?.held ?? 0;
    this.recent.delete(key);
    if (this.recent.size >= this.limit) this.recent.delete(this.recent.keys().next().value as string);
    this.recent.set(key, { until: t + this.windowMs, held: 0 });
    return held;
  }
}
