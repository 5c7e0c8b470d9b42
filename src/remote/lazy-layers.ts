/**
 * RemoteLayers for the snapshotter: serves a layer named by containerd's CRI labels lazily. The layer's
 * clip archive comes from the archive store, else from an archive published in the registry for the image
 * (cri.manifest-digest; published-archives.ts) if the trust policy vouches for it, else it is built from the
 * layer; with `verifyPublished`, a published archive is checked against the layer's real bytes once it is
 * mounted (archive-verifier.ts); the layer is mounted through
 * FUSE, its bytes read through the content cache, and (optionally) the rest of it fetched in the
 * background. A start-up profile in the archive is replayed at mount; without one, a profile is recorded
 * (startup-profile.ts). When the first layer of an image is prepared, the image's other layers are indexed in
 * parallel, since containerd prepares them one after another.
 */
import type { Logger } from 'winston';
import { createHash } from 'node:crypto';
import type { ArchiveLimits, ClipArchive } from '../archive';
import type { IndexLimits } from '../indexer';
import { NotImplementedError, errorMessage } from '../errors';
import { BackgroundFetcher } from '../fusefs/background-fetcher';
import { ContentCache } from '../fusefs/content-cache';
import { ForegroundActivity, LayerSpanReader, type ReadMetrics } from '../fusefs/layer-span-reader';
import { LayerFilesystem, forceUnmount, listFuseMounts } from '../fusefs';
import type { MountHandOff } from '../fusefs/mount-handoff';
import { StartupBundleReader, type BundleMetrics } from '../fusefs/startup-bundle-reader';
import { RegistryClient } from '../registry';
import {
  LABEL_CRI_IMAGE_LAYERS,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
} from '../snapshotter/labels';
import { RemoteLayers, type RemoteLayerInfo, type RemoteMountOptions } from '../snapshotter/remote-layers';
import { Labels } from '../snapshotter/types';
import { LOCAL, TrustPolicy, type ArchiveProvenance } from '../trust';
import type { ArchivePublishing } from './archive-publisher';
import { ArchiveStore, type StoredArchive } from './archive-store';
import { ArchiveVerifier } from './archive-verifier';
import { type IndexMetrics, LayerIndexer, LayerLocation } from './layer-indexer';
import { LazyBlobSource } from './lazy-blob-source';
import { Limiter } from './limiter';
import { PublishedArchives } from './published-archives';
import { ProfileRecorder, replayProfile } from './startup-profile';
import { STARTUP_BUNDLE_MEDIA_TYPE, inflateStartupBundle } from './startup-bundle-blob';

export interface LazyLayersOptions {
  registry: RegistryClient;
  archives: ArchiveStore;
  cache: ContentCache;
  logger: Logger;
  spanSize: number;
  cacheWhileIndexing: boolean;
  backgroundFetch: boolean;
  prefetchImageLayers: boolean;
  indexConcurrency: number;
  readTimeoutMs: number;
  /** Look for archives published in the registry before indexing a layer (default true; used only if `policy` trusts some). */
  publishedArchives?: boolean;
  /** Who may describe a layer besides this node (default: nobody; the archive store must use the same policy). */
  policy?: TrustPolicy;
  /** Check each published archive against its layer's real bytes once the layer is mounted (default false). */
  verifyPublished?: boolean;
  /** Limits on the layers indexed here (docs/limits.md). */
  limits?: Partial<IndexLimits>;
  /** Limits on archives taken from a registry; maxBytes is the largest one downloaded. */
  archiveLimits?: Partial<ArchiveLimits>;
  /** Record start-up profiles of mounted layers and replay recorded ones (default true). */
  startupProfiles?: boolean;
  /** Use the start-up bundles of archives (default true). */
  startupBundles?: boolean;
  /** Hand layer mounts to the next clip process and take over those of an earlier one (live restart). */
  handOff?: MountHandOff;
  /** Counts fetches, cache lookups, start-up bundles and indexing (metrics). */
  metrics?: ReadMetrics & IndexMetrics & BundleMetrics;
  /** Told when this node indexed a layer or recorded its start-up profile ([lazy] auto_publish). */
  publisher?: ArchivePublishing;
}

/** What `clip status` shows of a mounted layer. */
export interface MountedLayerState {
  /** Uncompressed size of the layer (its tar stream). */
  uncompressedBytes: number;
  spans: number;
  /** The layer's archive carries a start-up profile. */
  startupProfile: boolean;
  provenance: ArchiveProvenance;
}

interface MountedLayer {
  fs: LayerFilesystem;
  reader: LayerSpanReader;
  release: () => void;
  recorder?: ProfileRecorder;
  provenance: ArchiveProvenance;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export class LazyLayers implements RemoteLayers {
  private readonly mounted = new Map<string, MountedLayer>();
  private readonly indexer: LayerIndexer;
  private readonly limiter: Limiter;
  private readonly activity = new ForegroundActivity();
  private readonly fetcher: BackgroundFetcher;
  private readonly published?: PublishedArchives;
  private readonly verifier?: ArchiveVerifier;
  private readonly readers = new Map<string, LayerSpanReader>();
  /** Layers whose start-up profile this process has fetched (or is fetching). */
  private readonly replayed = new Set<string>();

  constructor(private readonly opts: LazyLayersOptions) {
    this.indexer = new LayerIndexer(opts);
    const policy = opts.policy ?? TrustPolicy.localOnly();
    if (opts.publishedArchives !== false && policy.trustsPublished) {
      this.published = new PublishedArchives({
        registry: opts.registry,
        logger: opts.logger,
        policy,
        limits: opts.archiveLimits,
        isDistrusted: (digest) => opts.archives.isDistrusted(digest),
      });
      if (opts.verifyPublished) {
        this.verifier = new ArchiveVerifier({ indexer: this.indexer, archives: opts.archives, cache: opts.cache, activity: this.activity, logger: opts.logger });
      }
    }
    this.limiter = new Limiter(opts.indexConcurrency);
    this.fetcher = new BackgroundFetcher(this.activity, opts.logger);
  }

  canServe(labels: Labels): boolean {
    return Boolean(labels[LABEL_CRI_IMAGE_REF]) && DIGEST.test(labels[LABEL_CRI_LAYER_DIGEST] ?? '');
  }

  async mount(dir: string, labels: Labels, options: RemoteMountOptions = {}): Promise<RemoteLayerInfo> {
    const where: LayerLocation = {
      imageRef: labels[LABEL_CRI_IMAGE_REF]!,
      layerDigest: labels[LABEL_CRI_LAYER_DIGEST]!,
      manifestDigest: labels[LABEL_CRI_MANIFEST_DIGEST] || undefined,
    };
    if (this.opts.prefetchImageLayers) this.indexImageLayers(where, labels[LABEL_CRI_IMAGE_LAYERS] ?? '');
    const started = performance.now();
    // Pinned before it is fetched or built: storing another layer's archive (the remounts after a restart
    // run side by side) must not evict this one between its store and its mount.
    const release = this.opts.archives.pin(where.layerDigest);
    let stored: StoredArchive;
    try {
      stored = await this.archiveOf(where, options.signal);
    } catch (err) {
      release();
      // A mount handed over for this directory cannot be served without its archive.
      await this.opts.handOff?.abandonDir(dir, errorMessage(err));
      throw err;
    }
    const { archive } = stored;
    if (archive.compression === 'zstd' && !options.remount && !this.opts.cache.canHoldAtOnce(spanLengths(archive))) {
      release();
      // Its reads would fail with EIO once the cache could not take the whole layer; containerd unpacks it.
      throw new NotImplementedError(
        `layer ${where.layerDigest} is zstd, which is served only from the content cache as a whole, and its ${archive.uncompressedSize} bytes do not fit in [cache] max_size (${this.opts.cache.usage().maxBytes} bytes)`,
      );
    }
    const reader = this.readerFor(where, archive);
    this.startBundle(where, stored, reader);
    const { logger, readTimeoutMs, handOff } = this.opts;
    let fs: LayerFilesystem;
    try {
      fs = new LayerFilesystem(archive, reader, { logger, readTimeoutMs, handOff });
      if (archive.compression === 'zstd') await this.fillWhole(reader, options.remount === true);
      const ready = performance.now();
      await fs.mount(dir);
      this.opts.logger.debug(`layer ${where.layerDigest}: archive ready after ${msSince(started, ready)}, mounted after ${msSince(ready)} more`);
    } catch (err) {
      release();
      await handOff?.abandonDir(dir, errorMessage(err));
      throw err;
    }
    let recorder: ProfileRecorder | undefined;
    if (this.opts.startupProfiles !== false) {
      if (archive.startupSpans?.length) this.replay(where, archive);
      else {
        // A profile recorded on an archive this node indexed is published with it (auto_publish).
        const onSaved = stored.provenance.source === 'local' ? () => this.opts.publisher?.schedule(where) : undefined;
        recorder = new ProfileRecorder(stored, fs, this.opts.archives, this.opts.logger, onSaved);
      }
    }
    this.mounted.set(dir, { fs, reader, release, recorder, provenance: stored.provenance });
    // After a restart: what an earlier process indexed or profiled but had not published yet (a profile
    // stored as it stopped, a publish that failed) is published now; one already there is not pushed again.
    if (options.remount && stored.provenance.source === 'local') this.opts.publisher?.schedule(where);
    if (this.verifier && stored.provenance.source !== 'local') this.verifier.add(where, stored);
    else if (this.opts.backgroundFetch) this.fetcher.add(reader);
    return { diffId: archive.diffId };
  }

  /** How many layer mounts this process serves. */
  get mountedCount(): number {
    return this.mounted.size;
  }

  /** The mounted layer on `dir`, for status, or undefined when nothing is mounted there. */
  describe(dir: string): MountedLayerState | undefined {
    const layer = this.mounted.get(dir);
    if (!layer) return undefined;
    const { archive } = layer.reader;
    return {
      uncompressedBytes: archive.uncompressedSize,
      spans: archive.checkpoints.length,
      startupProfile: (archive.startupSpans?.length ?? 0) > 0,
      provenance: layer.provenance,
    };
  }

  async unmount(dir: string): Promise<void> {
    const layer = this.mounted.get(dir);
    if (!layer) return;
    this.mounted.delete(dir);
    // Another mount of the same layer (under another parent) shares the reader and keeps it going.
    const shared = [...this.mounted.values()].some((m) => m.reader === layer.reader);
    if (!shared) {
      this.fetcher.remove(layer.reader);
      this.readers.delete(readerKey(layer.reader.archive));
    }
    try {
      await layer.fs.unmount();
    } finally {
      await layer.recorder?.stop();
      layer.release();
    }
  }

  async unmountAll(root: string, options: { keepHandedOver?: boolean } = {}): Promise<number> {
    const { handOff } = this.opts;
    if (handOff && !options.keepHandedOver) await handOff.abandonWaiting('its snapshot is gone', root);
    const stale = (await listFuseMounts(root))
      .filter((m) => !handOff?.isWaiting(m))
      .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
    // A stale connection may still be held by a process that inherited it; aborting it first means the
    // unmount cannot hang on a server that no longer exists.
    for (const m of stale) await forceUnmount(m.mountPoint, { abortConnection: true });
    return stale.length;
  }

  async endTakeOver(): Promise<void> {
    const left = await this.opts.handOff?.abandonWaiting('no snapshot of this clip uses it');
    if (left) this.opts.logger.warn(`${left} handed-over layer mounts had no snapshot to serve and were unmounted`);
  }

  /**
   * Stops background work. With a hand-off the mounts stay (the next clip process serves them: reads
   * meanwhile wait in the kernel); otherwise every layer this process mounted is unmounted.
   */
  async close(): Promise<void> {
    await this.verifier?.stop();
    await this.fetcher.stop();
    if (this.opts.handOff) {
      for (const layer of this.mounted.values()) await layer.recorder?.stop();
      return;
    }
    for (const dir of [...this.mounted.keys()]) {
      await this.unmount(dir).catch((err: unknown) => this.opts.logger.warn(`unmount ${dir}: ${errorMessage(err)}`));
    }
  }

  /** Archive store → trusted published archive → indexing the layer. */
  private archiveOf(where: LayerLocation, signal?: AbortSignal): Promise<StoredArchive> {
    return this.opts.archives.getOrBuild(
      where.layerDigest,
      async (buildSignal) => {
        const started = performance.now();
        const published = await this.published?.find(where);
        if (published) {
          this.opts.logger.debug(`layer ${where.layerDigest}: published archive fetched and checked in ${msSince(started)}; storing it`);
          return published;
        }
        const archive = await this.limiter.run(() => this.indexer.index(where, { signal: buildSignal }), buildSignal);
        // Published once it is stored and the image's other layers have settled (archive-publisher.ts).
        this.opts.publisher?.schedule(where);
        return { archive, provenance: LOCAL as ArchiveProvenance };
      },
      signal,
    );
  }

  /**
   * A zstd layer cannot be read by range: all of it must be in the cache before anything reads it. A
   * remount at start-up must not hold the daemon up, so there it is filled in the background (a read
   * meanwhile waits for it) and a failure is only logged.
   */
  private async fillWhole(reader: LayerSpanReader, background: boolean): Promise<void> {
    const whole = reader.ensureWhole();
    if (!background) return whole;
    whole.catch((err: unknown) => this.opts.logger.warn(`layer ${reader.layerDigest}: ${errorMessage(err)}`));
  }

  /**
   * The one reader of a layer's spans in this process (mounts and profile replays share it, so that a
   * span is never fetched twice at once).
   */
  private readerFor(where: LayerLocation, archive: ClipArchive): LayerSpanReader {
    const key = readerKey(archive);
    let reader = this.readers.get(key);
    if (!reader) {
      reader = new LayerSpanReader({
        archive,
        source: new LazyBlobSource(this.opts.registry, where.imageRef, where.layerDigest, archive.compressedSize),
        cache: this.opts.cache,
        activity: this.activity,
        logger: this.opts.logger,
        metrics: this.opts.metrics,
      });
      this.readers.set(key, reader);
    }
    return reader;
  }

  /**
   * Starts getting the layer's start-up bundle, once per reader, as soon as its archive is known: fetched
   * from the registry when a trusted publisher vouches for the archive (and so for the bundle's digests in
   * it), taken from the cache only when the archive is this node's own (a bundle it fetched before).
   */
  private startBundle(where: LayerLocation, stored: StoredArchive, reader: LayerSpanReader): void {
    const { archive, provenance } = stored;
    const bundle = archive.startupBundle;
    if (!bundle || reader.startupBundle || this.opts.startupBundles === false) return;
    const { registry, cache, logger, metrics, readTimeoutMs } = this.opts;
    const blob = { mediaType: STARTUP_BUNDLE_MEDIA_TYPE, digest: bundle.digest, size: bundle.compressedSize };
    const fetch =
      provenance.source === 'local'
        ? undefined
        : async function* (signal: AbortSignal): AsyncGenerator<Buffer> {
            // The archive gives the size (checked with the digest as the bytes arrive): one GET, no HEAD first.
            const remote = await registry.openBlob(where.imageRef, blob.digest, { signal, size: blob.size });
            yield* remote.stream({ signal });
          };
    const bundleReader = new StartupBundleReader({
      // Only what the bundle needs: spreading the archive would read its entries, which a decoded archive
      // decodes in JavaScript when first read (~100 ms for 8000 entries in a cold process).
      archive: { layerDigest: archive.layerDigest, startupRanges: archive.startupRanges, startupBundle: bundle },
      cache,
      fetch,
      inflate: inflateStartupBundle,
      logger,
      metrics,
      waitMs: Math.floor(readTimeoutMs / 2),
    });
    reader.setBundle(bundleReader);
    void bundleReader.load();
  }

  /** Fetches the spans of the layer's start-up profile, once per layer and process. */
  private replay(where: LayerLocation, archive: ClipArchive): void {
    if (this.replayed.has(where.layerDigest)) return;
    this.replayed.add(where.layerDigest);
    const { logger } = this.opts;
    replayProfile(archive, this.readerFor(where, archive), logger).catch((err: unknown) =>
      logger.warn(`layer ${where.layerDigest}: start-up profile: ${errorMessage(err)}`),
    );
  }

  /**
   * Starts getting the image's other layers (cri.image-layers) ready in the background: their archives
   * (indexing them if need be) and, as soon as an archive with a start-up profile is there, its spans,
   * before containerd gets to prepare that layer.
   */
  private indexImageLayers(where: LayerLocation, imageLayers: string): void {
    for (const digest of imageLayers.split(',').map((d) => d.trim())) {
      if (!DIGEST.test(digest) || digest === where.layerDigest) continue;
      const layer = { ...where, layerDigest: digest };
      this.archiveOf(layer).then(
        (stored) => {
          const { archive } = stored;
          this.startBundle(layer, stored, this.readerFor(layer, archive));
          if (this.opts.startupProfiles !== false && archive.startupSpans?.length) this.replay(layer, archive);
        },
        (err: unknown) => this.opts.logger.warn(`background indexing of layer ${digest}: ${errorMessage(err)}`),
      );
    }
  }
}

/**
 * Readers are shared per layer and span table: two archives of one layer with different spans (a published
 * one and a local one) never share a reader, so neither is served the other's idea of a span.
 */
function readerKey(archive: ClipArchive): string {
  const spans = createHash('sha256');
  for (const c of archive.checkpoints) spans.update(`${c.uncompressedOffset},`);
  spans.update(archive.spanDigests.join(','));
  return `${archive.layerDigest}/${archive.compression}/${spans.digest('hex')}`;
}

/** "12 ms": the time from `start` to `end` (default now), for debug lines. */
function msSince(start: number, end = performance.now()): string {
  return `${(end - start).toFixed(0)} ms`;
}

/** The uncompressed length of each span of a layer (spanRange refuses zstd layers, which this is for). */
function spanLengths(archive: ClipArchive): number[] {
  const { checkpoints, uncompressedSize } = archive;
  return checkpoints.map((c, i) => (checkpoints[i + 1]?.uncompressedOffset ?? uncompressedSize) - c.uncompressedOffset);
}
