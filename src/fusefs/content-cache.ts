/**
 * The on-disk content cache: verified uncompressed spans of layers, content-addressed. A span's file is
 * named by the sha256 of its bytes, under the layer it belongs to, so every image sharing a layer shares
 * its bytes, they survive restarts, and a file can only ever be served as the span whose digest it is named
 * after: an archive that expects other bytes for "span 3" asks for another file (docs/security.md).
 *
 *   <dir>/sha256/<layer hex>/<span sha256 hex>
 *
 * A file appears only complete (written to a temporary name, then renamed). A file is served only once
 * this process has written it from bytes it hashed itself, or read it back and checked its hash
 * (markVerified); after that, slices of it are read from the file directly (readSlice), without loading or
 * hashing the whole span again. One ContentCache is shared by everything in the process that reads or fills
 * the cache, so that the indexer's writes count as verified for readers.
 *
 * Bounds (docs/cache.md): every write reserves its disk bytes before they are written, so the cache never
 * holds more than `maxBytes`. Room is made by evicting spans, least recently read first, spans of layers no
 * mount is serving before those of mounted layers (which are fetched again when read). A foreground write
 * (a reader is waiting) may evict any span; a background write (background fetch, cache-while-indexing)
 * only spans of unmounted layers, and none at all once the filesystem has less than `minFreeBytes` free
 * (foreground writes then evict as much as they write).
 * A write that cannot get room fails with CacheFullError and its span is served without being cached.
 * Mounted layers report when the native FUSE server last read each span (trackReads), since reads of cached
 * spans never reach JavaScript.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { CacheFullError, InvalidArgumentError } from '../errors';
import type { SpanWriter } from '../indexer';
import { CacheIndex, diskBytes, monotonicMs, pickVictims, type LayerUsage } from './cache-index';
import { HEX_DIGEST, filesystemSpace, layerDir, scanCache } from './cache-scan';

const LAYER_DIGEST = /^sha256:([0-9a-f]{64})$/;

export interface CacheBounds {
  /** Upper bound of the disk bytes of the cached spans (Infinity: none). */
  maxBytes: number;
  /** Background writes stop while the filesystem has less than this free (0: never). */
  minFreeBytes: number;
}

export interface SpanWriteOptions {
  /** Written for no waiting reader (background fetch, cache-while-indexing): see the bounds above. */
  background?: boolean;
  /**
   * A writer that gets no room drops what it wrote and ignores the rest of the span (commit does nothing)
   * instead of failing: for cache-while-indexing, whose indexing must go on.
   */
  bestEffort?: boolean;
}

/** When a mounted layer's spans were last read: [span digest, monotonicMs] pairs. */
export type ReadTimes = () => Iterable<[string, number]>;

export interface CacheUsage {
  /** Disk bytes of the cached spans. */
  totalBytes: number;
  /** Disk bytes reserved by writes in progress. */
  reservedBytes: number;
  maxBytes: number;
  minFreeBytes: number;
  /** Spans and bytes evicted by this process so far. */
  evictedSpans: number;
  evictedBytes: number;
  layers: Array<LayerUsage & { mounted: boolean }>;
}

/** The file name of a span in its layer's directory: the hex of its sha256 ("sha256:…"). */
export function spanFileName(spanDigest: string): string {
  const m = LAYER_DIGEST.exec(spanDigest);
  if (!m) throw new InvalidArgumentError(`invalid span digest ${JSON.stringify(spanDigest)}`);
  return m[1]!;
}

export class ContentCache {
  /** Per layer digest, the span digests whose cache file this process wrote or checked. */
  private readonly verified = new Map<string, Set<string>>();
  private readonly watchers = new Map<string, Set<(spanDigest: string) => void>>();
  private readonly index = new CacheIndex();
  private readonly bounds: CacheBounds;
  /** Disk bytes reserved by writers that have not committed or aborted yet. */
  private reserved = 0;
  /** Writers in progress per layer (a layer being written is never collected). */
  private readonly writing = new Map<string, number>();
  private readonly readTrackers = new Map<string, Set<ReadTimes>>();
  /** Reservations and evictions, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private evictedSpans = 0;
  private evictedBytes = 0;

  constructor(
    readonly dir: string,
    bounds: Partial<CacheBounds> = {},
    /** Free bytes on the cache's filesystem (a test may pass its own). */
    private readonly freeSpace: () => Promise<number> = async () => (await filesystemSpace(this.dir)).freeBytes,
  ) {
    this.bounds = { maxBytes: bounds.maxBytes ?? Infinity, minFreeBytes: bounds.minFreeBytes ?? 0 };
  }

  /**
   * Learns what the directory holds (sizes; files written earlier count as read when last modified),
   * removes temporary files left by a process that died mid-write, and evicts down to maxBytes. For the
   * process that owns the directory (the daemon, which holds the root's lock), before it serves anything.
   */
  async load(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const scan = await scanCache(this.dir);
    for (const file of scan.temporary) await fsp.rm(file, { force: true });
    const now = monotonicMs();
    const wallNow = Date.now();
    for (const s of scan.spans) this.index.add(s.layer, s.span, s.bytes, now - (wallNow - s.mtimeMs));
    await this.reserve(0, false);
  }

  /** What the cache holds now, per layer (for `clip status`, metrics and logs). */
  usage(): CacheUsage {
    return {
      totalBytes: this.index.totalBytes,
      reservedBytes: this.reserved,
      maxBytes: this.bounds.maxBytes,
      minFreeBytes: this.bounds.minFreeBytes,
      evictedSpans: this.evictedSpans,
      evictedBytes: this.evictedBytes,
      layers: this.index.usage().map((l) => ({ ...l, mounted: this.isMounted(l.digest) })),
    };
  }

  /** Layers with spans in the cache. */
  layerDigests(): string[] {
    return this.index.layerDigests();
  }

  /**
   * Registers a mounted layer's source of read times (the native server's), until the returned function is
   * called. A layer with such a source counts as mounted for eviction.
   */
  trackReads(layerDigest: string, readTimes: ReadTimes): () => void {
    let set = this.readTrackers.get(layerDigest);
    if (!set) this.readTrackers.set(layerDigest, (set = new Set()));
    set.add(readTimes);
    return () => {
      set.delete(readTimes);
      if (set.size === 0 && this.readTrackers.get(layerDigest) === set) this.readTrackers.delete(layerDigest);
    };
  }

  isMounted(layerDigest: string): boolean {
    return this.readTrackers.has(layerDigest);
  }

  /** Whether a layer is mounted or being written: its spans must not be collected. */
  isInUse(layerDigest: string): boolean {
    return this.isMounted(layerDigest) || this.writing.has(layerDigest);
  }

  /** Forgets layers whose directory another process removed (`clip cache prune`). */
  async forgetVanished(): Promise<void> {
    const present = new Set((await scanCache(this.dir)).layers);
    for (const layer of this.index.layerDigests()) {
      if (!present.has(layer)) {
        this.index.removeLayer(layer);
        this.forget(layer);
      }
    }
  }

  /**
   * Whether a background write of `bytes` would get room now (without evicting spans of mounted layers,
   * and leaving minFreeBytes free): checked before fetching a span only to cache it.
   */
  async hasRoomFor(bytes: number): Promise<boolean> {
    if (!this.fitsBesideMounted(bytes)) return false;
    return this.bounds.minFreeBytes === 0 || (await this.freeSpace().catch(() => Infinity)) - diskBytes(bytes) >= this.bounds.minFreeBytes;
  }

  /** Whether spans of these lengths fit in the cache at once, all else evicted (a zstd layer must). */
  canHoldAtOnce(spanLengths: number[]): boolean {
    return spanLengths.reduce((n, length) => n + diskBytes(length), 0) <= this.bounds.maxBytes;
  }

  /**
   * Whether `bytes` fit within maxBytes without evicting spans of mounted layers (free space aside): what
   * a speculative load (read-ahead) may take without pushing out spans a container may read next.
   */
  fitsBesideMounted(bytes: number): boolean {
    const need = diskBytes(bytes);
    if (need > this.bounds.maxBytes) return false;
    const over = this.index.totalBytes + this.reserved + need - this.bounds.maxBytes;
    if (over <= 0) return true;
    let evictable = 0;
    for (const s of this.index.spans()) if (!this.isMounted(s.layer)) evictable += s.bytes;
    return evictable >= over;
  }

  /** Runs fn after every reservation queued before it. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Reserves `bytes` of disk for a write, evicting spans to make room; false when there is no room (the
   * span does not fit at all, or a background write finds too little free space or only mounted layers'
   * spans to evict).
   */
  private reserve(bytes: number, background: boolean): Promise<boolean> {
    const { maxBytes, minFreeBytes } = this.bounds;
    if (maxBytes === Infinity && minFreeBytes === 0) {
      this.reserved += bytes;
      return Promise.resolve(true);
    }
    return this.serialized(async () => {
      if (bytes > maxBytes) return false;
      const overMax = this.index.totalBytes + this.reserved + bytes - maxBytes;
      let need = overMax;
      if (minFreeBytes > 0) {
        const short = minFreeBytes + bytes - (await this.freeSpace().catch(() => Infinity));
        // Below the reserve: background writes stop; foreground ones evict as much as they write, so the
        // cache does not grow while the filesystem is short of space (and is not emptied either when
        // something else filled it).
        if (short > 0 && background) return false;
        if (short > 0) need = Math.max(need, bytes);
      }
      if (need > 0) {
        this.refreshReadTimes();
        const victims = pickVictims(this.index.spans(), need, (layer) => this.isMounted(layer), { unmountedOnly: background });
        const freed = victims.reduce((sum, v) => sum + v.bytes, 0);
        if (freed < overMax) return false;
        for (const v of victims) await this.evict(v.layer, v.span, v.bytes);
      }
      this.reserved += bytes;
      return true;
    });
  }

  private async evict(layer: string, span: string, bytes: number): Promise<void> {
    this.index.remove(layer, span);
    this.forget(layer, span);
    await fsp.rm(this.spanFile(layer, span), { force: true });
    this.evictedSpans++;
    this.evictedBytes += bytes;
  }

  /** Copies the native servers' read times of mounted layers into the index. */
  private refreshReadTimes(): void {
    for (const [layer, trackers] of this.readTrackers) {
      for (const readTimes of trackers) for (const [span, when] of readTimes()) if (when > 0) this.index.noteRead(layer, span, when);
    }
  }

  private noteRead(layerDigest: string, spanDigest: string): void {
    this.index.noteRead(layerDigest, spanDigest, monotonicMs());
  }

  /** Whether the file of the span with this digest was written or checked by this process. */
  isVerified(layerDigest: string, spanDigest: string): boolean {
    return this.verified.get(layerDigest)?.has(spanDigest) ?? false;
  }

  /** Records that the span's file holds bytes hashing to `spanDigest` (the caller hashed them). */
  markVerified(layerDigest: string, spanDigest: string): void {
    let set = this.verified.get(layerDigest);
    if (!set) this.verified.set(layerDigest, (set = new Set()));
    if (set.has(spanDigest)) return;
    set.add(spanDigest);
    for (const watcher of this.watchers.get(layerDigest) ?? []) watcher(spanDigest);
  }

  /**
   * Calls `onVerified` for every span digest of the layer verified so far and for each one verified later,
   * until the returned function is called. (A span may be forgotten again if its file goes missing; readers
   * of the file must cope with that, as readSlice does.)
   */
  watchVerified(layerDigest: string, onVerified: (spanDigest: string) => void): () => void {
    let set = this.watchers.get(layerDigest);
    if (!set) this.watchers.set(layerDigest, (set = new Set()));
    set.add(onVerified);
    for (const digest of this.verified.get(layerDigest) ?? []) onVerified(digest);
    return () => {
      set.delete(onVerified);
      if (set.size === 0 && this.watchers.get(layerDigest) === set) this.watchers.delete(layerDigest);
    };
  }

  private forget(layerDigest: string, spanDigest?: string): void {
    if (spanDigest === undefined) this.verified.delete(layerDigest);
    else this.verified.get(layerDigest)?.delete(spanDigest);
  }

  /** Where a layer's span files live (each named by spanFileName). */
  spanDir(layerDigest: string): string {
    const m = LAYER_DIGEST.exec(layerDigest);
    if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
    return layerDir(this.dir, layerDigest);
  }

  private spanFile(layerDigest: string, spanDigest: string): string {
    return path.join(this.spanDir(layerDigest), spanFileName(spanDigest));
  }

  /** The cached file of the span with this digest, unchecked, or undefined when it is not cached. */
  async get(layerDigest: string, spanDigest: string): Promise<Buffer | undefined> {
    try {
      const data = await fsp.readFile(this.spanFile(layerDigest, spanDigest));
      this.noteRead(layerDigest, spanDigest);
      return data;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.forget(layerDigest, spanDigest);
        this.index.remove(layerDigest, spanDigest);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Bytes [from, from + length) of a span verified by this process (see isVerified), read from its file
   * alone; undefined when the span is not verified or its file is gone or short (then it is loaded whole
   * and checked again).
   */
  async readSlice(layerDigest: string, spanDigest: string, from: number, length: number): Promise<Buffer | undefined> {
    if (!this.isVerified(layerDigest, spanDigest)) return undefined;
    let file: fsp.FileHandle | undefined;
    try {
      file = await fsp.open(this.spanFile(layerDigest, spanDigest), 'r');
      const out = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await file.read(out, got, length - got, from + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === length) {
        this.noteRead(layerDigest, spanDigest);
        return out;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.index.remove(layerDigest, spanDigest); // gone (evicted by `clip cache prune`): no longer counted
    } finally {
      await file?.close();
    }
    this.forget(layerDigest, spanDigest);
    return undefined;
  }

  async has(layerDigest: string, spanDigest: string): Promise<boolean> {
    return fsp.access(this.spanFile(layerDigest, spanDigest)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores a span atomically under its digest; a concurrent put of the same span is harmless (same bytes).
   * `spanDigest` must be the sha256 of `data`, as the caller checked (decoded and verified, or hashed as
   * the bytes passed): the span counts as verified from then on.
   */
  async put(layerDigest: string, spanDigest: string, data: Buffer, options: { background?: boolean } = {}): Promise<void> {
    const writer = await this.openSpanWriter(layerDigest, options);
    try {
      await writer.write(data);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit(spanDigest);
  }

  /**
   * Streams a span of a layer into the cache: the bytes go to a temporary file, which commit(digest)
   * renames to the digest's name (and counts as verified: the caller hashed exactly the bytes it wrote)
   * and abort() removes. Disk space is reserved before each chunk is written; a write that gets none
   * fails with CacheFullError (or, bestEffort, drops the span).
   */
  async openSpanWriter(layerDigest: string, options: SpanWriteOptions = {}): Promise<SpanWriter> {
    const dir = this.spanDir(layerDigest);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    const file = await fsp.open(tmp, 'wx', 0o600);
    this.writing.set(layerDigest, (this.writing.get(layerDigest) ?? 0) + 1);
    let size = 0;
    let reserved = 0;
    let closed = false;
    let dropped = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      const left = (this.writing.get(layerDigest) ?? 1) - 1;
      if (left > 0) this.writing.set(layerDigest, left);
      else this.writing.delete(layerDigest);
      await file.close();
    };
    const release = (): void => {
      this.reserved -= reserved;
      reserved = 0;
    };
    const discard = async (): Promise<void> => {
      release();
      await close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
    };
    return {
      write: async (chunk) => {
        if (dropped) return;
        if (closed) throw new InvalidArgumentError(`span of ${layerDigest}: written after commit or abort`);
        const need = diskBytes(size + chunk.length) - reserved;
        if (need > 0) {
          if (!(await this.reserve(need, options.background === true))) {
            await discard();
            if (options.bestEffort) {
              dropped = true;
              return;
            }
            throw new CacheFullError(`content cache: no room for a span of ${layerDigest} (${this.describeBounds()})`);
          }
          reserved += need;
        }
        const position = size;
        size += chunk.length;
        for (let done = 0; done < chunk.length; ) {
          done += (await file.write(chunk, done, chunk.length - done, position + done)).bytesWritten;
        }
      },
      // No fsync: a file read back from the cache is checked against its digest before it is served, so
      // a file torn by a power loss is fetched again. The rename keeps readers from seeing partial files.
      commit: async (spanDigest) => {
        if (dropped) return;
        try {
          const target = this.spanFile(layerDigest, spanDigest);
          await close();
          await fsp.rename(tmp, target);
        } catch (err) {
          await discard().catch(() => undefined);
          throw err;
        }
        // The reservation becomes the span's entry: the bytes are counted all along.
        this.index.add(layerDigest, spanDigest, diskBytes(size), monotonicMs());
        release();
        this.markVerified(layerDigest, spanDigest);
      },
      abort: async () => {
        if (!dropped) await discard();
      },
    };
  }

  private describeBounds(): string {
    const mib = (n: number): string => (n === Infinity ? 'unbounded' : `${(n / 1048576).toFixed(1)} MiB`);
    return `max_size ${mib(this.bounds.maxBytes)}, holding ${mib(this.index.totalBytes)}, min_free ${mib(this.bounds.minFreeBytes)}`;
  }

  /** Digests ("sha256:…") of the spans of a layer that are cached. */
  async cachedSpans(layerDigest: string): Promise<Set<string>> {
    const names = await fsp.readdir(this.spanDir(layerDigest)).catch(() => [] as string[]);
    return new Set(names.filter((n) => HEX_DIGEST.test(n)).map((n) => `sha256:${n}`));
  }

  /** Drops every cached span of a layer. */
  async removeLayer(layerDigest: string): Promise<void> {
    this.forget(layerDigest);
    this.index.removeLayer(layerDigest);
    await fsp.rm(this.spanDir(layerDigest), { recursive: true, force: true });
  }

  /**
   * Removes span files named by index (`<layer>/<i>`), as clip wrote them before the cache was
   * content-addressed: they are never read again. Returns how many were removed.
   */
  async removeIndexNamedSpans(): Promise<number> {
    const root = path.join(this.dir, 'sha256');
    let removed = 0;
    for (const layer of await fsp.readdir(root).catch(() => [] as string[])) {
      if (!HEX_DIGEST.test(layer)) continue;
      for (const name of await fsp.readdir(path.join(root, layer)).catch(() => [] as string[])) {
        if (!/^[0-9]+$/.test(name)) continue;
        await fsp.rm(path.join(root, layer, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Drops the cached files of these spans of a layer (a failed zstd restore, for example). */
  async removeSpans(layerDigest: string, spanDigests: Iterable<string>): Promise<void> {
    for (const digest of spanDigests) {
      this.forget(layerDigest, digest);
      this.index.remove(layerDigest, digest);
      await fsp.rm(this.spanFile(layerDigest, digest), { force: true });
    }
  }
}
