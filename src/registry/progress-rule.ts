/**
 * The minimum-progress rule for large response bodies (blob streams, range reads), without clocks.
 *
 * Time counts only while the reader waits for the registry: a consumer that stops pulling (backpressure)
 * is not the registry's fault. The waiting time is cut into windows; a window ends as soon as `minBytes`
 * have arrived in it, and the rule is broken when a window reaches `windowMs` of waiting with fewer than
 * `minBytes`. In other words every `minBytes` must arrive within `windowMs` of waiting: a registry that
 * keeps a connection alive with a byte now and then is cut off, while one that is merely slow (above
 * minBytes / windowMs on average over each window) is not.
 */
export class ProgressRule {
  private windowWaitedMs = 0;
  private windowBytes = 0;
  private waitingSince: number | undefined;

  constructor(
    readonly minBytes: number,
    readonly windowMs: number,
  ) {}

  /** The reader starts waiting for the next chunk at `now` (milliseconds, monotonic). */
  waitStarted(now: number): void {
    this.waitingSince ??= now;
  }

  /** A chunk of `bytes` arrived at `now`, ending the current wait. */
  received(bytes: number, now: number): void {
    if (this.waitingSince !== undefined) this.windowWaitedMs += Math.max(0, now - this.waitingSince);
    this.waitingSince = undefined;
    this.windowBytes += bytes;
    if (this.windowBytes >= this.minBytes) {
      this.windowBytes = 0;
      this.windowWaitedMs = 0;
    }
  }

  /** Milliseconds of further waiting before the rule is broken (≤ 0: broken); Infinity when not waiting. */
  remainingMs(now: number): number {
    if (this.waitingSince === undefined) return Number.POSITIVE_INFINITY;
    return this.windowMs - this.windowWaitedMs - Math.max(0, now - this.waitingSince);
  }

  /** Bytes that arrived in the current window so far. */
  get bytesInWindow(): number {
    return this.windowBytes;
  }
}
