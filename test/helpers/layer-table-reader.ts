/**
 * Reads the native FUSE server's layer table field by field (the layout documented at the top of
 * src/fusefs/native/clip_fuse.c), for tests of the table src/archive/entry-table.ts builds.
 */
import assert from 'node:assert/strict';

export interface TableInode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  /** Symlink target ('' for others). */
  link: string;
  /** Whether the link target is NUL-terminated in the pool. */
  linkNul: boolean;
  size: bigint;
  dataOffset: bigint;
  mtimeNs: bigint;
  /** Directory entries in order: name -> ino. */
  children: Map<string, number>;
  xattrs: Record<string, string>;
}

export class TableReader {
  readonly header: number[];
  readonly fileBytes: bigint;
  readonly bounds: bigint[];
  readonly inodes: TableInode[];

  constructor(b: Buffer) {
    this.header = [0, 4, 8, 12, 16, 20, 24, 28].map((o) => b.readUInt32LE(o));
    const [, inodeCount, direntCount, xattrCount, spanCount, poolLen] = this.header;
    this.fileBytes = b.readBigUInt64LE(32);
    const direntsAt = 40 + inodeCount * 72;
    const xattrsAt = direntsAt + direntCount * 12;
    const boundsAt = xattrsAt + xattrCount * 16;
    const poolAt = boundsAt + (spanCount + 1) * 8;
    assert.equal(b.length - poolAt, poolLen, 'the pool fills the rest of the table');
    const text = (off: number, len: number): string => b.toString('utf8', poolAt + off, poolAt + off + len);
    this.bounds = Array.from({ length: spanCount + 1 }, (_, i) => b.readBigUInt64LE(boundsAt + 8 * i));
    this.inodes = Array.from({ length: inodeCount }, (_, i) => {
      const at = 40 + i * 72;
      const f = Array.from({ length: 12 }, (_, k) => b.readUInt32LE(at + 4 * k));
      const children = new Map<string, number>();
      for (let d = f[8]; d < f[8] + f[9]; d++) {
        const de = direntsAt + 12 * d;
        children.set(text(b.readUInt32LE(de + 4), b.readUInt32LE(de + 8)), b.readUInt32LE(de));
      }
      const xattrs: Record<string, string> = {};
      for (let x = f[10]; x < f[10] + f[11]; x++) {
        const xe = xattrsAt + 16 * x;
        xattrs[text(b.readUInt32LE(xe), b.readUInt32LE(xe + 4))] = text(b.readUInt32LE(xe + 8), b.readUInt32LE(xe + 12));
      }
      return {
        ino: i + 1,
        mode: f[0],
        uid: f[1],
        gid: f[2],
        nlink: f[3],
        rdevMajor: f[4],
        rdevMinor: f[5],
        link: text(f[6], f[7]),
        linkNul: f[7] > 0 && b[poolAt + f[6] + f[7]] === 0,
        size: b.readBigUInt64LE(at + 48),
        dataOffset: b.readBigUInt64LE(at + 56),
        mtimeNs: b.readBigUInt64LE(at + 64),
        children,
        xattrs,
      };
    });
  }

  get root(): TableInode {
    return this.inodes[0];
  }

  /** The inode at a FUSE path ("/", "/usr/bin/env"), or undefined. */
  lookup(path: string): TableInode | undefined {
    let node: TableInode | undefined = this.root;
    for (const name of path.split('/').filter((p) => p !== '')) {
      const ino: number | undefined = node?.children.get(name);
      node = ino === undefined ? undefined : this.inodes[ino - 1];
    }
    return node;
  }

  /** A directory's listing as readdir gives it. */
  names(path: string): string[] {
    return ['.', '..', ...this.lookup(path)!.children.keys()];
  }
}
