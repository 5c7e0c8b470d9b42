/**
 * fuse-native's Fuse class, adjusted where its public surface is not enough. Every use of the binding's
 * internals (version 2.4.x) is in this file, and test/unit/fusefs/fuse-binding.test.ts fails if they change:
 *
 * - `_fuseOptions()` builds the "-o" string from a fixed list of options. Options outside that list
 *   (use_ino, negative_timeout, ro) are appended here.
 * - `_op_getxattr` / `_op_listxattr` hide the caller's buffer size from the handler and copy values
 *   regardless of it, so a too-small buffer cannot be answered with ERANGE. Here the handler is given the
 *   size and answers the xattr protocol itself (size 0: the length; too small: ERANGE); this only copies.
 */
import Fuse from '@cocalc/fuse-native';

/** Answers with a negative errno, or a byte count (and, when the caller gave a buffer, the bytes). */
export type SizedCallback = (result: number, value?: Buffer) => void;

/** Handlers as LayerFuse calls them: fuse-native's, with size-aware xattr handlers and a typed read. */
export interface LayerOperations extends Omit<Fuse.OPERATIONS, 'getxattr' | 'listxattr' | 'read'> {
  getxattr(path: string, name: string, size: number, cb: SizedCallback): void;
  /** The names as one buffer of NUL-terminated strings. */
  listxattr(path: string, size: number, cb: SizedCallback): void;
  /** Answers the number of bytes copied into `buffer`, or a negative errno. */
  read(path: string, fd: number, buffer: Buffer, length: number, position: number, cb: (result: number) => void): void;
}

/** Per-operation timeouts (ms) after which fuse-native answers ETIMEDOUT itself; `default` for the rest. */
export type BindingTimeouts = { default: number } & Partial<Record<keyof Fuse.OPERATIONS, number>>;

type Signal = (result: number, ...args: unknown[]) => void;

interface FuseInternals {
  _fuseOptions(this: Fuse): string;
}

export class LayerFuse extends Fuse {
  private readonly layerOps: LayerOperations;

  constructor(
    mountpoint: string,
    ops: LayerOperations,
    options: Omit<Fuse.OPTIONS, 'timeout'> & { timeout: BindingTimeouts },
    private readonly extraOptions: string[],
  ) {
    // fuse-native reads `timeout` as a number or a per-operation object; its typings only know the number.
    super(mountpoint, ops as unknown as Fuse.OPERATIONS, options as unknown as Fuse.OPTIONS);
    this.layerOps = ops;
  }

  /** The "-o" argument for libfuse: fuse-native's own list plus the options it does not know. */
  _fuseOptions(): string {
    const base = (Fuse.prototype as unknown as FuseInternals)._fuseOptions.call(this);
    if (this.extraOptions.length === 0) return base;
    return base ? `${base},${this.extraOptions.join(',')}` : `-o${this.extraOptions.join(',')}`;
  }

  _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
    this.layerOps.getxattr(path, name, valueBuf.length, (result, value) => {
      if (result > 0 && value && valueBuf.length >= value.length) value.copy(valueBuf);
      signal(result, valueBuf.buffer);
    });
  }

  _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
    this.layerOps.listxattr(path, listBuf.length, (result, list) => {
      if (result > 0 && list && listBuf.length >= list.length) list.copy(listBuf);
      signal(result, listBuf.buffer);
    });
  }
}
