/**
 * clip's Prometheus metrics (docs/metrics.md lists every family). One ClipMetrics is made by the daemon
 * when [metrics] address is set and passed to the parts that count things; without it they count nothing
 * (an optional call that is skipped). Values that are state rather than events (bytes on disk, mounted
 * layers, hung reads, the FUSE servers' counters) are read on scrape from the sources the daemon gives.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { fuseStats, setFuseStats } from '../fusefs/layer-server';
import type { FetchKind } from '../fusefs/layer-span-reader';
import type { BundleOutcome } from '../fusefs/startup-bundle-reader';
import { PUBLISH_OUTCOMES, type PublishOutcome } from '../remote/archive-publisher';
import { FALLBACK_REASONS, type FallbackReason } from '../snapshotter/fallback-reason';
import { type Family, fuseFamilies, FUSE_DURATION, FUSE_ERRORS } from './fuse-families';
import { type RequestOutcome, registryStatusLabel } from './status-label';

export const FETCH_KINDS: readonly FetchKind[] = ['foreground', 'prefetch', 'profile', 'background', 'bundle'];
const BUNDLE_OUTCOMES: readonly BundleOutcome[] = ['fetched', 'cached', 'failed'];
export type PrepareOutcome = 'remote' | 'fallback' | 'local';

/** State read on scrape. */
export interface MetricSources {
  archiveStoreBytes(): Promise<number>;
  contentCacheBytes(): Promise<number>;
  mountedLayers(): number;
  /** Reads waiting longer than `ms` for their bytes. */
  readsWaitingLongerThan(ms: number): number;
}

/** A read waiting this long counts as hung (clip_fuse_hung_reads). */
export const HUNG_READ_MS = 10_000;
/** Disk usage is measured at most this often (a walk of the stores). */
const DISK_USAGE_MAX_AGE_MS = 15_000;

/** A family computed on scrape, registered with prom-client's registry as any metric is. */
class ComputedFamily {
  constructor(
    readonly name: string,
    private readonly compute: () => Family,
  ) {}

  get(): Family {
    return this.compute();
  }
}

export class ClipMetrics {
  readonly registry = new Registry();
  private sources?: MetricSources;
  private readonly fetchedBytes: Counter<'kind'>;
  private readonly fetchedSpans: Counter<'kind'>;
  private readonly startupBundles: Counter<'outcome'>;
  private readonly bundleReadBytes: Counter;
  private readonly cacheHits: Counter;
  private readonly cacheMisses: Counter;
  private readonly registryDuration: Histogram;
  private readonly registryResponses: Counter<'status'>;
  private readonly prepares: Counter<'outcome' | 'reason'>;
  private readonly indexBytes: Counter;
  private readonly indexSeconds: Counter;
  private readonly indexedLayers: Counter;
  private readonly autoPublishes: Counter<'outcome' | 'reason'>;
  private disk?: { at: number; archives: number; cache: number };
  private nativeHitsSeen = 0;

  constructor(build: { version: string; commit: string }) {
    const registers = [this.registry];
    // prom-client calls a gauge's collect with the gauge as `this`.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const info = new Gauge({ name: 'clip_build_info', help: 'Always 1; the version and commit of the running clip.', labelNames: ['version', 'commit'], registers });
    info.set(build, 1);
    this.fetchedBytes = new Counter({
      name: 'clip_fetched_bytes_total',
      help: 'Compressed layer bytes fetched from registries to serve reads, by why they were fetched.',
      labelNames: ['kind'],
      registers,
    });
    this.fetchedSpans = new Counter({ name: 'clip_fetched_spans_total', help: 'Spans fetched from registries, by why they were fetched.', labelNames: ['kind'], registers });
    for (const kind of FETCH_KINDS) {
      this.fetchedBytes.inc({ kind }, 0);
      this.fetchedSpans.inc({ kind }, 0);
    }
    this.startupBundles = new Counter({
      name: 'clip_startup_bundles_total',
      help: 'Start-up bundles of mounted layers: fetched and checked, found in the cache, or failed (reads then go to spans).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of BUNDLE_OUTCOMES) this.startupBundles.inc({ outcome }, 0);
    this.bundleReadBytes = new Counter({ name: 'clip_startup_bundle_read_bytes_total', help: 'Bytes of reads answered from start-up bundles.', registers });
    this.cacheHits = new Counter({
      name: 'clip_content_cache_hits_total',
      help: 'Reads answered from the content cache: FUSE reads the native server answered from cache files, and span loads found in the cache.',
      registers,
      collect: () => this.collectNativeHits(),
    });
    this.cacheMisses = new Counter({ name: 'clip_content_cache_misses_total', help: 'Span loads not found in the content cache (fetched from the registry).', registers });
    this.registryDuration = new Histogram({
      name: 'clip_registry_request_duration_seconds',
      help: 'Registry request attempts: time to the response headers (or to the failure).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.registryResponses = new Counter({
      name: 'clip_registry_responses_total',
      help: 'Registry request attempts by HTTP status, or "network"/"timeout" when no response came.',
      labelNames: ['status'],
      registers,
    });
    this.prepares = new Counter({
      name: 'clip_prepare_total',
      help: 'Prepare calls: layers served lazily (remote), falling back to containerd unpacking (fallback, with the reason), or plain snapshots (local).',
      labelNames: ['outcome', 'reason'],
      registers,
    });
    this.prepares.inc({ outcome: 'remote', reason: '' }, 0);
    this.prepares.inc({ outcome: 'local', reason: '' }, 0);
    for (const reason of FALLBACK_REASONS) this.prepares.inc({ outcome: 'fallback', reason }, 0);
    this.indexBytes = new Counter({ name: 'clip_index_bytes_total', help: 'Compressed layer bytes streamed to index layers.', registers });
    this.indexSeconds = new Counter({ name: 'clip_index_seconds_total', help: 'Time spent indexing layers.', registers });
    this.indexedLayers = new Counter({ name: 'clip_indexed_layers_total', help: 'Layers indexed on this node.', registers });
    this.autoPublishes = new Counter({
      name: 'clip_auto_publish_total',
      help: "Auto-publishes of an image's archives ([lazy] auto_publish): published, already there (exists), failed (with the reason), or dropped (queue full).",
      labelNames: ['outcome', 'reason'],
      registers,
    });
    for (const outcome of PUBLISH_OUTCOMES) if (outcome !== 'failed') this.autoPublishes.inc({ outcome, reason: '' }, 0);
    for (const reason of FALLBACK_REASONS) this.autoPublishes.inc({ outcome: 'failed', reason }, 0);
    const diskGauge = (name: string, help: string, part: 'archives' | 'cache'): Gauge =>
      new Gauge({
        name,
        help,
        registers,
        collect: async function (this: Gauge) {
          this.set((await self.diskUsage())?.[part] ?? 0);
        },
      });
    diskGauge('clip_archive_store_bytes', 'Bytes of clip archives in the archive store.', 'archives');
    diskGauge('clip_content_cache_bytes', 'Bytes of spans in the content cache.', 'cache');
    new Gauge({
      name: 'clip_mounted_layers',
      help: 'Layers mounted and served lazily through FUSE by this process.',
      registers,
      collect: function (this: Gauge) {
        this.set(self.sources?.mountedLayers() ?? 0);
      },
    });
    new Gauge({
      name: 'clip_fuse_hung_reads',
      help: `FUSE reads waiting longer than ${HUNG_READ_MS / 1000} s for their bytes right now.`,
      registers,
      collect: function (this: Gauge) {
        this.set(self.sources?.readsWaitingLongerThan(HUNG_READ_MS) ?? 0);
      },
    });
    this.registry.registerMetric(new ComputedFamily(FUSE_DURATION, () => fuseFamilies(fuseStats()).duration) as never);
    this.registry.registerMetric(new ComputedFamily(FUSE_ERRORS, () => fuseFamilies(fuseStats()).errors) as never);
    setFuseStats(true);
  }

  /** Where the scrape-time values come from (set once the daemon has built the parts). */
  setSources(sources: MetricSources): void {
    this.sources = sources;
  }

  /** The text exposition of every family. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Stops the FUSE servers' counting (the process keeps its addon loaded). */
  close(): void {
    setFuseStats(false);
  }

  fetched(kind: FetchKind, bytes: number, spans: number): void {
    if (bytes > 0) this.fetchedBytes.inc({ kind }, bytes);
    if (spans > 0) this.fetchedSpans.inc({ kind }, spans);
  }

  startupBundle(outcome: BundleOutcome): void {
    this.startupBundles.inc({ outcome });
  }

  bundleRead(bytes: number): void {
    this.bundleReadBytes.inc(bytes);
  }

  cacheLookup(hit: boolean): void {
    (hit ? this.cacheHits : this.cacheMisses).inc();
  }

  registryRequest(outcome: RequestOutcome, seconds: number): void {
    this.registryDuration.observe(seconds);
    this.registryResponses.inc({ status: registryStatusLabel(outcome) });
  }

  prepared(outcome: PrepareOutcome, reason: FallbackReason | ''): void {
    this.prepares.inc({ outcome, reason: outcome === 'fallback' ? reason : '' });
  }

  layerIndexed(bytes: number, seconds: number): void {
    this.indexBytes.inc(bytes);
    this.indexSeconds.inc(seconds);
    this.indexedLayers.inc();
  }

  autoPublished(outcome: PublishOutcome, reason: FallbackReason | ''): void {
    this.autoPublishes.inc({ outcome, reason: outcome === 'failed' ? reason : '' });
  }

  private collectNativeHits(): void {
    const total = fuseStats().cacheHits;
    if (total > this.nativeHitsSeen) this.cacheHits.inc(total - this.nativeHitsSeen);
    this.nativeHitsSeen = total;
  }

  private async diskUsage(): Promise<{ archives: number; cache: number } | undefined> {
    if (!this.sources) return undefined;
    if (this.disk && Date.now() - this.disk.at < DISK_USAGE_MAX_AGE_MS) return this.disk;
    const [archives, cache] = await Promise.all([this.sources.archiveStoreBytes(), this.sources.contentCacheBytes()]);
    this.disk = { at: Date.now(), archives, cache };
    return this.disk;
  }
}
