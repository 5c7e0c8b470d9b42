/**
 * The one door to the clip_fuse native addon (native/clip_fuse.c, built by `npm run build:native`): loads
 * it on first use and types it. See clip_fuse.c for what the server answers itself and what it asks for.
 */
import path from 'node:path';
import { InternalError } from '../errors';

export interface NativeLayerServer {
  /** Span i's cache file `<cacheDir>/<fileName>` is verified: the server reads it directly from now on. */
  markReady(index: number, fileName: string): void;
  /** The spans read so far, in the order of their first read. */
  touchedSpans(): number[];
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

interface Addon {
  LayerServer: new (
    table: Buffer,
    cacheDir: string,
    ttlSeconds: number,
    onRead: (id: number, ino: number, offset: number, length: number) => void,
    onExit: () => void,
  ) => NativeLayerServer;
}

const ADDON_PATH = path.join(__dirname, 'native', 'clip_fuse.node');
let addon: Addon | undefined;

export function nativeLayerServer(...args: ConstructorParameters<Addon['LayerServer']>): NativeLayerServer {
  if (addon === undefined) {
    try {
      addon = require(ADDON_PATH) as Addon;
    } catch (err) {
      throw new InternalError(`FUSE addon ${ADDON_PATH}: cannot load it (was npm run build run?)`, { cause: err });
    }
  }
  return new addon.LayerServer(...args);
}
