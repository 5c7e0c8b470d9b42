/**
 * The in-memory index of one layer, built once from the archive's entries and never changed afterwards:
 * path → node, each directory with its children, each node with the stat attributes the kernel is given.
 *
 * Building follows tar extraction semantics: entries apply in order, a later entry for a path replaces the
 * earlier one (a directory over a directory only updates its attributes), missing parent directories
 * appear as 0755 root-owned directories, and a hard link names the inode its target had at that point.
 *
 * OCI whiteouts are turned into overlayfs form, the way stargz and SOCI present them: `.wh.<name>` becomes
 * a character device 0/0 called `<name>` (unless the layer also has a real `<name>`), `.wh..wh..opq` marks
 * its directory opaque, and no `.wh.*` name is ever visible.
 */
import { constants } from 'node:fs';
import type { ArchiveEntry, ClipArchive, EntryType } from '../archive/types';
import { InvalidArgumentError } from '../errors';

const { S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO } = constants;

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
/** `.wh..wh.*` names other than the opaque marker are aufs bookkeeping; containerd ignores them too. */
const WHITEOUT_META_PREFIX = '.wh..wh.';

const DIR_SIZE = 4096;
const BLOCK_SIZE = 4096;

export type NodeKind = Exclude<EntryType, 'hardlink'> | 'whiteout';

/** The attributes handed to the kernel (see native-table.ts). */
export interface NodeStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: Date;
  mtime: Date;
  ctime: Date;
}

/** What a name points at; hard links share one. */
export interface Inode {
  kind: NodeKind;
  /** Permission bits (07777); the type bits are added from `kind`. */
  perm: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  devMajor: number;
  devMinor: number;
  linkTarget: string;
  /** Offset of the file's data in the uncompressed layer stream. */
  dataOffset: number;
  xattrs: ReadonlyMap<string, Buffer>;
  /** Number of names (non-directories); 0 until the tree is frozen for directories. */
  nlink: number;
  /** Assigned when the tree is frozen. */
  ino: number;
  /** Computed on first use, once the tree is frozen. */
  stat?: NodeStat;
}

export class LayerNode {
  /** Directories only. */
  readonly children?: Map<string, LayerNode>;
  /** Directories only: names hidden by `.wh.<name>`, with the marker's mtime. */
  readonly whiteouts?: Map<string, number>;
  /** Directories only: the directory had `.wh..wh..opq`. */
  opaque = false;

  constructor(
    public inode: Inode,
    readonly parent: LayerNode | undefined,
  ) {
    if (inode.kind === 'dir') {
      this.children = new Map();
      this.whiteouts = new Map();
    }
  }

  /** Computed on first use: a container reads a small part of its image. */
  get stat(): NodeStat {
    return (this.inode.stat ??= statOf(this.inode));
  }
}

export class LayerTree {
  private constructor(
    readonly root: LayerNode,
    private readonly byPath: Map<string, LayerNode>,
    /** Distinct inodes, for statfs. */
    readonly inodeCount: number,
    /** Bytes of regular file data, each hard-linked file counted once, for statfs. */
    readonly fileBytes: number,
    /** Entries that could not be applied (a hard link to nothing, "..", ...): logged by the caller. */
    readonly problems: readonly string[],
    /** Whether any node has an extended attribute (its own, or an opaque directory's overlay marker). */
    readonly anyXattrs: boolean,
  ) {}

  /** Builds the index; throws InvalidArgumentError if an entry's data lies outside the layer stream. */
  static build(archive: Pick<ClipArchive, 'entries' | 'uncompressedSize' | 'layerDigest'>): LayerTree {
    const builder = new TreeBuilder(archive.layerDigest, archive.uncompressedSize);
    for (const entry of archive.entries) builder.add(entry);
    return builder.freeze(
      (root, byPath, inodeCount, fileBytes, anyXattrs) => new LayerTree(root, byPath, inodeCount, fileBytes, builder.problems, anyXattrs),
    );
  }

  /** Looks up a FUSE path ("/", "/usr/bin/env"). */
  lookup(path: string): LayerNode | undefined {
    return this.byPath.get(path);
  }
}

/** The kernel's 32-bit device number encoding (new_encode_dev), as st_rdev travels in FUSE replies. */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

const TYPE_BITS: Record<NodeKind, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  char: S_IFCHR,
  block: S_IFBLK,
  fifo: S_IFIFO,
  whiteout: S_IFCHR,
};

function implicitDirectory(): Inode {
  return {
    kind: 'dir',
    perm: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeMs: 0,
    devMajor: 0,
    devMinor: 0,
    linkTarget: '',
    dataOffset: 0,
    xattrs: NO_XATTRS,
    nlink: 0,
    ino: 0,
  };
}

function inodeOf(entry: ArchiveEntry, kind: NodeKind): Inode {
  return {
    kind,
    perm: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: kind === 'file' ? entry.size : 0,
    mtimeMs: entry.mtimeMs,
    devMajor: entry.devMajor,
    devMinor: entry.devMinor,
    linkTarget: entry.linkTarget,
    dataOffset: entry.dataOffset,
    xattrs: xattrsOf(entry),
    nlink: kind === 'dir' ? 0 : 1,
    ino: 0,
  };
}

function whiteoutInode(mtimeMs: number): Inode {
  return { ...implicitDirectory(), kind: 'whiteout', perm: 0, mtimeMs, nlink: 1 };
}

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

function xattrsOf(entry: ArchiveEntry): ReadonlyMap<string, Buffer> {
  const names = Object.keys(entry.xattrs);
  return names.length === 0 ? NO_XATTRS : new Map(names.map((n) => [n, entry.xattrs[n]]));
}

/** Path components of an archive path; undefined for a path that climbs out of the layer. */
function components(path: string): string[] | undefined {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return parts.includes('..') ? undefined : parts;
}

class TreeBuilder {
  readonly root = new LayerNode(implicitDirectory(), undefined);
  readonly problems: string[] = [];

  constructor(
    private readonly layerDigest: string,
    private readonly streamSize: number,
  ) {}

  add(entry: ArchiveEntry): void {
    const parts = components(entry.path);
    if (!parts) return this.problem(entry.path, 'path leaves the layer');
    if (parts.slice(0, -1).some((p) => p.startsWith(WHITEOUT_PREFIX))) return this.problem(entry.path, 'inside a whiteout');
    if (parts.length === 0) {
      if (entry.type === 'dir') this.root.inode = inodeOf(entry, 'dir');
      else this.problem(entry.path, `the layer root cannot be a ${entry.type}`);
      return;
    }
    const name = parts[parts.length - 1];
    const parent = this.directory(parts.slice(0, -1));
    if (name.startsWith(WHITEOUT_PREFIX)) return this.whiteout(parent, name, entry);

    if (entry.type === 'hardlink') return this.hardlink(parent, name, entry);
    if (entry.type === 'file' && entry.dataOffset + entry.size > this.streamSize) {
      throw new InvalidArgumentError(
        `layer ${this.layerDigest}: entry ${entry.path}: data [${entry.dataOffset}, ${entry.dataOffset + entry.size}) lies outside the uncompressed stream (${this.streamSize} bytes)`,
      );
    }
    const existing = parent.children!.get(name);
    if (entry.type === 'dir' && existing?.children) {
      existing.inode = inodeOf(entry, 'dir');
      return;
    }
    this.place(parent, name, new LayerNode(inodeOf(entry, entry.type), parent));
  }

  private whiteout(parent: LayerNode, name: string, entry: ArchiveEntry): void {
    if (name === OPAQUE_MARKER) parent.opaque = true;
    else if (name.startsWith(WHITEOUT_META_PREFIX)) return;
    else if (name === WHITEOUT_PREFIX) this.problem(entry.path, 'whiteout without a name');
    else parent.whiteouts!.set(name.slice(WHITEOUT_PREFIX.length), entry.mtimeMs);
  }

  private hardlink(parent: LayerNode, name: string, entry: ArchiveEntry): void {
    const targetParts = components(entry.linkTarget);
    const target = targetParts && this.find(targetParts);
    if (!target) return this.problem(entry.path, `hard link to missing ${entry.linkTarget}`);
    if (target.children) return this.problem(entry.path, `hard link to directory ${entry.linkTarget}`);
    if (parent.children!.get(name)?.inode === target.inode) return;
    target.inode.nlink++;
    this.place(parent, name, new LayerNode(target.inode, parent));
  }

  /** Puts a node under a name, releasing whatever had the name before. */
  private place(parent: LayerNode, name: string, node: LayerNode): void {
    const old = parent.children!.get(name);
    if (old) release(old);
    // Delete first so a replaced name moves to the end, where tar order puts it.
    parent.children!.delete(name);
    parent.children!.set(name, node);
  }

  /** The directory at `parts`, creating missing ones (and replacing non-directories in the way). */
  private directory(parts: string[]): LayerNode {
    let dir = this.root;
    for (const part of parts) {
      let next = dir.children!.get(part);
      if (!next?.children) {
        if (next) this.problem(parts.join('/'), `${next.inode.kind} replaced by a directory`);
        next = new LayerNode(implicitDirectory(), dir);
        this.place(dir, part, next);
      }
      dir = next;
    }
    return dir;
  }

  private find(parts: string[]): LayerNode | undefined {
    let node: LayerNode | undefined = this.root;
    for (const part of parts) node = node?.children?.get(part);
    return node;
  }

  private problem(path: string, what: string): void {
    this.problems.push(`${path}: ${what}`);
  }

  /** Adds whiteout nodes, assigns inode numbers, counts directory links and indexes every path. */
  freeze<T>(make: (root: LayerNode, byPath: Map<string, LayerNode>, inodeCount: number, fileBytes: number, anyXattrs: boolean) => T): T {
    const byPath = new Map<string, LayerNode>([['/', this.root]]);
    let nextIno = 1;
    let fileBytes = 0;
    let anyXattrs = false;
    const stack: [LayerNode, string][] = [[this.root, '']];
    const dirs: LayerNode[] = [];
    while (stack.length > 0) {
      const [node, path] = stack.pop()!;
      const inode = node.inode;
      if (inode.xattrs.size > 0 || node.opaque) anyXattrs = true;
      if (inode.ino === 0) {
        inode.ino = nextIno++;
        if (inode.kind === 'file') fileBytes += inode.size;
      }
      if (!node.children) continue;
      dirs.push(node);
      for (const [name, mtimeMs] of node.whiteouts!) {
        if (!node.children.has(name)) node.children.set(name, new LayerNode(whiteoutInode(mtimeMs), node));
      }
      for (const [name, child] of node.children) {
        const childPath = `${path}/${name}`;
        byPath.set(childPath, child);
        stack.push([child, childPath]);
      }
    }
    for (const dir of dirs) {
      let subdirs = 0;
      for (const child of dir.children!.values()) if (child.children) subdirs++;
      dir.inode.nlink = 2 + subdirs;
    }
    return make(this.root, byPath, nextIno - 1, fileBytes, anyXattrs);
  }
}

/** A name goes away: its inode loses a link; a directory takes its whole subtree with it. */
function release(node: LayerNode): void {
  if (!node.children) {
    node.inode.nlink--;
    return;
  }
  for (const child of node.children.values()) release(child);
}

/** st_mode: the type bits of the inode's kind and its permission bits. */
export function modeOf(inode: Inode): number {
  return TYPE_BITS[inode.kind] | inode.perm;
}

/** st_size: the data size of a file, 4096 for a directory, the target's length for a symlink. */
export function sizeOf(inode: Inode): number {
  if (inode.kind === 'dir') return DIR_SIZE;
  if (inode.kind === 'symlink') return Buffer.byteLength(inode.linkTarget);
  return inode.size;
}

function statOf(inode: Inode): NodeStat {
  const time = new Date(inode.mtimeMs);
  const size = sizeOf(inode);
  const hasDevice = inode.kind === 'char' || inode.kind === 'block';
  return {
    mode: modeOf(inode),
    uid: inode.uid,
    gid: inode.gid,
    size,
    dev: 0,
    nlink: inode.nlink,
    ino: inode.ino,
    rdev: hasDevice ? makedev(inode.devMajor, inode.devMinor) : 0,
    blksize: BLOCK_SIZE,
    blocks: inode.kind === 'file' || inode.kind === 'dir' ? Math.ceil(size / 512) : 0,
    atime: time,
    mtime: time,
    ctime: time,
  };
}
