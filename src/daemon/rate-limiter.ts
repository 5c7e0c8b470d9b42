/**
 * Rate limiting of repeated log lines. When a failure repeats (a FUSE read failing with EIO for every
 * page of a file, a registry that is down), the first `burst` lines of one kind in a window are let
 * through and the rest are counted; when the window ends one summary line says how many were left out
 * ("312 more in the last 10 s like: …"). Lines are of one kind when they have the same key, by default
 * their text with digits and hex runs blotted out (layer digests, offsets and sizes vary, the failure
 * does not).
 */

export interface RateLimiterOptions {
  /** Length of a window. */
  windowMs?: number;
  /** Lines of one kind let through per window. */
  burst?: number;
  /** Kinds tracked at once; further kinds share one bucket. */
  maxKeys?: number;
  /** Called with the summary of a window that left lines out. */
  onSummary: (level: string, message: string) => void;
  /** Clock, for tests. */
  now?: () => number;
  /** Whether to flush summaries on a timer (off in tests, which call flush()). */
  timer?: boolean;
}

interface Window {
  start: number;
  count: number;
  suppressed: number;
  level: string;
  last: string;
}

const OTHER_KEY = '(other)';

/** The kind of a log line: its text with numbers and hex identifiers replaced. */
export function messageKind(message: string): string {
  return message
    .slice(0, 300)
    .replace(/[0-9a-f]{6,}/gi, '#')
    .replace(/\d+/g, '#');
}

export class RateLimiter {
  readonly windowMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RateLimiterOptions) {
    this.windowMs = options.windowMs ?? 10_000;
    this.burst = options.burst ?? 5;
    this.maxKeys = options.maxKeys ?? 1000;
    this.now = options.now ?? Date.now;
  }

  /** Whether a line may be written now; a line left out is counted for the window's summary. */
  admit(level: string, message: string, key = messageKind(message)): boolean {
    const now = this.now();
    this.flush(now);
    if (!this.windows.has(key) && this.windows.size >= this.maxKeys) key = OTHER_KEY;
    let window = this.windows.get(key);
    if (!window) {
      window = { start: now, count: 0, suppressed: 0, level, last: message };
      this.windows.set(key, window);
    }
    window.count++;
    if (window.count <= this.burst) return true;
    window.suppressed++;
    window.level = level;
    window.last = message;
    this.schedule(window.start + this.windowMs - now);
    return false;
  }

  /** Ends the windows that are over (all of them with `all`), writing a summary for each that left lines out. */
  flush(now = this.now(), all = false): void {
    for (const [key, window] of this.windows) {
      if (!all && now - window.start < this.windowMs) continue;
      this.windows.delete(key);
      if (window.suppressed > 0) {
        const seconds = Math.max(1, Math.round(Math.min(now - window.start, this.windowMs) / 1000));
        this.options.onSummary(window.level, `${window.suppressed} more in the last ${seconds} s like: ${window.last}`);
      }
    }
  }

  /** Writes the pending summaries and stops the timer. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flush(this.now(), true);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.options.timer === false) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = this.now();
      this.flush(now);
      const pending = [...this.windows.values()].filter((w) => w.suppressed > 0).map((w) => w.start + this.windowMs - now);
      if (pending.length > 0) this.schedule(Math.min(...pending));
    }, Math.max(0, delayMs) + 10);
    this.timer.unref();
  }
}
