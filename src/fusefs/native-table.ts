/**
 * Encodes a frozen LayerTree, and the span bounds of its layer stream, into the table the native FUSE
 * server (native/clip_fuse.c) answers from: fixed-size little-endian records plus a string pool. The
 * format is described at the top of clip_fuse.c; the two must change together.
 */
import { type LayerNode, type LayerTree, modeOf, sizeOf } from './layer-tree';

const MAGIC = 0x31544c43; // "CLT1"
const HEADER_SIZE = 40;
const INODE_SIZE = 72;
const DIRENT_SIZE = 12;
const XATTR_SIZE = 16;

export interface TableInput {
  tree: LayerTree;
  /** Span i is [bounds[i], bounds[i + 1]) of the uncompressed layer stream. */
  bounds: readonly number[];
  /** xattr names an opaque directory reports with the value "y". */
  opaqueXattrNames: readonly string[];
}

/** Appends strings and bytes once each, remembering where they went. */
class Pool {
  private readonly parts: Buffer[] = [];
  private length = 0;

  add(bytes: Buffer, nulTerminated = false): number {
    const at = this.length;
    this.parts.push(bytes);
    this.length += bytes.length;
    if (nulTerminated) {
      this.parts.push(Buffer.alloc(1));
      this.length += 1;
    }
    return at;
  }

  get size(): number {
    return this.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

interface InodeRecord {
  node: LayerNode;
  firstDirent: number;
  direntCount: number;
  firstXattr: number;
  xattrCount: number;
  linkOff: number;
  linkLen: number;
}

/** Milliseconds (possibly fractional) as whole nanoseconds, exactly for whole milliseconds; 0 before 1970. */
function nanoseconds(ms: number): bigint {
  if (!(ms > 0)) return 0n;
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

export interface LayerTable {
  bytes: Buffer;
  /** The node recorded for each inode: nodes[ino - 1]. */
  nodes: LayerNode[];
}

export function encodeLayerTable({ tree, bounds, opaqueXattrNames }: TableInput): LayerTable {
  const pool = new Pool();
  const records: InodeRecord[] = [];
  const dirents: Array<[number, number, number]> = [];
  const xattrs: Array<[number, number, number, number]> = [];
  const opaqueValue = Buffer.from('y');

  // Breadth first from the root; every inode is recorded once, at its ino (hard links share one).
  const queue: LayerNode[] = [tree.root];
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head]!;
    const { inode } = node;
    if (records[inode.ino - 1]) continue;
    const record: InodeRecord = { node, firstDirent: dirents.length, direntCount: 0, firstXattr: xattrs.length, xattrCount: 0, linkOff: 0, linkLen: 0 };
    records[inode.ino - 1] = record;
    if (node.children) {
      for (const [name, child] of node.children) {
        const nameBytes = Buffer.from(name);
        dirents.push([child.inode.ino, pool.add(nameBytes), nameBytes.length]);
        record.direntCount++;
        queue.push(child);
      }
    }
    let names = inode.xattrs;
    if (node.opaque) {
      const withMarker = new Map(inode.xattrs);
      for (const name of opaqueXattrNames) if (!withMarker.has(name)) withMarker.set(name, opaqueValue);
      names = withMarker;
    }
    for (const [name, value] of names) {
      const nameBytes = Buffer.from(name);
      xattrs.push([pool.add(nameBytes), nameBytes.length, pool.add(value), value.length]);
      record.xattrCount++;
    }
    if (inode.kind === 'symlink') {
      const target = Buffer.from(inode.linkTarget);
      record.linkOff = pool.add(target, true);
      record.linkLen = target.length;
    }
  }
  if (records.length === 0 || records.some((r) => r === undefined)) {
    throw new Error(`layer table: inode numbers are not dense (${records.length} slots)`);
  }

  const spanCount = Math.max(bounds.length - 1, 0);
  const size = HEADER_SIZE + records.length * INODE_SIZE + dirents.length * DIRENT_SIZE + xattrs.length * XATTR_SIZE + (spanCount + 1) * 8 + pool.size;
  const out = Buffer.alloc(size);
  let at = 0;
  const u32 = (v: number): void => void (at = out.writeUInt32LE(v >>> 0, at));
  // Without BigInt: values are safe integers (< 2^53), written as two 32-bit halves.
  const u64 = (v: number): void => {
    const n = Math.max(0, Math.trunc(v));
    at = out.writeUInt32LE(n % 0x1_0000_0000, at);
    at = out.writeUInt32LE(Math.floor(n / 0x1_0000_0000), at);
  };

  u32(MAGIC);
  u32(records.length);
  u32(dirents.length);
  u32(xattrs.length);
  u32(spanCount);
  u32(pool.size);
  u32(tree.anyXattrs ? 1 : 0);
  u32(0);
  u64(tree.fileBytes);
  for (const r of records) {
    const { inode } = r.node;
    const device = inode.kind === 'char' || inode.kind === 'block';
    for (const v of [modeOf(inode), inode.uid, inode.gid, inode.nlink, device ? inode.devMajor : 0, device ? inode.devMinor : 0, r.linkOff, r.linkLen]) u32(v);
    for (const v of [r.firstDirent, r.direntCount, r.firstXattr, r.xattrCount]) u32(v);
    u64(sizeOf(inode));
    u64(inode.kind === 'file' ? inode.dataOffset : 0);
    at = out.writeBigUInt64LE(nanoseconds(inode.mtimeMs), at);
  }
  for (const [ino, nameOff, nameLen] of dirents) for (const v of [ino, nameOff, nameLen]) u32(v);
  for (const x of xattrs) for (const v of x) u32(v);
  if (spanCount === 0) u64(0);
  else for (const b of bounds) u64(b);
  pool.bytes().copy(out, at);
  return { bytes: out, nodes: records.map((r) => r.node) };
}
