/**
 * Fills the content cache with the rest of every mounted layer at low priority, so that a node stops
 * depending on the registry for layers it runs. One span at a time, layer after layer; it pauses while
 * containers are waiting on the registry and until they have left it alone for a second, and a failed
 * span is retried on a later pass. It pauses while the content cache has no room within its bounds
 * (max_size without evicting mounted layers' spans, min_free) and tries again later.
 */
import type { Logger } from 'winston';
import { CacheFullError, errorMessage } from '../errors';
import { ForegroundActivity, LayerSpanReader } from './layer-span-reader';

const IDLE_POLL_MS = 200;
/** How long readers must have left the registry alone before the fetcher takes a span. */
const QUIET_MS = 1_000;
const RETRY_PAUSE_MS = 5_000;

export class BackgroundFetcher {
  private readonly readers = new Set<LayerSpanReader>();
  private readonly done = new WeakSet<LayerSpanReader>();
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Whether the last pass stopped for want of room in the cache (logged once until there is room again). */
  private full = false;

  constructor(
    private readonly activity: ForegroundActivity,
    private readonly logger: Logger,
  ) {}

  add(reader: LayerSpanReader): void {
    this.readers.add(reader);
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
      const reader = [...this.readers].find((r) => !this.done.has(r));
      if (!reader) {
        await this.sleep(IDLE_POLL_MS * 10);
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
