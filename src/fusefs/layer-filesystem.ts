/**
 * One clip archive presented as a read-only FUSE filesystem on a directory.
 *
 * Mount options, and why:
 * - ro, default_permissions: the layer is immutable; the kernel refuses writes (EROFS) and checks
 *   mode/uid/gid itself, as for any other image layer.
 * - allow_other: processes of other users and in other mount namespaces (runc, overlayfs) read it.
 * - auto_unmount: if this process dies, libfuse's fusermount helper removes the mount within a moment
 *   instead of leaving a "Transport endpoint is not connected" directory.
 * - kernel_cache, entry_timeout, attr_timeout, negative_timeout (a year): nothing ever changes, so the page
 *   cache survives opens and the kernel keeps names, attributes and misses instead of asking again.
 * - max_read=131072: the largest request libfuse 2 accepts.
 * - use_ino: the kernel reports the layer's inode numbers (hard links share one).
 *
 * The process serving a mount must never touch it synchronously: its one JavaScript thread would wait for
 * itself and hang in D state with every other process using the mount. mount() and unmount() are
 * asynchronous and only read the mount table and run child processes.
 */
import path from 'node:path';
import type { Logger } from 'winston';
import type { ClipArchive } from '../archive/types';
import { FailedPreconditionError, UnavailableError, errorMessage } from '../errors';
import { FuseErrorReporter } from './errno';
import { LayerFuse } from './fuse-binding';
import { layerOperations } from './layer-operations';
import { LayerStream } from './layer-stream';
import { LayerTree } from './layer-tree';
import { forceUnmount, mountAt } from './mounts';
import type { SpanReader } from './span-reader';

export type OpaqueXattr = 'trusted' | 'user' | 'both';

export interface LayerFilesystemOptions {
  logger: Logger;
  /** A read whose bytes have not arrived within this time answers EIO (default 30 s). */
  readTimeoutMs?: number;
  /**
   * Which xattr an opaque directory reports: trusted.overlay.opaque (default), user.overlay.opaque (for
   * overlay mounted with userxattr), or both.
   */
  opaqueXattr?: OpaqueXattr;
  /** Memory for recently read spans (default 16 MiB). */
  spanMemoryBytes?: number;
  /** Limit for mounting and for each unmount command (default 10 s). */
  mountTimeoutMs?: number;
}

const CACHE_SECONDS = 365 * 24 * 3600;
const MAX_READ = 128 * 1024;
/** fuse-native's own answer (ETIMEDOUT) for a handler that never calls back; ours must come first. */
const BINDING_TIMEOUT_MS = 15_000;
const BINDING_READ_MARGIN_MS = 5_000;

const OPAQUE_NAMES: Record<OpaqueXattr, string[]> = {
  trusted: ['trusted.overlay.opaque'],
  user: ['user.overlay.opaque'],
  both: ['trusted.overlay.opaque', 'user.overlay.opaque'],
};

function withTimeout<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new UnavailableError(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export class LayerFilesystem {
  private readonly tree: LayerTree;
  private readonly stream: LayerStream;
  private readonly logger: Logger;
  private readonly readTimeoutMs: number;
  private readonly mountTimeoutMs: number;
  private readonly opaqueXattrNames: string[];
  private fuse?: LayerFuse;
  private dir?: string;
  private unmounting?: Promise<void>;

  /** Builds the layer's index; throws InvalidArgumentError for an archive that cannot be served. */
  constructor(
    private readonly archive: ClipArchive,
    spans: SpanReader,
    options: LayerFilesystemOptions,
  ) {
    this.logger = options.logger;
    this.readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.mountTimeoutMs = options.mountTimeoutMs ?? 10_000;
    this.opaqueXattrNames = OPAQUE_NAMES[options.opaqueXattr ?? 'trusted'];
    this.tree = LayerTree.build(archive);
    this.stream = new LayerStream(archive, spans, options.spanMemoryBytes ?? 16 << 20);
    const { problems } = this.tree;
    if (problems.length > 0) {
      const shown = problems.slice(0, 5).join('; ');
      this.logger.warn(`layer ${archive.layerDigest}: ${problems.length} entries left out: ${shown}${problems.length > 5 ? '; …' : ''}`);
    }
  }

  /** Where the layer is mounted, if it is. */
  get mountpoint(): string | undefined {
    return this.dir;
  }

  async mount(dir: string): Promise<void> {
    const target = path.resolve(dir);
    if (this.fuse) throw new FailedPreconditionError(`layer ${this.archive.layerDigest}: already mounted on ${this.dir}`);
    if (await mountAt(target)) throw new FailedPreconditionError(`mount ${target}: already a mount point`);

    const ops = layerOperations(this.tree, this.stream, new FuseErrorReporter(this.logger, `layer ${this.archive.layerDigest}`), {
      readTimeoutMs: this.readTimeoutMs,
      opaqueXattrNames: this.opaqueXattrNames,
    });
    const fuse = new LayerFuse(
      target,
      ops,
      {
        allowOther: true,
        autoUnmount: true,
        defaultPermissions: 'true',
        kernelCache: true,
        entryTimeout: CACHE_SECONDS,
        attrTimeout: CACHE_SECONDS,
        maxRead: MAX_READ,
        fsname: `clip:${this.archive.layerDigest}`,
        subtype: 'clip',
        timeout: { default: BINDING_TIMEOUT_MS, read: this.readTimeoutMs + BINDING_READ_MARGIN_MS },
      },
      ['ro', 'use_ino', `negative_timeout=${CACHE_SECONDS}`],
    );
    this.fuse = fuse;
    this.dir = target;
    try {
      await withTimeout(`mount ${target}`, this.mountTimeoutMs, new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve()))));
    } catch (err) {
      this.fuse = undefined;
      this.dir = undefined;
      await forceUnmount(target, { timeoutMs: this.mountTimeoutMs }).catch(() => undefined);
      throw new UnavailableError(`mount ${target}: ${errorMessage(err)}`, { cause: err });
    }
    this.logger.debug(`layer ${this.archive.layerDigest}: mounted on ${target}`);
  }

  /**
   * Detaches the mount (lazily: processes still inside keep it until they leave). Safe to call twice or
   * when not mounted.
   */
  unmount(): Promise<void> {
    this.unmounting ??= this.detach().finally(() => (this.unmounting = undefined));
    return this.unmounting;
  }

  private async detach(): Promise<void> {
    const { fuse, dir } = this;
    if (!fuse || !dir) return;
    try {
      await withTimeout(`unmount ${dir}`, this.mountTimeoutMs, new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve()))));
    } catch (err) {
      // Someone else may have unmounted it already; otherwise detach it the hard way.
      if (await mountAt(dir)) {
        await forceUnmount(dir, { timeoutMs: this.mountTimeoutMs }).catch((forced: unknown) => {
          throw new UnavailableError(`unmount ${dir}: ${errorMessage(err)}; ${errorMessage(forced)}`, { cause: forced });
        });
      }
      this.logger.warn(`layer ${this.archive.layerDigest}: unmount ${dir}: ${errorMessage(err)}`);
    }
    this.fuse = undefined;
    this.dir = undefined;
    this.logger.debug(`layer ${this.archive.layerDigest}: unmounted ${dir}`);
  }
}
