/**
 * The read path of a lazily loaded layer: serves span i of the uncompressed layer from memory, from the
 * disk cache, or from the registry — one range request for the span's compressed bytes, inflated from
 * its checkpoint, verified against the span's sha256, then cached. Concurrent reads of one span fetch
 * it once. Nothing unverified is ever returned.
 */
import { createHash } from 'node:crypto';
import { ClipArchive, Checkpoint } from '../archive/types';
import { InternalError, UnavailableError, errorMessage } from '../errors';
import { ContentCache } from './content-cache';

/** Random access to a layer blob as stored in the registry. */
export interface RangeSource {
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

/**
 * Inflates `length` uncompressed bytes starting at a checkpoint, from the blob bytes beginning at
 * `checkpoint.compressedOffset - (checkpoint.bits ? 1 : 0)`.
 */
export type SpanInflater = (checkpoint: Checkpoint, compressed: Buffer, length: number) => Buffer | Promise<Buffer>;

/** Counts registry fetches made for readers (not for the background fetcher), which yields to them. */
export class ForegroundActivity {
  active = 0;
}

export interface LayerSpanReaderOptions {
  archive: ClipArchive;
  source: RangeSource;
  inflate: SpanInflater;
  cache: ContentCache;
  /** Spans kept in memory for reads that walk through a span in small pieces. */
  memorySpans?: number;
  activity?: ForegroundActivity;
}

export class LayerSpanReader {
  private readonly archive: ClipArchive;
  private readonly source: RangeSource;
  private readonly inflate: SpanInflater;
  private readonly cache: ContentCache;
  private readonly memorySpans: number;
  private readonly activity: ForegroundActivity;
  /** Most recently used last. */
  private readonly memory = new Map<number, Buffer>();
  private readonly pending = new Map<number, Promise<Buffer>>();
  /** Bytes fetched from the registry by this reader (for logs and tests). */
  fetchedBytes = 0;

  constructor(opts: LayerSpanReaderOptions) {
    this.archive = opts.archive;
    this.source = opts.source;
    this.inflate = opts.inflate;
    this.cache = opts.cache;
    this.memorySpans = opts.memorySpans ?? 4;
    this.activity = opts.activity ?? new ForegroundActivity();
  }

  get layerDigest(): string {
    return this.archive.layerDigest;
  }

  get spanCount(): number {
    return this.archive.checkpoints.length;
  }

  /** Uncompressed [start, end) of span i. */
  spanRange(index: number): [number, number] {
    const cps = this.archive.checkpoints;
    const start = cps[index]!.uncompressedOffset;
    const end = index + 1 < cps.length ? cps[index + 1]!.uncompressedOffset : this.archive.uncompressedSize;
    return [start, end];
  }

  async readSpan(index: number, signal?: AbortSignal): Promise<Buffer> {
    if (!Number.isInteger(index) || index < 0 || index >= this.spanCount) {
      throw new InternalError(`span ${index} out of range (layer has ${this.spanCount})`);
    }
    const hot = this.memory.get(index);
    if (hot) {
      this.memory.delete(index);
      this.memory.set(index, hot);
      return hot;
    }
    const data = await this.loadOnce(index, true, signal);
    this.remember(index, data);
    return data;
  }

  /**
   * Makes sure span i is in the disk cache, fetching it if needed; the background fetcher's entry, not
   * counted as foreground activity. Resolves true when it fetched something.
   */
  async prefetch(index: number, signal?: AbortSignal): Promise<boolean> {
    if (this.memory.has(index) || (await this.cache.has(this.archive.layerDigest, index))) return false;
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

  private remember(index: number, data: Buffer): void {
    this.memory.set(index, data);
    while (this.memory.size > this.memorySpans) this.memory.delete(this.memory.keys().next().value!);
  }

  private async load(index: number, foreground: boolean, signal?: AbortSignal): Promise<Buffer> {
    const digest = this.archive.layerDigest;
    const cached = await this.cache.get(digest, index);
    if (cached && this.verified(index, cached)) return cached;
    if (foreground) this.activity.active++;
    let data: Buffer;
    try {
      data = await this.fetch(index, signal);
    } finally {
      if (foreground) this.activity.active--;
    }
    if (!this.verified(index, data)) {
      throw new UnavailableError(`layer ${digest} span ${index}: content does not match its digest`);
    }
    await this.cache.put(digest, index, data);
    return data;
  }

  private verified(index: number, data: Buffer): boolean {
    const [start, end] = this.spanRange(index);
    if (data.length !== end - start) return false;
    return `sha256:${createHash('sha256').update(data).digest('hex')}` === this.archive.spanDigests[index];
  }

  private async fetch(index: number, signal?: AbortSignal): Promise<Buffer> {
    const [start, end] = this.spanRange(index);
    const cps = this.archive.checkpoints;
    try {
      if (this.archive.compression === 'none') {
        const data = await this.source.readRange(start, end - start, signal);
        this.fetchedBytes += data.length;
        return data;
      }
      const cp = cps[index]!;
      const from = cp.compressedOffset - (cp.bits ? 1 : 0);
      const to = index + 1 < cps.length ? cps[index + 1]!.compressedOffset : this.archive.compressedSize;
      const compressed = await this.source.readRange(from, to - from, signal);
      this.fetchedBytes += compressed.length;
      return await this.inflate(cp, compressed, end - start);
    } catch (err) {
      throw new UnavailableError(`layer ${this.archive.layerDigest} span ${index}: ${errorMessage(err)}`, { cause: err });
    }
  }
}
