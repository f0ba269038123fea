/** Time source in microseconds since the epoch. Injectable so tests and timers can step time. */
export interface Clock {
  nowMicros(): number;
}

/** Wall clock, strictly increasing per process so two writes never share an update time by accident. */
export class SystemClock implements Clock {
  private last = 0;
  nowMicros(): number {
    const t = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    this.last = t > this.last ? t : this.last + 1;
    return this.last;
  }
}
