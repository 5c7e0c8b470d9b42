/**
 * The one door to the clip_fuse native addon (native/clip_fuse.c, built by `npm run build:native`): loads
 * it on first use and types it. See clip_fuse.c for what the server answers itself and what it asks for.
 */
import path from 'node:path';
import { lazyAddon } from '../native-addon';

export interface NativeLayerServer {
  /** Span i's cache file `<cacheDir>/<fileName>` is verified: the server reads it directly from now on. */
  markReady(index: number, fileName: string): void;
  /**
   * Before mount/attach, once: `onRead(i)` is called for the first read the server answers from span i's
   * cache file after markReady(i) (reads passed up through onRead of the constructor are not reported).
   */
  onCachedRead(onRead: (index: number) => void): void;
  /**
   * The layer's start-up bundle is verified in the cache as `<cacheDir>/<fileName>`, holding the stream
   * ranges [ranges[2k], ranges[2k + 1]) one after another: the server answers reads inside one range from it.
   * Once per server.
   */
  bundleReady(fileName: string, ranges: Float64Array): void;
  /** The spans read so far, in the order of their first read. */
  touchedSpans(): number[];
  /** Which 4096-byte blocks of the layer stream were read so far: bit b of byte b >> 3 for block b. */
  readMap(): Buffer;
  /** Per span, when it was last read: milliseconds of CLOCK_MONOTONIC (process.hrtime's clock), 0 if never. */
  spanReadTimes(): Float64Array;
  /** Mounts on `dir` with a libfuse "-o" option list and starts serving; throws if mounting fails. */
  mount(dir: string, options: string): void;
  /**
   * Serves the existing FUSE connection `fd` (mounted on `dir` by an earlier process) through a copy of it
   * (the caller still owns fd). Returns whether the kernel resent the requests left unanswered.
   */
  attach(fd: number, dir: string): boolean;
  /**
   * Before mount/attach: a read passed to JS and not answered within `ms` is answered EIO by the native
   * server itself, even while the JS thread is blocked; a later reply to it is dropped.
   */
  setReadTimeout(ms: number): void;
  /** How many reads passed to JS have waited longer than `ms` for their answer (hung IO). */
  waitingReads(ms: number): number;
  /** The session's /dev/fuse fd (-1 before mount/attach). */
  fd(): number;
  /** Answers read request `id` with these bytes. */
  reply(id: number, bytes: Buffer): void;
  /** Answers read request `id` with an error (a positive errno). */
  fail(id: number, errno: number): void;
  /** Detaches the mount; the server goes on for users still inside and exits (onExit) after them. */
  unmount(): void;
  /** After onExit: releases the session. */
  destroy(): void;
}

/**
 * The native servers' process-wide operation statistics (native/fuse_stats.c): counters only grow. Per
 * operation (same order as `operations`): request count, latency sum, latency bucket counts (not
 * cumulative; bucketBoundsSeconds.length + 1 of them, the last one above every bound) and error replies
 * per errno (same order as `errnos`).
 */
export interface FuseStats {
  operations: string[];
  errnos: string[];
  bucketBoundsSeconds: number[];
  count: number[];
  sumSeconds: number[];
  buckets: number[][];
  errors: number[][];
  /** Reads the native server answered from verified cache files itself. */
  cacheHits: number;
}

interface Addon {
  fuseStats(): FuseStats;
  /** Statistics are kept only while on (default off): when off a request costs no clock read. */
  setFuseStats(on: boolean): void;
  LayerServer: new (
    table: Buffer,
    cacheDir: string,
    ttlSeconds: number,
    onRead: (id: number, ino: number, offset: number, length: number) => void,
    onExit: () => void,
  ) => NativeLayerServer;
}

const loaded = lazyAddon<Addon>(path.join(__dirname, 'native', 'clip_fuse.node'), 'FUSE addon');

export function nativeLayerServer(...args: ConstructorParameters<Addon['LayerServer']>): NativeLayerServer {
  return new (loaded().LayerServer)(...args);
}

export function fuseStats(): FuseStats {
  return loaded().fuseStats();
}

export function setFuseStats(on: boolean): void {
  loaded().setFuseStats(on);
}
