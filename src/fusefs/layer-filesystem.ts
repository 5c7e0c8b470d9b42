/**
 * One clip archive presented as a read-only FUSE filesystem on a directory, served by the native server
 * (native/clip_fuse.c, libfuse3's low-level API): metadata from a table built at mount from the archive's
 * entries in C (src/archive/entry-table.ts: tar extraction order, OCI whiteouts as overlayfs ones), file
 * bytes from verified cache files (spans, and the start-up bundle once it is there), and only other reads
 * passed up to JavaScript (the LayerStream: fetched, checked and cached, then answered).
 *
 * Mount options, and why:
 * - ro, default_permissions: the layer is immutable; the kernel refuses writes (EROFS) and checks
 *   mode/uid/gid itself, as for any other image layer.
 * - allow_other: processes of other users and in other mount namespaces (runc, overlayfs) read it.
 * - auto_unmount (only without a hand-off): if this process dies, fusermount3 removes the mount within a
 *   moment instead of leaving a "Transport endpoint is not connected" directory. With a MountHandOff the
 *   connection is kept for the next clip process instead (mount-handoff.ts), and a mount handed over by an
 *   earlier process is taken over rather than mounted again.
 * The server answers with year-long entry and attribute timeouts (negative lookups too), refuses
 * open/opendir with ENOSYS (no per-open state; the kernel then keeps page and directory caches), lists
 * directories with attributes (readdirplus), lets the kernel cache symlinks and takes 1 MiB reads.
 *
 * The process serving a mount must never touch it synchronously: its one JavaScript thread would wait for
 * itself and hang in D state with every other process using the mount. mount() and unmount() only make
 * the mount syscalls and read the mount table.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { archiveBody, buildLayerTable, type LayerTable } from '../archive';
import type { ClipArchive } from '../archive/types';
import { FailedPreconditionError, UnavailableError, errorMessage } from '../errors';
import { FuseErrorReporter } from './errno';
import { NativeLayerServer, nativeLayerServer } from './layer-server';
import { LayerStream } from './layer-stream';
import type { HandedConnection, MountHandOff } from './mount-handoff';
import { closeFd } from './fd-store';
import { forceUnmount, mountAt } from './mounts';
import { readRequests } from './read-requests';
import type { SpanReader } from './span-reader';
import { TableFiles } from './table-files';

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
  /** Limit for each unmount command when a mount has to be removed the hard way (default 10 s). */
  mountTimeoutMs?: number;
  /** Keep the mount's FUSE connection for the next clip process, and take over one kept by an earlier one. */
  handOff?: MountHandOff;
}

const CACHE_SECONDS = 365 * 24 * 3600;
/**
 * The entries were checked within the configured archive limits when the archive was decoded (or built by
 * the indexer within them); the table of the same bytes is built without limits of its own.
 */
const CHECKED = Number.MAX_SAFE_INTEGER;
const TABLE_LIMITS = { maxEntries: CHECKED, maxPathBytes: CHECKED, maxNameBytes: CHECKED, maxMetadataBytes: CHECKED };

const OPAQUE_NAMES: Record<OpaqueXattr, string[]> = {
  trusted: ['trusted.overlay.opaque'],
  user: ['user.overlay.opaque'],
  both: ['trusted.overlay.opaque', 'user.overlay.opaque'],
};

/** A mounted server; it lives on after unmount() while processes still use the detached mount. */
interface Session {
  server: NativeLayerServer;
  dir: string;
  /** The connection's name in the hand-off store, while it is kept there. */
  keptAs?: string;
}

/** Sessions until their server exits, so that nothing they use is collected meanwhile. */
const live = new Set<Session>();

/** Reads waiting longer than `ms` for their bytes, over every FUSE session of this process (hung IO). */
export function readsWaitingLongerThan(ms: number): number {
  let n = 0;
  for (const session of live) n += session.server.waitingReads(ms);
  return n;
}

export class LayerFilesystem {
  private readonly stream: LayerStream;
  private readonly logger: Logger;
  private readonly readTimeoutMs: number;
  private readonly mountTimeoutMs: number;
  private readonly opaqueXattrNames: string[];
  private readonly handOff?: MountHandOff;
  private session?: Session;
  /** The server of the last mount, which can still say what was read after it was unmounted. */
  private lastServer?: NativeLayerServer;
  private unmounting?: Promise<void>;

  constructor(
    private readonly archive: ClipArchive,
    private readonly spans: SpanReader,
    options: LayerFilesystemOptions,
  ) {
    this.logger = options.logger;
    this.readTimeoutMs = options.readTimeoutMs ?? 30_000;
    this.mountTimeoutMs = options.mountTimeoutMs ?? 10_000;
    this.opaqueXattrNames = OPAQUE_NAMES[options.opaqueXattr ?? 'trusted'];
    this.handOff = options.handOff;
    this.stream = new LayerStream(archive, spans, options.spanMemoryBytes ?? 16 << 20);
  }

  /** The table the native server answers from; logs the entries that could not be applied. */
  private async table(): Promise<LayerTable> {
    const { checkpoints, uncompressedSize, layerDigest } = this.archive;
    const table = await buildLayerTable(await archiveBody(this.archive), {
      limits: TABLE_LIMITS,
      uncompressedSize,
      bounds: [...checkpoints.map((c) => c.uncompressedOffset), uncompressedSize],
      opaqueXattrNames: this.opaqueXattrNames,
    });
    const { problems, problemCount } = table;
    if (problemCount > 0) {
      this.logger.warn(`layer ${layerDigest}: ${problemCount} entries left out: ${problems.join('; ')}${problemCount > problems.length ? '; …' : ''}`);
    }
    return table;
  }

  /** The spans read through the mount so far, in order of first read (empty before the first mount). */
  touchedSpans(): number[] {
    return this.lastServer?.touchedSpans() ?? [];
  }

  /** Which 4096-byte blocks of the layer stream were read through the mount so far (NativeLayerServer.readMap). */
  readMap(): Buffer {
    return this.lastServer?.readMap() ?? Buffer.alloc(0);
  }

  /** Where the layer is mounted, if it is. */
  get mountpoint(): string | undefined {
    return this.session?.dir;
  }

  async mount(dir: string): Promise<void> {
    const target = path.resolve(dir);
    const digest = this.archive.layerDigest;
    if (this.session) throw new FailedPreconditionError(`layer ${digest}: already mounted on ${this.session.dir}`);
    const handed = this.handOff?.claim(target);
    if (!handed) {
      if (await mountAt(target)) throw new FailedPreconditionError(`mount ${target}: already a mount point`);
      const kind = await fsp.stat(target).then((st) => (st.isDirectory() ? 'dir' : 'not a directory'), () => 'does not exist');
      if (kind !== 'dir') throw new UnavailableError(`mount ${target}: ${kind}`);
    }

    const started = performance.now();
    let table: LayerTable;
    try {
      table = await this.table();
    } catch (err) {
      if (handed) await this.handOff!.abandon(handed, errorMessage(err));
      throw err;
    }
    const files = this.spans.spanFiles?.();
    const onRead = readRequests(this.stream, new TableFiles(table.bytes), new FuseErrorReporter(this.logger, `layer ${digest}`), this.readTimeoutMs, () => server);
    let stopWatching = (): void => undefined;
    let session: Session | undefined;
    const server = nativeLayerServer(table.bytes, files?.dir ?? '/nonexistent', CACHE_SECONDS, onRead, () => {
      stopWatching();
      server.destroy();
      if (session) {
        live.delete(session);
        if (session.keptAs) void this.handOff?.release(session.keptAs);
      }
      this.logger.debug(`layer ${digest}: FUSE session on ${target} ended`);
    });
    if (files) {
      const cachedRead = files.cachedRead?.bind(files);
      if (cachedRead) server.onCachedRead(cachedRead);
      const unwatch = files.watch((index, name) => server.markReady(index, name));
      const untrack = files.trackReads?.(() => server.spanReadTimes()) ?? ((): void => undefined);
      const unbundle = files.watchBundle?.((name, ranges) => server.bundleReady(name, ranges)) ?? ((): void => undefined);
      stopWatching = () => {
        unwatch();
        untrack();
        unbundle();
      };
    }
    const built = performance.now();
    server.setReadTimeout(this.readTimeoutMs);
    try {
      if (handed) this.takeOver(server, handed);
      else server.mount(target, this.mountOptions().join(','));
    } catch (err) {
      stopWatching();
      server.destroy();
      if (handed) await this.handOff!.abandon(handed, errorMessage(err));
      else await forceUnmount(target, { timeoutMs: this.mountTimeoutMs }).catch(() => undefined);
      throw new UnavailableError(`mount ${target}: ${errorMessage(err)}`, { cause: err });
    }
    session = { server, dir: target, keptAs: handed?.name };
    live.add(session);
    this.session = session;
    this.lastServer = server;
    const mounted = performance.now();
    if (handed) closeFd(handed.fd); // the server serves its own copy
    else if (this.handOff) session.keptAs = await this.handOff.keep(target, server.fd());
    const timing =
      `table of ${table.entryCount} entries in ${(built - started).toFixed(0)} ms, mount ${(mounted - built).toFixed(0)} ms` +
      (this.handOff && !handed ? `, hand-off ${(performance.now() - mounted).toFixed(0)} ms` : '');
    this.logger.debug(`layer ${digest}: ${handed ? 'serving again' : 'mounted'} on ${target} (${timing})`);
  }

  private mountOptions(): string[] {
    const digest = this.archive.layerDigest;
    const options = ['ro', 'allow_other', 'default_permissions', `fsname=clip:${digest}`, 'subtype=clip'];
    if (!this.handOff) options.push('auto_unmount');
    return options;
  }

  private takeOver(server: NativeLayerServer, handed: HandedConnection): void {
    const resent = server.attach(handed.fd, handed.dir);
    this.logger.info(
      `layer ${this.archive.layerDigest}: took over the FUSE connection of ${handed.dir}` +
        (resent ? '' : ' (this kernel cannot resend requests: reads the earlier process left unanswered stay unanswered)'),
    );
  }

  /**
   * Detaches the mount (lazily: processes still inside keep it, and are served, until they leave). Safe to
   * call twice or when not mounted.
   */
  unmount(): Promise<void> {
    this.unmounting ??= this.detach().finally(() => (this.unmounting = undefined));
    return this.unmounting;
  }

  private async detach(): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      session.server.unmount();
    } catch (err) {
      // Someone else may have unmounted it already; otherwise detach it the hard way.
      if (await mountAt(session.dir)) {
        await forceUnmount(session.dir, { timeoutMs: this.mountTimeoutMs }).catch((forced: unknown) => {
          throw new UnavailableError(`unmount ${session.dir}: ${errorMessage(err)}; ${errorMessage(forced)}`, { cause: forced });
        });
      }
      this.logger.warn(`layer ${this.archive.layerDigest}: unmount ${session.dir}: ${errorMessage(err)}`);
    }
    this.session = undefined;
    this.logger.debug(`layer ${this.archive.layerDigest}: unmounted ${session.dir}`);
  }
}
