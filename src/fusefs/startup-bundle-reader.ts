/**
 * The start-up bundle of a mounted layer (docs/format.md, "Start-up bundles"): the bytes containers read
 * as they started from the layer, fetched with one request as soon as the layer's archive is known,
 * checked against the digests the archive carries, inflated within its declared size and kept in the
 * content cache beside the layer's spans (named by the sha256 of the inflated bytes, so a restarted clip
 * finds it again and it counts against the cache's bounds). Reads whose bytes lie inside one start-up range
 * are answered from it; a read that comes while it is on its way waits for it. When it cannot be had
 * (fetch, check or cache failure, evicted) reads go to spans as before: the bundle only ever saves fetches.
 */
import type { Logger } from 'winston';
import { BundleRanges, type ClipArchive, type StartupBundle } from '../archive';
import { errorMessage } from '../errors';
import { sha256Digest } from '../indexer';
import { spanFileName, type ContentCache } from './content-cache';
import type { ReadMetrics } from './layer-span-reader';

export type BundleOutcome = 'fetched' | 'cached' | 'failed';

/** What the bundle counts (src/metrics); optional. */
export interface BundleMetrics extends Pick<ReadMetrics, 'fetched'> {
  /** A bundle was fetched and checked, found in the cache, or could not be had. */
  startupBundle(outcome: BundleOutcome): void;
  /** A read was answered from a bundle. */
  bundleRead(bytes: number): void;
}

export interface StartupBundleReaderOptions {
  archive: Pick<ClipArchive, 'layerDigest' | 'startupRanges'> & { startupBundle: StartupBundle };
  cache: ContentCache;
  /**
   * The bundle blob as it arrives (one request), or undefined when the bundle may only be used if it is in
   * the cache already (an archive of local provenance).
   */
  fetch?: (signal: AbortSignal) => AsyncIterable<Buffer>;
  /**
   * Inflates and checks the blob against the archive's field as it arrives, counting its bytes
   * (inflateStartupBundle); resolves only once every check passed.
   */
  inflate: (blob: AsyncIterable<Buffer>, bundle: StartupBundle, onChunk: (bytes: number) => void) => Promise<Buffer>;
  logger: Pick<Logger, 'info' | 'warn' | 'debug'>;
  /** Fetching the bundle gives up after this long (default 60 s). */
  timeoutMs?: number;
  /**
   * A read waits at most this long for a bundle on its way before it reads spans instead (default 15 s;
   * keep it below the read timeout, so that the spans still have time).
   */
  waitMs?: number;
  metrics?: BundleMetrics;
}

export class StartupBundleReader {
  private readonly ranges: BundleRanges;
  private readonly bundle: StartupBundle;
  private loading?: Promise<boolean>;
  /** Set once the bundle failed or went missing: reads stop asking. */
  private unusable = false;
  /** Resolves true as soon as checked bytes can be served (from memory while they are written to the cache). */
  private readonly servable: Promise<boolean>;
  private resolveServable!: (ok: boolean) => void;
  /** The checked, inflated bytes, between their check and the end of their cache write. */
  private memory?: Buffer;

  constructor(private readonly opts: StartupBundleReaderOptions) {
    this.bundle = opts.archive.startupBundle;
    this.ranges = new BundleRanges(opts.archive.startupRanges ?? []);
    this.servable = new Promise((resolve) => (this.resolveServable = resolve));
  }

  private get layer(): string {
    return this.opts.archive.layerDigest;
  }

  /** Starts getting the bundle (once); resolves true when it is in the cache, checked. Never rejects. */
  load(): Promise<boolean> {
    this.loading ??= this.get().then(
      (ok) => {
        if (!ok) this.unusable = true;
        this.resolveServable(ok);
        return ok;
      },
      (err: unknown) => {
        this.unusable = true;
        this.resolveServable(false);
        this.opts.metrics?.startupBundle('failed');
        this.opts.logger.warn(`layer ${this.layer}: start-up bundle ${this.bundle.digest}: ${errorMessage(err)}; reading spans instead`);
        return false;
      },
    );
    return this.loading;
  }

  private async get(): Promise<boolean> {
    const { cache, fetch, logger, metrics } = this.opts;
    const name = this.bundle.uncompressedDigest;
    if (cache.isVerified(this.layer, name)) return true;
    const cached = await cache.get(this.layer, name).catch(() => undefined);
    if (cached && (await sha256Digest(cached)) === name) {
      cache.markVerified(this.layer, name);
      metrics?.startupBundle('cached');
      return true;
    }
    if (!fetch) return false;
    const started = Date.now();
    let fetched = 0;
    const data = await this.opts.inflate(fetch(AbortSignal.timeout(this.opts.timeoutMs ?? 60_000)), this.bundle, (n) => (fetched += n));
    metrics?.fetched('bundle', fetched, 0);
    const checkedAt = Date.now();
    this.memory = data;
    this.resolveServable(true);
    try {
      await cache.put(this.layer, name, data);
    } finally {
      this.memory = undefined;
    }
    metrics?.startupBundle('fetched');
    logger.info(
      `layer ${this.layer}: start-up bundle: ${fetched} bytes fetched and checked in ${checkedAt - started} ms, ${data.length} bytes of ` +
        `${this.opts.archive.startupRanges?.length ?? 0} ranges cached ${Date.now() - checkedAt} ms later`,
    );
    return true;
  }

  /** The name of the bundle's file in the layer's cache directory once it is there, checked; undefined if it never will be. */
  async inCache(): Promise<string | undefined> {
    return (await this.load()) && !this.unusable ? spanFileName(this.bundle.uncompressedDigest) : undefined;
  }

  /** The stream ranges the bundle holds, one after another, as [start, end) pairs. */
  rangePairs(): Float64Array {
    return Float64Array.from((this.opts.archive.startupRanges ?? []).flat());
  }

  /** Whether the bundle holds any byte of [start, end) of the stream. */
  overlaps(start: number, end: number): boolean {
    return this.ranges.overlaps(start, end);
  }

  /**
   * The stream bytes [offset, offset + length) from the bundle, when one start-up range holds them all and
   * the bundle is (or becomes, before `signal` aborts) available; otherwise undefined and the caller reads
   * spans.
   */
  async read(offset: number, length: number, signal: AbortSignal): Promise<Buffer | undefined> {
    if (this.unusable) return undefined;
    const at = this.ranges.bundleOffset(offset, length);
    if (at === undefined) return undefined;
    void this.load();
    if (!(await bounded(this.servable, signal, this.opts.waitMs ?? 15_000)) || this.unusable) return undefined;
    if (this.memory) {
      this.opts.metrics?.bundleRead(length);
      return this.memory.subarray(at, at + length);
    }
    const bytes = await this.opts.cache.readSlice(this.layer, this.bundle.uncompressedDigest, at, length).catch(() => undefined);
    if (!bytes) {
      // Evicted (or removed by `clip cache prune`): not fetched again; spans serve the rest.
      this.unusable = true;
      this.opts.logger.debug(`layer ${this.layer}: start-up bundle left the cache; reading spans instead`);
      return undefined;
    }
    this.opts.metrics?.bundleRead(length);
    return bytes;
  }
}

/** `p`, or false once `signal` aborts or `ms` pass first. */
function bounded(p: Promise<boolean>, signal: AbortSignal, ms: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(onAbort, ms);
    signal.addEventListener('abort', onAbort, { once: true });
    void p.then(done);
  });
}
