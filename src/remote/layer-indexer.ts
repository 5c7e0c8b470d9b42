/**
 * Builds the clip archive of a layer from the registry: finds the layer's descriptor in the image's
 * manifest (media type, size), streams the blob once through the indexer (which verifies it against its
 * digest), and optionally keeps the streamed spans in the content cache so this node never fetches them
 * again.
 */
import type { Logger } from 'winston';
import { ClipArchive } from '../archive';
import { errorMessage } from '../errors';
import { ContentCache } from '../fusefs/content-cache';
import { IndexLimits, indexLayer, layerCompression } from '../indexer';
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
}

export interface IndexOptions {
  /** The layer's descriptor when the caller has it (saves fetching the manifest). */
  descriptor?: Descriptor;
  /** Called as the blob streams in, with the bytes read so far and the blob's size. */
  onProgress?: (bytes: number, size: number) => void;
}

export class LayerIndexer {
  constructor(private readonly opts: LayerIndexerOptions) {}

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
    const blob = await registry.openBlob(ref, where.layerDigest);
    // The first bytes decide the compression where the media type leaves it open (and refuse encrypted layers).
    const head = blob.size > 0 ? await blob.readRange(0, Math.min(4, blob.size)) : Buffer.alloc(0);
    const compression = layerCompression(mediaType, head);
    logger.info(`indexing layer ${where.layerDigest} (${blob.size} bytes, ${compression}) of ${where.imageRef}`);
    const started = Date.now();
    // A zstd layer cannot be read by range later: its spans are always kept.
    const keep = (this.opts.cacheWhileIndexing || compression === 'zstd') && cache !== undefined;
    try {
      const archive = await indexLayer(options.onProgress ? counted(blob.stream(), blob.size, options.onProgress) : blob.stream(), {
        layerDigest: where.layerDigest,
        mediaType,
        compression,
        spanSize: this.opts.spanSize,
        expectedSize: descriptor?.size ?? blob.size,
        spanStore: keep ? { open: (index) => cache.openSpanWriter(where.layerDigest, index) } : undefined,
        limits: this.opts.limits,
      });
      const seconds = (Date.now() - started) / 1000;
      logger.info(
        `indexed layer ${where.layerDigest}: ${archive.entries.length} entries, ${archive.checkpoints.length} spans, ` +
          `${(archive.uncompressedSize / 1e6 / Math.max(seconds, 0.001)).toFixed(0)} MB/s`,
      );
      return archive;
    } catch (err) {
      // Spans staged from a blob that failed its digest check must not linger.
      if (keep) await cache.removeLayer(where.layerDigest).catch(() => undefined);
      logger.warn(`indexing layer ${where.layerDigest} failed: ${errorMessage(err)}`);
      throw err;
    }
  }
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
