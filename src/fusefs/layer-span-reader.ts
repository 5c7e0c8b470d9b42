/**
 * The read path of a lazily loaded layer: serves span i of the uncompressed layer from the disk cache, or
 * from the registry — one range request for the span's compressed bytes, inflated from its checkpoint and
 * verified against the span's sha256 (src/indexer's span decoder), then cached. Concurrent reads of one
 * span fetch it once. Nothing unverified is ever returned: a span from the cache is checked against its
 * digest the first time this process reads it, after which slices of it are read from its cache file
 * (readSlice). (Recently loaded spans are kept in memory by the filesystem's LayerStream, not here.)
 *
 * A zstd layer has no random access: its first missing span makes the reader stream the whole blob once,
 * decompress it and cache every span, each checked against the archive's digest.
 */
import type { Logger } from 'winston';
import { ClipArchive } from '../archive/types';
import { CacheFullError, UnavailableError, errorMessage } from '../errors';
import { decodeSpan, DigestMismatchError, indexLayer, sha256Digest, spanRange, type SpanWriter } from '../indexer';
import { ContentCache, spanFileName } from './content-cache';
import { SpanFiles, SpanReader } from './span-reader';
import type { StartupBundleReader } from './startup-bundle-reader';

/** Random access to a layer blob as stored in the registry. */
export interface RangeSource {
  readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /** The whole blob, for layers that cannot be read by range (zstd). */
  stream?(signal?: AbortSignal): AsyncIterable<Buffer>;
}

/**
 * Why a span is fetched: a reader waits for it (foreground), it is read ahead of a reader walking the
 * layer in order (prefetch), it is in the layer's start-up profile (profile), or the background fetcher
 * fills the cache (background); `bundle` counts a start-up bundle's blob (startup-bundle-reader.ts).
 */
export type FetchKind = 'foreground' | 'prefetch' | 'profile' | 'background' | 'bundle';

/** What the read path counts (src/metrics); optional. */
export interface ReadMetrics {
  /** Compressed bytes came from the registry, completing `spans` spans (a zstd layer's chunks: 0, then all). */
  fetched(kind: FetchKind, bytes: number, spans: number): void;
  /** A span was looked up in the content cache. */
  cacheLookup(hit: boolean): void;
}

/** The smallest span size indexLayer accepts. */
const MIN_SPAN_SIZE = 4 << 10;

/**
 * Registry fetches made for readers (not for the background fetcher), which yields to them: while any is
 * in flight, and for a moment after the last one, since a starting container asks for span after span.
 */
export class ForegroundActivity {
  private active = 0;
  private lastEnd = 0;

  begin(): void {
    this.active++;
  }

  end(): void {
    this.active--;
    this.lastEnd = Date.now();
  }

  /** Whether no reader has waited on the registry for the last `ms` milliseconds. */
  quietFor(ms: number): boolean {
    return this.active === 0 && Date.now() - this.lastEnd >= ms;
  }
}

export interface LayerSpanReaderOptions {
  archive: ClipArchive;
  source: RangeSource;
  cache: ContentCache;
  activity?: ForegroundActivity;
  /** Spans loaded ahead once reads walk through the layer sequentially (default 2; 0 turns it off). */
  readAhead?: number;
  /** Where a failing cache (a full disk) is reported. */
  logger?: Pick<Logger, 'warn'>;
  metrics?: ReadMetrics;
}

/** A failing cache is reported again after this long. */
const CACHE_ERROR_QUIET_MS = 60_000;

export class LayerSpanReader implements SpanReader {
  readonly archive: ClipArchive;
  private readonly source: RangeSource;
  private readonly cache: ContentCache;
  private readonly activity: ForegroundActivity;
  private readonly readAhead: number;
  private readonly pending = new Map<number, Promise<Buffer>>();
  /** A zstd layer being decompressed whole into the cache. */
  private restoring: Promise<void> | undefined;
  /** The span asked for last; a read of the span after it means the reader walks the layer in order. */
  private lastRead = -2;
  private readonly logger?: Pick<Logger, 'warn'>;
  private cacheWriteFailing = false;
  private readonly metrics?: ReadMetrics;
  /** Bytes fetched from the registry by this reader (for logs and tests). */
  fetchedBytes = 0;
  /** The layer's start-up bundle, when its archive has one this node may use (setBundle). */
  private bundle?: StartupBundleReader;

  constructor(opts: LayerSpanReaderOptions) {
    this.archive = opts.archive;
    this.source = opts.source;
    this.cache = opts.cache;
    this.activity = opts.activity ?? new ForegroundActivity();
    this.readAhead = opts.readAhead ?? 2;
    this.logger = opts.logger;
    this.metrics = opts.metrics;
  }

  get layerDigest(): string {
    return this.archive.layerDigest;
  }

  get spanCount(): number {
    return this.archive.checkpoints.length;
  }

  readSpan(index: number, signal?: AbortSignal): Promise<Buffer> {
    this.noteRead(index);
    return this.loadOnce(index, 'foreground', signal);
  }

  /** Answers reads inside the start-up ranges from `bundle` from now on. */
  setBundle(bundle: StartupBundleReader): void {
    this.bundle = bundle;
  }

  /** The start-up bundle, if one is set. */
  get startupBundle(): StartupBundleReader | undefined {
    return this.bundle;
  }

  /** From the start-up bundle (no read-ahead: a starting container's other reads are in the bundle too). */
  readBundled(offset: number, length: number, signal: AbortSignal): Promise<Buffer | undefined> {
    return this.bundle?.read(offset, length, signal) ?? Promise.resolve(undefined);
  }

  /** A slice of a span this process has verified and cached, read from its cache file alone. */
  readSlice(index: number, from: number, length: number): Promise<Buffer | undefined> {
    this.noteRead(index);
    return this.cache.readSlice(this.archive.layerDigest, this.spanDigest(index), from, length);
  }

  spanFiles(): SpanFiles {
    const layer = this.archive.layerDigest;
    // A digest may name several spans of the layer (two identical spans of zeros, say).
    const indexes = new Map<string, number[]>();
    this.archive.spanDigests.forEach((digest, i) => {
      const list = indexes.get(digest);
      if (list) list.push(i);
      else indexes.set(digest, [i]);
    });
    const digests = this.archive.spanDigests;
    return {
      dir: this.cache.spanDir(layer),
      watch: (onVerified) =>
        this.cache.watchVerified(layer, (digest) => {
          for (const i of indexes.get(digest) ?? []) onVerified(i, spanFileName(digest));
        }),
      trackReads: (readTimes) =>
        this.cache.trackReads(layer, function* () {
          const times = readTimes();
          for (let i = 0; i < times.length && i < digests.length; i++) if (times[i]! > 0) yield [digests[i]!, times[i]!];
        }),
      cachedRead: (index) => {
        if (index < this.spanCount) this.noteRead(index);
      },
      watchBundle: (onReady) => {
        const bundle = this.bundle;
        let watching = true;
        bundle
          ?.inCache()
          .then((name) => {
            if (watching && name) onReady(name, bundle.rangePairs());
          })
          .catch((err: unknown) => this.logger?.warn(`layer ${this.archive.layerDigest}: start-up bundle: ${errorMessage(err)}; JavaScript answers its reads`));
        return () => {
          watching = false;
        };
      },
    };
  }

  /** The digest span i must hash to: its cache key. */
  private spanDigest(index: number): string {
    const digest = this.archive.spanDigests[index];
    if (digest === undefined) throw new UnavailableError(`layer ${this.archive.layerDigest} has no span ${index}`);
    return digest;
  }

  private noteRead(index: number): void {
    if (index === this.lastRead) return;
    // Spans loaded ahead are read from their cache files by the FUSE server, which reports the first read
    // of each (spanFiles().cachedRead) so that the window moves on; a report can be missed (a span read
    // before), so the next request may skip spans.
    const sequential = this.lastRead >= -1 && index > this.lastRead && index <= this.lastRead + 1 + this.readAhead;
    this.lastRead = index;
    if (sequential) this.loadAhead(index);
  }

  /**
   * A reader walking through the layer in order (a large file read from start to end) gets the next
   * spans fetched into the cache while it consumes this one. Random access never triggers it, so a small
   * read fetches only its own span. A full cache gets no read-ahead that would evict spans of mounted
   * layers: a span loaded ahead could be evicted again before it is read, and fetched twice.
   */
  private loadAhead(index: number): void {
    for (let next = index + 1; next <= index + this.readAhead && next < this.spanCount; next++) {
      if (this.pending.has(next) || this.cache.isVerified(this.archive.layerDigest, this.spanDigest(next))) continue;
      if (!this.cache.fitsBesideMounted(this.spanBytes(next))) return;
      this.loadOnce(next, 'prefetch').catch(() => undefined); // the reader's own request will report a failure
    }
  }

  /**
   * Loads the listed spans that are not cached yet, in order, `concurrency` at a time, as foreground
   * fetches (readers asking for one of them join its fetch). Failures are left to the readers of those
   * spans. Resolves with how many spans were fetched.
   */
  async warm(indexes: readonly number[], concurrency: number): Promise<number> {
    let next = 0;
    let fetched = 0;
    const worker = async (): Promise<void> => {
      while (next < indexes.length) {
        const i = indexes[next++]!;
        if (i >= this.spanCount) continue;
        try {
          if (await this.fetchIfMissing(i, 'profile')) fetched++;
        } catch {
          // the span's readers see the failure
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    return fetched;
  }

  /**
   * Makes sure span i is in the disk cache, fetching it if needed; the background fetcher's entry, not
   * counted as foreground activity. Resolves true when it fetched something; throws CacheFullError
   * (before fetching) when the cache has no room for it within its bounds.
   */
  async prefetch(index: number, signal?: AbortSignal): Promise<boolean> {
    if (this.pending.has(index) || (await this.cache.has(this.archive.layerDigest, this.spanDigest(index)))) return false;
    if (!(await this.cache.hasRoomFor(this.spanBytes(index)))) {
      throw new CacheFullError(`layer ${this.archive.layerDigest} span ${index}: no room in the content cache for background fetching`);
    }
    return this.fetchIfMissing(index, 'background', signal);
  }

  /** The uncompressed length of span i. */
  private spanBytes(index: number): number {
    const { checkpoints, uncompressedSize } = this.archive;
    return (checkpoints[index + 1]?.uncompressedOffset ?? uncompressedSize) - (checkpoints[index]?.uncompressedOffset ?? 0);
  }

  /** Loads span i unless it is cached or already on its way; resolves true when it loaded it. */
  private async fetchIfMissing(index: number, kind: FetchKind, signal?: AbortSignal): Promise<boolean> {
    if (this.pending.has(index) || (await this.cache.has(this.archive.layerDigest, this.spanDigest(index)))) return false;
    await this.loadOnce(index, kind, signal);
    return true;
  }

  private loadOnce(index: number, kind: FetchKind, signal?: AbortSignal): Promise<Buffer> {
    let p = this.pending.get(index);
    if (!p) {
      p = this.load(index, kind, signal).finally(() => this.pending.delete(index));
      this.pending.set(index, p);
    }
    return p;
  }

  private async load(index: number, kind: FetchKind, signal?: AbortSignal): Promise<Buffer> {
    const foreground = kind !== 'background';
    const layer = this.archive.layerDigest;
    const spanDigest = this.spanDigest(index);
    // A cache that cannot be read (a disk fault) is a miss: the span is fetched and checked again.
    const cached = await this.cache.get(layer, spanDigest).catch(() => undefined);
    if (cached && (this.cache.isVerified(layer, spanDigest) || (await this.matches(index, cached)))) {
      this.cache.markVerified(layer, spanDigest);
      this.metrics?.cacheLookup(true);
      return cached;
    }
    this.metrics?.cacheLookup(false);
    // A zstd layer is decompressed whole, and every span cached and checked on the way.
    if (this.archive.compression === 'zstd') return this.fetchWhole(index, kind);
    if (foreground) this.activity.begin();
    let data: Buffer;
    try {
      data = await this.fetch(index, kind, signal);
    } finally {
      if (foreground) this.activity.end();
    }
    // decodeSpan checked the bytes against the span's digest: they are served even if the cache cannot
    // keep them (a full disk, a span larger than the cache's bound), from memory.
    await this.cache.put(layer, spanDigest, data, { background: !foreground }).catch((err: unknown) => this.onCacheWriteError(err));
    return data;
  }

  /** Logs a failed cache write once per reader until a write succeeds again. */
  private onCacheWriteError(err: unknown): void {
    if (this.cacheWriteFailing) return;
    this.cacheWriteFailing = true;
    setTimeout(() => (this.cacheWriteFailing = false), CACHE_ERROR_QUIET_MS).unref();
    this.logger?.warn(`layer ${this.archive.layerDigest}: cannot keep spans in the cache (${errorMessage(err)}); serving verified bytes from memory`);
  }

  /** Whether bytes from the cache are span i (a damaged or foreign file is fetched again). */
  private async matches(index: number, data: Buffer): Promise<boolean> {
    return (await sha256Digest(data)) === this.archive.spanDigests[index];
  }

  private async fetch(index: number, kind: FetchKind, signal?: AbortSignal): Promise<Buffer> {
    const range = spanRange(this.archive, index);
    try {
      const compressed = await this.source.readRange(range.compressedStart, range.compressedEnd - range.compressedStart, signal);
      this.fetchedBytes += compressed.length;
      this.metrics?.fetched(kind, compressed.length, 1);
      return await decodeSpan(this.archive, index, compressed);
    } catch (err) {
      throw new UnavailableError(`layer ${this.archive.layerDigest} span ${index}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * For a layer without random access (zstd): makes sure every span is in the cache, decompressing the
   * whole blob once if any is missing. Throws UnavailableError when that fails.
   */
  async ensureWhole(): Promise<void> {
    const cached = await this.cache.cachedSpans(this.archive.layerDigest);
    if (this.archive.spanDigests.some((digest) => !cached.has(digest))) return this.restoreWhole('foreground');
  }

  /** Span i of a zstd layer, from the cache once the whole blob went through it. */
  private async fetchWhole(index: number, kind: FetchKind): Promise<Buffer> {
    await this.restoreWhole(kind);
    const data = await this.cache.get(this.archive.layerDigest, this.spanDigest(index));
    if (!data) throw new UnavailableError(`layer ${this.archive.layerDigest} span ${index}: not in the cache after decompressing the layer`);
    return data;
  }

  /** Decompresses the whole blob into the cache, once for all callers at a time. */
  private async restoreWhole(kind: FetchKind): Promise<void> {
    this.restoring ??= this.decompressWhole(kind).finally(() => {
      this.restoring = undefined;
    });
    try {
      await this.restoring;
    } catch (err) {
      throw new UnavailableError(`layer ${this.archive.layerDigest}: ${errorMessage(err)}`, { cause: err });
    }
  }

  private async decompressWhole(kind: FetchKind): Promise<void> {
    const { archive, cache } = this;
    const source = this.source;
    if (!source.stream) throw new UnavailableError('a zstd layer needs the whole blob, and this source only reads ranges');
    const counted = async function* (reader: LayerSpanReader, chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of chunks) {
        reader.fetchedBytes += chunk.length;
        reader.metrics?.fetched(kind, chunk.length, 0);
        yield chunk;
      }
    };
    const { checkpoints } = archive;
    // Spans are cut every spanSize bytes of output: the first checkpoint after 0 gives the size.
    const spanSize = checkpoints.length > 1 ? checkpoints[1]!.uncompressedOffset : Math.max(archive.uncompressedSize, MIN_SPAN_SIZE);
    this.activity.begin();
    try {
      await indexLayer(counted(this, source.stream()), {
        layerDigest: archive.layerDigest,
        mediaType: archive.mediaType,
        compression: 'zstd',
        spanSize,
        expectedSize: archive.compressedSize,
        spanStore: {
          open: async (i) => checkedWriter(await cache.openSpanWriter(archive.layerDigest), archive, i),
        },
      });
      this.metrics?.fetched(kind, 0, archive.spanDigests.length);
    } catch (err) {
      await cache.removeSpans(archive.layerDigest, archive.spanDigests).catch(() => undefined);
      throw err;
    } finally {
      this.activity.end();
    }
  }
}

/** A cache writer for span i that refuses (and drops) the span unless it has the archive's digest. */
function checkedWriter(writer: SpanWriter, archive: ClipArchive, i: number): SpanWriter {
  return {
    write: (chunk) => writer.write(chunk),
    abort: () => writer.abort(),
    commit: async (digest) => {
      const want = archive.spanDigests[i];
      if (digest !== want) {
        await writer.abort();
        throw new DigestMismatchError(`layer ${archive.layerDigest} span ${i}`, want ?? '(no such span)', digest);
      }
      await writer.commit(digest);
    },
  };
}
