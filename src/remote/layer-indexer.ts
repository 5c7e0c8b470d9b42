/**
 * Builds the clip archive of a layer from the registry: finds the layer's descriptor in the image's
 * manifest (media type, size), streams the blob once through the indexer (which verifies it against its
 * digest), and optionally keeps the streamed spans in the content cache so this node never fetches them
 * again.
 */
import type { Logger } from 'winston';
import { ClipArchive } from '../archive';
import { UnavailableError, errorMessage } from '../errors';
import { ContentCache } from '../fusefs/content-cache';
import { IndexLimits, MAGIC_LENGTH, declaredCompression, indexLayer, layerCompression, loadIndexerAddon, type SpanWriter } from '../indexer';
import { Descriptor, ImageReference, RegistryClient, parseReference } from '../registry';

export interface LayerLocation {
  /** The image reference CRI pulled (cri.image-ref). */
  imageRef: string;
  /** The layer blob's digest (cri.layer-digest). */
  layerDigest: string;
  /** The platform manifest that lists the layer (cri.manifest-digest), when known. */
  manifestDigest?: string;
}

export interface LayerIndexerOptions {
  registry: RegistryClient;
  /** Where streamed spans are kept when cacheWhileIndexing is set; none for one-off indexing (clip index). */
  cache?: ContentCache;
  logger: Logger;
  spanSize: number;
  cacheWhileIndexing: boolean;
  /** Limits on each layer (default DEFAULT_INDEX_LIMITS); a layer over one fails with IndexLimitError. */
  limits?: Partial<IndexLimits>;
  /** Told about every layer indexed (metrics). */
  metrics?: IndexMetrics;
}

export interface IndexMetrics {
  /** A layer of `bytes` compressed bytes was indexed in `seconds`. */
  layerIndexed(bytes: number, seconds: number): void;
}

export interface IndexOptions {
  /** The layer's descriptor when the caller has it (saves fetching the manifest). */
  descriptor?: Descriptor;
  /** Called as the blob streams in, with the bytes read so far and the blob's size. */
  onProgress?: (bytes: number, size: number) => void;
  /** Ends the build (a cancelled Prepare, a daemon stopping). */
  signal?: AbortSignal;
  /** Keep the streamed spans in the cache whatever cacheWhileIndexing says. */
  keepSpans?: boolean;
  /** Span size for this build instead of the configured one. */
  spanSize?: number;
}

/**
 * A build gets this long plus the time to stream its blob at MIN_BUILD_RATE: a registry that keeps a
 * build alive by trickling bytes cannot hold an indexing slot for ever.
 */
const BUILD_GRACE_MS = 120_000;
const MIN_BUILD_RATE = 256 << 10; // bytes per second

export function buildDeadlineMs(blobSize: number): number {
  return BUILD_GRACE_MS + Math.ceil((blobSize / MIN_BUILD_RATE) * 1000);
}

export class LayerIndexer {
  constructor(private readonly opts: LayerIndexerOptions) {
    loadIndexerAddon(); // now, not during the first Prepare
  }

  /** The layer's descriptor from its manifest; undefined when the manifest does not list it. */
  private async descriptorOf(ref: ImageReference, where: LayerLocation): Promise<Descriptor | undefined> {
    const pinned = where.manifestDigest ? ref.withDigest(where.manifestDigest) : ref;
    const image = await this.opts.registry.resolve(pinned);
    return image.layers.find((l) => l.digest === where.layerDigest);
  }

  async index(where: LayerLocation, options: IndexOptions = {}): Promise<ClipArchive> {
    const { registry, cache, logger } = this.opts;
    const ref = parseReference(where.imageRef);
    const descriptor = options.descriptor ?? (await this.descriptorOf(ref, where));
    const mediaType = descriptor?.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip';
    // The descriptor's size (from a manifest checked against its digest) saves a HEAD; indexLayer holds the
    // blob to it.
    const blob = await registry.openBlob(ref, where.layerDigest, { signal: options.signal, size: descriptor?.size });
    const deadline = AbortSignal.timeout(buildDeadlineMs(blob.size));
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    // The first bytes decide the compression only where the media type leaves it open: a declared one is
    // checked against them as the blob streams in (indexLayer). Encrypted layers are refused by media type.
    const head =
      declaredCompression(mediaType) === undefined && blob.size > 0 ? await blob.readRange(0, Math.min(MAGIC_LENGTH, blob.size), { signal }) : undefined;
    const compression = layerCompression(mediaType, head);
    logger.info(`indexing layer ${where.layerDigest} (${blob.size} bytes, ${compression}) of ${where.imageRef}`);
    const started = Date.now();
    // A zstd layer cannot be read by range later: its spans are always kept.
    const keep = (this.opts.cacheWhileIndexing || options.keepSpans === true || compression === 'zstd') && cache !== undefined;
    const committed: string[] = [];
    try {
      const stream = blob.stream({ signal });
      const archive = await indexLayer(options.onProgress ? counted(stream, blob.size, options.onProgress) : stream, {
        layerDigest: where.layerDigest,
        mediaType,
        compression,
        spanSize: options.spanSize ?? this.opts.spanSize,
        expectedSize: descriptor?.size ?? blob.size,
        // Spans kept while indexing are a bonus: they give way to the cache's bounds (docs/cache.md), except
        // a zstd layer's, which cannot be read by range later.
        spanStore: keep
          ? { open: async () => noteCommits(await cache.openSpanWriter(where.layerDigest, compression === 'zstd' ? { bestEffort: true } : { background: true, bestEffort: true }), committed) }
          : undefined,
        limits: this.opts.limits,
      });
      const seconds = (Date.now() - started) / 1000;
      this.opts.metrics?.layerIndexed(archive.compressedSize, seconds);
      logger.info(
        `indexed layer ${where.layerDigest}: ${archive.entries.length} entries, ${archive.checkpoints.length} spans, ` +
          `${(archive.uncompressedSize / 1e6 / Math.max(seconds, 0.001)).toFixed(0)} MB/s`,
      );
      return archive;
    } catch (err) {
      // Spans are named by their own digest, so those kept from a blob that failed its digest check can
      // never be served as anything else; they are dropped all the same, to give the space back.
      if (keep) await cache.removeSpans(where.layerDigest, committed).catch(() => undefined);
      if (deadline.aborted && !options.signal?.aborted) {
        const why = `indexing layer ${where.layerDigest} took longer than ${buildDeadlineMs(blob.size) / 1000} s (a ${blob.size}-byte blob at ${MIN_BUILD_RATE >> 10} KiB/s at least, plus ${BUILD_GRACE_MS / 1000} s)`;
        logger.warn(why);
        throw new UnavailableError(why, { cause: err });
      }
      logger.warn(`indexing layer ${where.layerDigest} failed: ${errorMessage(err)}`);
      throw err;
    }
  }
}

/** `writer`, adding the digest of each span it commits to `committed`. */
function noteCommits(writer: SpanWriter, committed: string[]): SpanWriter {
  return {
    write: (chunk) => writer.write(chunk),
    abort: () => writer.abort(),
    commit: async (digest) => {
      await writer.commit(digest);
      committed.push(digest);
    },
  };
}

/** The chunks of `stream`, reporting the running byte count as they pass. */
export async function* counted(stream: AsyncIterable<Buffer>, size: number, onProgress: (bytes: number, size: number) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
    onProgress(bytes, size);
    yield chunk;
  }
}
