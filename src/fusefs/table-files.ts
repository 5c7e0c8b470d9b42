/**
 * What the read path needs from the native server's layer table (format at the top of
 * native/clip_fuse.c; built by src/archive/entry-table.ts): where a regular file's data starts in the
 * layer stream, and a file's path for messages.
 */
const HEADER_SIZE = 40;
const INODE_SIZE = 72;
const DIRENT_SIZE = 12;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

export class TableFiles {
  private readonly inodeCount: number;
  private readonly direntsAt: number;
  private readonly poolAt: number;
  /** Built on first use (messages only): each inode's parent directory and name. */
  private parents?: Map<number, [number, string]>;

  constructor(private readonly table: Buffer) {
    this.inodeCount = table.readUInt32LE(4);
    const direntCount = table.readUInt32LE(8);
    const xattrCount = table.readUInt32LE(12);
    const spanCount = table.readUInt32LE(16);
    this.direntsAt = HEADER_SIZE + this.inodeCount * INODE_SIZE;
    this.poolAt = this.direntsAt + direntCount * DIRENT_SIZE + xattrCount * 16 + (spanCount + 1) * 8;
  }

  private record(ino: number): number | undefined {
    return Number.isInteger(ino) && ino >= 1 && ino <= this.inodeCount ? HEADER_SIZE + (ino - 1) * INODE_SIZE : undefined;
  }

  /** The offset of regular file `ino`'s data in the layer stream; undefined if `ino` is no regular file. */
  dataOffset(ino: number): number | undefined {
    const at = this.record(ino);
    if (at === undefined || (this.table.readUInt32LE(at) & S_IFMT) !== S_IFREG) return undefined;
    return Number(this.table.readBigUInt64LE(at + 56));
  }

  /** The path of inode `ino` ("/usr/bin/env"; one of them for a hard-linked file). */
  pathOf(ino: number): string {
    const parents = (this.parents ??= this.parentMap());
    const names: string[] = [];
    for (let at = parents.get(ino); at !== undefined && names.length < this.inodeCount; at = parents.get(at[0])) names.unshift(at[1]);
    return `/${names.join('/')}`;
  }

  private parentMap(): Map<number, [number, string]> {
    const parents = new Map<number, [number, string]>();
    for (let dir = 1; dir <= this.inodeCount; dir++) {
      const at = this.record(dir)!;
      if ((this.table.readUInt32LE(at) & S_IFMT) !== S_IFDIR) continue;
      const first = this.table.readUInt32LE(at + 32);
      const count = this.table.readUInt32LE(at + 36);
      for (let d = first; d < first + count; d++) {
        const de = this.direntsAt + d * DIRENT_SIZE;
        const child = this.table.readUInt32LE(de);
        const nameAt = this.poolAt + this.table.readUInt32LE(de + 4);
        if (!parents.has(child)) parents.set(child, [dir, this.table.toString('utf8', nameAt, nameAt + this.table.readUInt32LE(de + 8))]);
      }
    }
    return parents;
  }
}
