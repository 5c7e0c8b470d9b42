/**
 * The clip archives of a whole image, or of one layer file, built on demand: what `clip index`,
 * `clip index push` and the programmatic API use. An image is resolved for one platform; each layer's
 * archive is reused from a directory of archives when a valid one is there (named `<layer hex>.clip`, as
 * `clip index -o` writes them and as the daemon's store keeps them in `<root>/archives/sha256/`), else
 * built by streaming the layer once through the indexer (LayerIndexer, as the daemon does).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import winston, { type Logger } from 'winston';
import { ClipArchive, readArchiveFile, writeArchiveFile } from '../archive';
import { InvalidArgumentError, NotFoundError, errorMessage } from '../errors';
import { DEFAULT_SPAN_SIZE, MAGIC_LENGTH, indexLayer, layerCompression } from '../indexer';
import { Descriptor, ImageReference, Platform, RegistryClient, ResolvedImage } from '../registry';
import { LayerIndexer, counted } from './layer-indexer';
import { Limiter } from './limiter';

export type LayerState = 'waiting' | 'indexing' | 'reused' | 'indexed';

export interface LayerProgress {
  /** Position in the image, 0 = bottom layer. */
  index: number;
  digest: string;
  /** Compressed size. */
  size: number;
  state: LayerState;
  /** Bytes of the layer streamed so far (state 'indexing'). */
  bytes: number;
}

export interface IndexImageOptions {
  registry: RegistryClient;
  /** Platform to pick from a multi-platform image (default: the registry client's). */
  platform?: Platform;
  /** Uncompressed bytes per span (default 4 MiB). */
  spanSize?: number;
  /** A directory of archives (`<layer hex>.clip`) to reuse where valid. */
  reuseDir?: string;
  /** Layers indexed at once (default 3). */
  concurrency?: number;
  logger?: Logger;
  /** Called once the image is resolved, before any layer is indexed. */
  onResolved?: (image: ResolvedImage) => void;
  onProgress?: (progress: LayerProgress) => void;
}

export interface IndexedLayer {
  descriptor: Descriptor;
  archive: ClipArchive;
  /** True when the archive came from `reuseDir`. */
  reused: boolean;
}

export interface IndexedImage {
  image: ResolvedImage;
  /** In the image's order (bottom layer first). */
  layers: IndexedLayer[];
}

/** A layer not started because another one failed. */
class Cancelled extends Error {}

/** A logger that drops everything: the library's default. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true });
}

/** File name of a layer's archive in a directory of archives: `<hex of the layer digest>.clip`. */
export function archiveFileName(layerDigest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
  if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
  return `${m[1]}.clip`;
}

/** An archive from `dir` if there is a valid one for the layer; anything unusable is skipped with a warning. */
async function reusable(dir: string, layer: Descriptor, logger: Logger): Promise<ClipArchive | undefined> {
  const file = path.join(dir, archiveFileName(layer.digest));
  let archive: ClipArchive;
  try {
    archive = await readArchiveFile(file);
  } catch (err) {
    if (!(err instanceof NotFoundError)) logger.warn(`not reusing ${file}: ${errorMessage(err)}`);
    return undefined;
  }
  if (archive.layerDigest !== layer.digest || archive.compressedSize !== layer.size) {
    logger.warn(`not reusing ${file}: it describes ${archive.layerDigest} (${archive.compressedSize} bytes)`);
    return undefined;
  }
  return archive;
}

/** Resolves an image and returns the clip archive of each of its layers (reused or built). */
export async function indexImage(image: ImageReference | string, options: IndexImageOptions): Promise<IndexedImage> {
  const { registry, reuseDir, onProgress } = options;
  const logger = options.logger ?? silentLogger();
  const resolved = await registry.resolve(image, { platform: options.platform });
  options.onResolved?.(resolved);
  const indexer = new LayerIndexer({ registry, logger, spanSize: options.spanSize ?? DEFAULT_SPAN_SIZE, cacheWhileIndexing: false });
  const limiter = new Limiter(options.concurrency ?? 3);
  const report = (index: number, descriptor: Descriptor, state: LayerState, bytes = 0): void =>
    onProgress?.({ index, digest: descriptor.digest, size: descriptor.size, state, bytes });
  resolved.layers.forEach((d, i) => report(i, d, 'waiting'));
  let failed = false;
  const layers = resolved.layers.map((descriptor, index) =>
    limiter.run(async (): Promise<IndexedLayer> => {
      if (failed) throw new Cancelled(); // another layer failed: start no more work
      const found = reuseDir ? await reusable(reuseDir, descriptor, logger) : undefined;
      if (found) {
        report(index, descriptor, 'reused', descriptor.size);
        return { descriptor, archive: found, reused: true };
      }
      report(index, descriptor, 'indexing');
      const where = { imageRef: resolved.reference.toString(), layerDigest: descriptor.digest, manifestDigest: resolved.digest };
      const archive = await indexer.index(where, { descriptor, onProgress: (bytes) => report(index, descriptor, 'indexing', bytes) });
      report(index, descriptor, 'indexed', descriptor.size);
      return { descriptor, archive, reused: false };
    }).catch((err: unknown) => {
      if (!(err instanceof Cancelled)) failed = true;
      throw err;
    }),
  );
  // The first failure is the one to report; wait for the rest so nothing runs on after we return.
  const settled = await Promise.allSettled(layers);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected' && !(s.reason instanceof Cancelled));
  if (failure) throw failure.reason;
  return { image: resolved, layers: settled.map((s) => (s as PromiseFulfilledResult<IndexedLayer>).value) };
}

export interface IndexLayerFileOptions {
  spanSize?: number;
  /** The layer's media type; by default the compression is detected and an OCI layer type recorded. */
  mediaType?: string;
  /** Called as the file is indexed, with the bytes read so far and the file's size. */
  onProgress?: (bytes: number, size: number) => void;
}

/**
 * The clip archive of a layer blob in a local file (gzip or uncompressed tar). The file is read twice: once
 * for its digest, which names the archive, once to index it (which checks that digest again).
 */
export async function indexLayerFile(file: string, options: IndexLayerFileOptions = {}): Promise<ClipArchive> {
  const hash = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  for await (const chunk of createReadStream(file)) {
    const c = chunk as Buffer;
    if (head.length < MAGIC_LENGTH) head = Buffer.concat([head, c.subarray(0, MAGIC_LENGTH - head.length)]);
    hash.update(c);
    size += c.length;
  }
  // Docker's plain layer type declares no compression, so the first bytes decide.
  const compression = layerCompression(options.mediaType ?? 'application/vnd.docker.image.rootfs.diff.tar', head);
  const mediaType = options.mediaType ?? `application/vnd.oci.image.layer.v1.tar${compression === 'none' ? '' : `+${compression}`}`;
  const stream = createReadStream(file);
  return indexLayer(options.onProgress ? counted(stream, size, options.onProgress) : stream, {
    layerDigest: `sha256:${hash.digest('hex')}`,
    mediaType,
    compression,
    spanSize: options.spanSize,
    expectedSize: size,
  });
}

/** Writes archives into `dir` (created if needed) as `<layer hex>.clip`; returns the files. */
export async function writeArchives(dir: string, archives: ClipArchive[]): Promise<string[]> {
  await fsp.mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const archive of archives) {
    const file = path.join(dir, archiveFileName(archive.layerDigest));
    await writeArchiveFile(file, archive);
    files.push(file);
  }
  return files;
}
