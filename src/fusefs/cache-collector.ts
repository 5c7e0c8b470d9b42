/**
 * Removes from the content cache the layers no snapshot references any more, once they have gone
 * unreferenced for a grace period ([cache] gc_grace): containerd removes a layer's snapshot when its image is
 * removed and garbage-collected, and an image pulled again soon after (a rollback, a pod moved back) still
 * finds its bytes meanwhile. A layer that is mounted or being written is never removed. Each pass also
 * forgets layers another process removed (`clip cache prune`).
 */
import type { Logger } from 'winston';
import { errorMessage } from '../errors';
import type { ContentCache } from './content-cache';

export interface CacheCollectorOptions {
  cache: ContentCache;
  /** Layer digests some snapshot references now (from the snapshotter's metadata). */
  referenced: () => Set<string>;
  graceMs: number;
  logger: Logger;
  /** Time between passes (default: a quarter of the grace period, between 1 s and 5 min). */
  intervalMs?: number;
}

/** Layers whose unreferenced time is over: the pure part of a pass. */
export function expiredLayers(unreferencedSince: ReadonlyMap<string, number>, now: number, graceMs: number): string[] {
  return [...unreferencedSince].filter(([, since]) => now - since >= graceMs).map(([layer]) => layer);
}

export class CacheCollector {
  /** Per unreferenced layer, since when (Date.now()) this process has seen it unreferenced. */
  private readonly since = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: CacheCollectorOptions) {}

  start(): void {
    const interval = this.opts.intervalMs ?? Math.min(Math.max(this.opts.graceMs / 4, 1000), 300_000);
    this.timer = setInterval(() => void this.pass(), interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass (also run by start's timer); passes never overlap. */
  pass(): Promise<void> {
    const running =
      this.running ??
      this.collect()
        .catch((err: unknown) => void this.opts.logger.warn(`content cache collection: ${errorMessage(err)}`))
        .finally(() => (this.running = undefined));
    this.running = running;
    return running;
  }

  private async collect(): Promise<void> {
    const { cache, logger } = this.opts;
    await cache.forgetVanished();
    const referenced = this.opts.referenced();
    const now = Date.now();
    const present = new Set(cache.layerDigests());
    for (const layer of this.since.keys()) if (!present.has(layer) || referenced.has(layer) || cache.isInUse(layer)) this.since.delete(layer);
    for (const layer of present) if (!referenced.has(layer) && !cache.isInUse(layer) && !this.since.has(layer)) this.since.set(layer, now);
    const sizes = new Map(cache.usage().layers.map((l) => [l.digest, l.bytes]));
    for (const layer of expiredLayers(this.since, now, this.opts.graceMs)) {
      this.since.delete(layer);
      await cache.removeLayer(layer);
      logger.info(`removed layer ${layer} from the content cache (${sizes.get(layer) ?? 0} bytes): no snapshot has referenced it for ${this.opts.graceMs / 1000} s`);
    }
  }
}
