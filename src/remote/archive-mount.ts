/**
 * One clip archive mounted read-only on a directory, for embedders: the layer's bytes come from the
 * registry (range reads of the layer blob, as for the snapshotter) or from the layer blob in a local file,
 * through the same read path (LayerSpanReader: spans inflated from their checkpoints, verified against the
 * archive's span digests, kept in a content cache) and the same FUSE filesystem (LayerFilesystem).
 */
import { createReadStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'winston';
import type { ClipArchive } from '../archive';
import { InvalidArgumentError } from '../errors';
import { ContentCache, type CacheBounds } from '../fusefs/content-cache';
import { LayerFilesystem } from '../fusefs';
import { LayerSpanReader, RangeSource } from '../fusefs/layer-span-reader';
import { RegistryClient } from '../registry';
import { silentLogger } from './image-indexer';
import { LazyBlobSource } from './lazy-blob-source';

export type ArchiveSource =
  /** The layer blob in the registry: `image` names its repository (a tag or digest is not needed). */
  | { registry: RegistryClient; image: string }
  /** The layer blob (as stored in a registry: gzip or tar) in a local file. */
  | { layerFile: string };

export interface MountArchiveOptions {
  source: ArchiveSource;
  /** Where fetched spans are kept (default: a temporary directory removed at unmount). */
  cacheDir?: string;
  /** Bounds of that cache (default: none; the caller bounds a lasting cacheDir, see ContentCache). */
  cacheBounds?: Partial<CacheBounds>;
  logger?: Logger;
  /** A read waiting longer than this fails with EIO (default 30 s). */
  readTimeoutMs?: number;
}

export interface MountedArchive {
  readonly dir: string;
  readonly archive: ClipArchive;
  /** Unmounts (lazily, if busy) and removes the temporary cache; safe to call twice. */
  unmount(): Promise<void>;
}

/** Reads a local blob file by range. */
class FileRangeSource implements RangeSource {
  private handle?: Promise<fsp.FileHandle>;

  constructor(private readonly file: string) {}

  async readRange(offset: number, length: number): Promise<Buffer> {
    this.handle ??= fsp.open(this.file, 'r');
    const handle = await this.handle;
    const out = Buffer.alloc(length);
    for (let filled = 0; filled < length; ) {
      const { bytesRead } = await handle.read(out, filled, length - filled, offset + filled);
      if (bytesRead === 0) throw new InvalidArgumentError(`${this.file}: ends before byte ${offset + length}`);
      filled += bytesRead;
    }
    return out;
  }

  stream(): AsyncIterable<Buffer> {
    return createReadStream(this.file, { highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {
    await (await this.handle?.catch(() => undefined))?.close();
  }
}

/** Mounts `archive` read-only on the empty directory `dir`. */
export async function mountArchive(archive: ClipArchive, dir: string, options: MountArchiveOptions): Promise<MountedArchive> {
  const logger = options.logger ?? silentLogger();
  const { source } = options;
  const tempCache = options.cacheDir ? undefined : await fsp.mkdtemp(path.join(os.tmpdir(), 'clip-cache-'));
  const cache = new ContentCache(options.cacheDir ?? tempCache!, options.cacheBounds);
  const file = 'layerFile' in source ? new FileRangeSource(source.layerFile) : undefined;
  const blob = 'layerFile' in source ? undefined : new LazyBlobSource(source.registry, source.image, archive.layerDigest);
  const reader = new LayerSpanReader({ archive, source: (file ?? blob)!, cache });
  const fs = new LayerFilesystem(archive, reader, { logger, readTimeoutMs: options.readTimeoutMs });
  const release = async (): Promise<void> => {
    await file?.close();
    if (tempCache) await fsp.rm(tempCache, { recursive: true, force: true });
  };
  try {
    await fs.mount(dir);
  } catch (err) {
    await release();
    throw err;
  }
  let unmounting: Promise<void> | undefined;
  return {
    dir: path.resolve(dir),
    archive,
    unmount: () => (unmounting ??= fs.unmount().then(release)),
  };
}
