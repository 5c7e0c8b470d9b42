/**
 * The read path of a lazily loaded layer: serves span i of the uncompressed layer from the disk cache, or
 * from the registry — one range request for the span's compressed bytes, inflated from its checkpoint and
 * verified against the span's sha256 (src/indexer's span decoder), then cached. Concurrent reads of one
 * span fetch it once. Nothing unverified is ever returned. (Recently read spans are kept in memory by the
 * filesystem's LayerStream, not here.)
 */
import { createHash } from 'node:crypto';
import { ClipArchive } from '../archive/types';
import { UnavailableError, errorMessage } from '../errors';
import { decodeSpan, spanRange } from '../indexer';
import { ContentCache } from './content-cache';
import { SpanReader } from './span-reader';

/** Random access to a layer blob as stored in the registry. */
export interface RangeSource {
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

/** Counts registry fetches made for readers (not for the background fetcher), which yields to them. */
export class ForegroundActivity {
  active = 0;
}

export interface LayerSpanReaderOptions {
  archive: ClipArchive;
  source: RangeSource;
  cache: ContentCache;
  activity?: ForegroundActivity;
  /** Spans loaded ahead once reads walk through the layer sequentially (default 2; 0 turns it off). */
  readAhead?: number;
}

export class LayerSpanReader implements SpanReader {
  private readonly archive: ClipArchive;
  private readonly source: RangeSource;
  private readonly cache: ContentCache;
  private readonly activity: ForegroundActivity;
  private readonly readAhead: number;
  private readonly pending = new Map<number, Promise<Buffer>>();
  /**
   * Spans whose cache file this process has verified or written: later reads of them skip hashing
   * (the cache directory is root's; only a damaged file, found on its first read, is fetched again).
   */
  private readonly trusted = new Set<number>();
  /** Spans loaded ahead of the reader, held until it asks for them (at most readAhead of them). */
  private readonly ahead = new Map<number, Buffer>();
  /** The span asked for last; a read of the span after it means the reader walks the layer in order. */
  private lastRead = -2;
  /** Bytes fetched from the registry by this reader (for logs and tests). */
  fetchedBytes = 0;

  constructor(opts: LayerSpanReaderOptions) {
    this.archive = opts.archive;
    this.source = opts.source;
    this.cache = opts.cache;
    this.activity = opts.activity ?? new ForegroundActivity();
    this.readAhead = opts.readAhead ?? 2;
  }

  get layerDigest(): string {
    return this.archive.layerDigest;
  }

  get spanCount(): number {
    return this.archive.checkpoints.length;
  }

  readSpan(index: number, signal?: AbortSignal): Promise<Buffer> {
    const sequential = index === this.lastRead + 1;
    this.lastRead = index;
    if (sequential) this.loadAhead(index);
    const ready = this.ahead.get(index);
    if (ready) {
      this.ahead.delete(index);
      return Promise.resolve(ready);
    }
    return this.loadOnce(index, true, signal);
  }

  /**
   * A reader walking through the layer in order (a large file read from start to end) gets the next
   * spans fetched while it consumes this one. Random access never triggers it, so a small read fetches
   * only its own span.
   */
  private loadAhead(index: number): void {
    for (let next = index + 1; next <= index + this.readAhead && next < this.spanCount; next++) {
      if (this.pending.has(next) || this.ahead.has(next)) continue;
      this.loadOnce(next, true).then(
        (data) => {
          this.ahead.set(next, data);
          for (const k of this.ahead.keys()) if (this.ahead.size > this.readAhead) this.ahead.delete(k);
        },
        () => undefined, // the reader's own request will report the failure
      );
    }
  }

  /**
   * Makes sure span i is in the disk cache, fetching it if needed; the background fetcher's entry, not
   * counted as foreground activity. Resolves true when it fetched something.
   */
  async prefetch(index: number, signal?: AbortSignal): Promise<boolean> {
    if (this.pending.has(index) || (await this.cache.has(this.archive.layerDigest, index))) return false;
    await this.loadOnce(index, false, signal);
    return true;
  }

  private loadOnce(index: number, foreground: boolean, signal?: AbortSignal): Promise<Buffer> {
    let p = this.pending.get(index);
    if (!p) {
      p = this.load(index, foreground, signal).finally(() => this.pending.delete(index));
      this.pending.set(index, p);
    }
    return p;
  }

  private async load(index: number, foreground: boolean, signal?: AbortSignal): Promise<Buffer> {
    const digest = this.archive.layerDigest;
    const cached = await this.cache.get(digest, index);
    if (cached && (this.trusted.has(index) || this.matches(index, cached))) {
      this.trusted.add(index);
      return cached;
    }
    this.trusted.delete(index);
    if (foreground) this.activity.active++;
    let data: Buffer;
    try {
      data = await this.fetch(index, signal);
    } finally {
      if (foreground) this.activity.active--;
    }
    await this.cache.put(digest, index, data);
    this.trusted.add(index);
    return data;
  }

  /** Whether bytes from the cache are span i (a damaged or foreign file is fetched again). */
  private matches(index: number, data: Buffer): boolean {
    return `sha256:${createHash('sha256').update(data).digest('hex')}` === this.archive.spanDigests[index];
  }

  private async fetch(index: number, signal?: AbortSignal): Promise<Buffer> {
    const range = spanRange(this.archive, index);
    try {
      const compressed = await this.source.readRange(range.compressedStart, range.compressedEnd - range.compressedStart, signal);
      this.fetchedBytes += compressed.length;
      return await decodeSpan(this.archive, index, compressed);
    } catch (err) {
      throw new UnavailableError(`layer ${this.archive.layerDigest} span ${index}: ${errorMessage(err)}`, { cause: err });
    }
  }
}
