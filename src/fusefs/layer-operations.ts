/**
 * The FUSE handlers of one read-only layer. Metadata comes from the frozen LayerTree and is answered
 * synchronously; file bytes come from the LayerStream, at once when their spans are in memory, otherwise
 * when the spans arrive, with EIO if they fail or do not arrive within the read timeout. Every write
 * answers EROFS (the mount is also read-only, so the kernel refuses writes before they get here).
 *
 * fuse-native is path based: the kernel's lookup arrives as getattr(path). Deliberately not implemented,
 * so that libfuse answers them in C without a round trip into JavaScript:
 * - open/release, opendir/releasedir: no handler keeps per-open state, and the read-only mount already
 *   refuses opening for writing (EROFS); this makes opening a file about a quarter cheaper.
 * - access: with default_permissions the kernel checks permissions itself and never asks.
 */
import { InternalError, UnavailableError, errorMessage } from '../errors';
import { EINVAL, EISDIR, ENODATA, ENOENT, ENOSYS, ENOTDIR, ERANGE, EROFS, FuseErrorReporter } from './errno';
import type { LayerOperations, SizedCallback } from './fuse-binding';
import type { LayerNode, LayerTree } from './layer-tree';
import type { LayerStream } from './layer-stream';

const ST_RDONLY = 1;
const NAME_MAX = 255;
const STATFS_BLOCK = 4096;

export interface LayerOperationsOptions {
  /** A read whose bytes have not arrived within this many milliseconds answers EIO. */
  readTimeoutMs: number;
  /** The xattr names under which a `.wh..wh..opq` directory reports "y". */
  opaqueXattrNames: readonly string[];
}

const OPAQUE_VALUE = Buffer.from('y');

/** Answers the xattr protocol for one value or name list: size 0 asks for the length. */
function answerSized(value: Buffer, size: number, cb: SizedCallback): void {
  if (size === 0) cb(value.length);
  else if (size < value.length) cb(ERANGE);
  else cb(value.length, value);
}

const refuseWrite = (...args: unknown[]): void => (args[args.length - 1] as (err: number) => void)(EROFS);

export function layerOperations(tree: LayerTree, stream: LayerStream, errors: FuseErrorReporter, options: LayerOperationsOptions): LayerOperations {
  const xattrLists = new WeakMap<LayerNode, Buffer>();

  function xattrNames(node: LayerNode): Buffer {
    let list = xattrLists.get(node);
    if (!list) {
      const names = [...node.inode.xattrs.keys()];
      if (node.opaque) names.push(...options.opaqueXattrNames.filter((n) => !node.inode.xattrs.has(n)));
      list = Buffer.from(names.map((n) => `${n}\0`).join(''));
      xattrLists.set(node, list);
    }
    return list;
  }

  return {
    getattr(path, cb) {
      const node = tree.lookup(path);
      if (node) cb(0, node.stat);
      else cb(ENOENT);
    },

    readdir(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(ENOENT);
      if (!node.children) return cb(ENOTDIR);
      const { names, stats } = node.listing();
      cb(0, names, stats);
    },

    readlink(path, cb) {
      const node = tree.lookup(path);
      if (!node) cb(ENOENT);
      else if (node.inode.kind !== 'symlink') cb(EINVAL);
      else cb(0, node.inode.linkTarget);
    },

    statfs(_path, cb) {
      cb(0, {
        bsize: STATFS_BLOCK,
        frsize: STATFS_BLOCK,
        blocks: Math.ceil(tree.fileBytes / STATFS_BLOCK),
        bfree: 0,
        bavail: 0,
        files: tree.inodeCount,
        ffree: 0,
        favail: 0,
        fsid: 0,
        flag: ST_RDONLY,
        namemax: NAME_MAX,
      });
    },

    getxattr(path, name, size, cb) {
      // overlayfs probes every lower file for trusted.overlay.* names; on a layer with no attributes at
      // all, ENOSYS makes the kernel stop asking (one round trip per mount instead of one per file).
      if (!tree.anyXattrs) return cb(ENOSYS);
      const node = tree.lookup(path);
      if (!node) return cb(ENOENT);
      const value = node.inode.xattrs.get(name) ?? (node.opaque && options.opaqueXattrNames.includes(name) ? OPAQUE_VALUE : undefined);
      if (!value) return cb(ENODATA);
      answerSized(value, size, cb);
    },

    listxattr(path, size, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(ENOENT);
      answerSized(xattrNames(node), size, cb);
    },

    read(path, _fd, buffer, length, position, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(ENOENT);
      const inode = node.inode;
      if (inode.kind !== 'file') return cb(inode.kind === 'dir' ? EISDIR : EINVAL);
      if (position >= inode.size || length === 0) return cb(0);
      const count = Math.min(length, inode.size - position);
      const copy = (pieces: Buffer[]): void => {
        let at = 0;
        for (const piece of pieces) at += piece.copy(buffer, at);
      };
      const kept = stream.readKept(inode.dataOffset + position, count);
      if (kept) {
        copy(kept);
        return cb(count);
      }

      let answered = false;
      const controller = new AbortController();
      const fail = (err: unknown): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        const failure = new UnavailableError(`[${position}, ${position + count}): ${errorMessage(err)}`, { cause: err });
        controller.abort(failure);
        cb(errors.errno('read', path, failure));
      };
      const timer = setTimeout(() => fail(new Error(`no data within ${options.readTimeoutMs} ms`)), options.readTimeoutMs);
      stream.read(inode.dataOffset + position, count, controller.signal).then((pieces) => {
        if (answered) return;
        const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
        if (total !== count) return fail(new InternalError(`spans gave ${total} bytes`));
        answered = true;
        clearTimeout(timer);
        copy(pieces);
        cb(count);
      }, fail);
    },

    create: refuseWrite,
    write: refuseWrite,
    truncate: refuseWrite,
    ftruncate: refuseWrite,
    mkdir: refuseWrite,
    mknod: refuseWrite,
    unlink: refuseWrite,
    rmdir: refuseWrite,
    rename: refuseWrite,
    link: refuseWrite,
    symlink: refuseWrite,
    chmod: refuseWrite,
    chown: refuseWrite,
    utimens: refuseWrite,
    setxattr: refuseWrite,
    removexattr: refuseWrite,
  };
}
