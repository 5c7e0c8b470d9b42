/**
 * Spans the read path used last, kept in memory, and spans being fetched, shared.
 *
 * The kernel asks for at most 128 KiB per read while a span is usually much larger, so a sequential read
 * asks for the same span many times in a row, often several times at once (readahead). Without this each of
 * those requests would go to the SpanReader (a cache file read and hash check, or a registry request).
 *
 * Buffering rules: a span is kept only after the reader resolved it, least recently used first out, within
 * `maxBytes` (a span larger than that is never kept). A fetch in progress is shared by every request for
 * that span; each request can give up through its own signal, and the fetch itself is aborted (and
 * forgotten, so the next request starts afresh) only when every request waiting for it has given up.
 */
import type { SpanReader } from './span-reader';

interface Flight {
  promise: Promise<Buffer>;
  controller: AbortController;
  waiters: number;
  settled: boolean;
}

export class RecentSpans {
  private readonly kept = new Map<number, Buffer>();
  private keptBytes = 0;
  private readonly flights = new Map<number, Flight>();

  constructor(
    private readonly reader: SpanReader,
    private readonly maxBytes: number,
  ) {}

  /** The span if it is kept (now the most recently used), without waiting for anything. */
  peek(index: number): Buffer | undefined {
    const kept = this.kept.get(index);
    if (kept) {
      this.kept.delete(index);
      this.kept.set(index, kept);
    }
    return kept;
  }

  /** Whether span i is being loaded (a request for it now joins that load). */
  loading(index: number): boolean {
    return this.flights.has(index);
  }

  get(index: number, signal: AbortSignal): Promise<Buffer> {
    const kept = this.peek(index);
    if (kept) return Promise.resolve(kept);
    if (signal.aborted) return Promise.reject(signal.reason);
    return this.wait(index, this.flights.get(index) ?? this.start(index), signal);
  }

  private start(index: number): Flight {
    const controller = new AbortController();
    const flight: Flight = { controller, waiters: 0, settled: false, promise: Promise.resolve(Buffer.alloc(0)) };
    flight.promise = new Promise<Buffer>((resolve) => resolve(this.reader.readSpan(index, controller.signal))).then(
      (bytes) => {
        flight.settled = true;
        if (this.flights.get(index) === flight) {
          this.flights.delete(index);
          this.keep(index, bytes);
        }
        return bytes;
      },
      (err: unknown) => {
        flight.settled = true;
        if (this.flights.get(index) === flight) this.flights.delete(index);
        throw err;
      },
    );
    // Every waiter may have left; the outcome must not become an unhandled rejection.
    flight.promise.catch(() => undefined);
    this.flights.set(index, flight);
    return flight;
  }

  private wait(index: number, flight: Flight, signal: AbortSignal): Promise<Buffer> {
    flight.waiters++;
    return new Promise<Buffer>((resolve, reject) => {
      let left = false;
      const leave = (): boolean => {
        if (left) return false;
        left = true;
        signal.removeEventListener('abort', onAbort);
        flight.waiters--;
        return true;
      };
      const onAbort = (): void => {
        if (!leave()) return;
        if (flight.waiters === 0 && !flight.settled) {
          flight.controller.abort(signal.reason);
          if (this.flights.get(index) === flight) this.flights.delete(index);
        }
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (bytes) => {
          if (leave()) resolve(bytes);
        },
        (err: unknown) => {
          if (leave()) reject(err);
        },
      );
    });
  }

  private keep(index: number, bytes: Buffer): void {
    if (bytes.length > this.maxBytes) return;
    this.kept.set(index, bytes);
    this.keptBytes += bytes.length;
    for (const [oldest, old] of this.kept) {
      if (this.keptBytes <= this.maxBytes) break;
      this.kept.delete(oldest);
      this.keptBytes -= old.length;
    }
  }
}
