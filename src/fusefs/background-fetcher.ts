/**
 * Fills the content cache with the rest of every mounted layer at low priority, so that a node stops
 * depending on the registry for layers it runs. One span at a time, layer after layer; it pauses while
 * containers are waiting on the registry and until they have left it alone for a second, and a failed
 * span is retried on a later pass. A layer just mounted is left alone for a while (startupGraceMs): a
 * container is usually started right after its image is pulled, and its first reads must not share the
 * link with spans it may never read (the bench measured 0.5 s of a python start-up lost to that on a
 * 20 MB/s link, docs/benchmarks.md). It pauses while the content cache has no room within its bounds
 * (max_size without evicting mounted layers' spans, min_free) and tries again later.
 */
import type { Logger } from 'winston';
import { CacheFullError, errorMessage } from '../errors';
import { ForegroundActivity, LayerSpanReader } from './layer-span-reader';

const IDLE_POLL_MS = 200;
/** How long readers must have left the registry alone before the fetcher takes a span. */
const QUIET_MS = 1_000;
const RETRY_PAUSE_MS = 5_000;
/** How long a layer is left alone after it is added (mounted). */
const STARTUP_GRACE_MS = 10_000;

export interface BackgroundFetcherOptions {
  /** How long after add() a layer's spans start being fetched (default 10 s). */
  startupGraceMs?: number;
}

export class BackgroundFetcher {
  /** Readers to fill, with the time from which they may be. */
  private readonly readers = new Map<LayerSpanReader, number>();
  private readonly done = new WeakSet<LayerSpanReader>();
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Whether the last pass stopped for want of room in the cache (logged once until there is room again). */
  private full = false;

  private readonly startupGraceMs: number;

  constructor(
    private readonly activity: ForegroundActivity,
    private readonly logger: Logger,
    options: BackgroundFetcherOptions = {},
  ) {
    this.startupGraceMs = options.startupGraceMs ?? STARTUP_GRACE_MS;
  }

  add(reader: LayerSpanReader): void {
    if (!this.readers.has(reader)) this.readers.set(reader, Date.now() + this.startupGraceMs);
    this.wake?.();
    this.running ??= this.loop().catch((err: unknown) => {
      this.logger.error(`background fetcher stopped: ${errorMessage(err)}`);
    });
  }

  remove(reader: LayerSpanReader): void {
    this.readers.delete(reader);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.wake?.();
    await this.running;
  }

  /** Waits ms, or until add() or stop() wakes the loop. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const now = Date.now();
      const waiting = [...this.readers].filter(([r]) => !this.done.has(r));
      const reader = waiting.find(([, from]) => from <= now)?.[0];
      if (!reader) {
        const next = Math.min(...waiting.map(([, from]) => from));
        await this.sleep(Math.max(IDLE_POLL_MS, Math.min(next - now, IDLE_POLL_MS * 10)));
        continue;
      }
      let complete = true;
      for (let i = 0; i < reader.spanCount && !signal.aborted && this.readers.has(reader); i++) {
        while (!this.activity.quietFor(QUIET_MS) && !signal.aborted) await this.sleep(IDLE_POLL_MS);
        try {
          if (await reader.prefetch(i, signal)) this.full = false;
        } catch (err) {
          complete = false;
          if (err instanceof CacheFullError) {
            if (!this.full) this.logger.info(`background fetching paused: ${errorMessage(err)}`);
            this.full = true;
            break;
          }
          if (!signal.aborted) this.logger.debug(`background fetch of ${reader.layerDigest} span ${i}: ${errorMessage(err)}`);
        }
      }
      if (complete) {
        this.done.add(reader);
        this.logger.info(`layer ${reader.layerDigest} is fully cached`);
      } else if (!signal.aborted) {
        await this.sleep(RETRY_PAUSE_MS);
      }
    }
  }
}
