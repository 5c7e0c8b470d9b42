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
}

export class LayerSpanReader implements SpanReader {
  private readonly archive: ClipArchive;
  private readonly source: RangeSource;
  private readonly cache: ContentCache;
  private readonly activity: ForegroundActivity;
  private readonly pending = new Map<number, Promise<Buffer>>();
  /** Bytes fetched from the registry by this reader (for logs and tests). */
  fetchedBytes = 0;

  constructor(opts: LayerSpanReaderOptions) {
    this.archive = opts.archive;
    this.source = opts.source;
    this.cache = opts.cache;
    this.activity = opts.activity ?? new ForegroundActivity();
  }

  get layerDigest(): string {
    return this.archive.layerDigest;
  }

  get spanCount(): number {
    return this.archive.checkpoints.length;
  }

  readSpan(index: number, signal?: AbortSignal): Promise<Buffer> {
    return this.loadOnce(index, true, signal);
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
    if (cached && this.matches(index, cached)) return cached;
    if (foreground) this.activity.active++;
    let data: Buffer;
    try {
      data = await this.fetch(index, signal);
    } finally {
      if (foreground) this.activity.active--;
    }
    await this.cache.put(digest, index, data);
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
