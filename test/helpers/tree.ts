/**
 * A manifest of a mounted root filesystem, for comparing what two snapshotters (or a snapshotter and an
 * expected tree) present: every entry with its type, permission bits, owner, size, content hash, link target
 * and device number, plus which paths are hard links of each other (as groups of paths, never inode numbers,
 * so two different mounts compare equal).
 *
 * Only asynchronous filesystem calls are used: the tree may be served by a FUSE daemon, and a synchronous
 * call would block this process's only thread while the kernel waits for an answer.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, BigIntStats } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { runOk } from './processes';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface TreeEntry {
  /** Absolute path inside the tree: "/" for the root, "/etc/passwd", ... */
  path: string;
  type: EntryType;
  /** Permission bits including setuid (04000), setgid (02000) and sticky (01000). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  /** Regular files only: hex sha256 of the content. */
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Character and block devices only: st_rdev as major/minor. */
  rdev?: { major: number; minor: number };
  /** Extended attributes (name → hex value), when present. */
  xattrs?: Record<string, string>;
}

export interface TreeManifest {
  /** Sorted by path (byte order). */
  entries: TreeEntry[];
  /** Paths sharing one inode (non-directories with two or more names in the tree); each group sorted, groups sorted. */
  hardlinks: string[][];
}

export interface WalkOptions {
  /** Paths (as in TreeEntry.path) to leave out together with everything below them. */
  exclude?: (p: string) => boolean;
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  throw new Error(`unknown file type, mode ${st.mode.toString(8)}`);
}

/** Linux dev_t encoding (glibc's gnu_dev_major/minor). */
function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n));
  return { major, minor };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

function compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Walks `root` (not following symlinks, not crossing into anything but what readdir shows) into a manifest. */
export async function walkTree(root: string, opts: WalkOptions = {}): Promise<TreeManifest> {
  const entries: TreeEntry[] = [];
  const inodes = new Map<string, string[]>();

  const visit = async (rel: string): Promise<void> => {
    if (opts.exclude?.(rel)) return;
    const abs = rel === '/' ? root : path.join(root, rel);
    const st = await fsp.lstat(abs, { bigint: true });
    const type = typeOf(st);
    const entry: TreeEntry = { path: rel, type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid) };
    if (type === 'file') {
      entry.size = Number(st.size);
      entry.sha256 = await sha256File(abs);
    } else if (type === 'symlink') {
      entry.target = await fsp.readlink(abs);
    } else if (type === 'char' || type === 'block') {
      entry.rdev = splitDev(st.rdev);
    }
    entries.push(entry);
    if (type !== 'dir') {
      const inode = `${st.dev}:${st.ino}`;
      const names = inodes.get(inode);
      if (names) names.push(rel);
      else inodes.set(inode, [rel]);
      return;
    }
    const names = (await fsp.readdir(abs)).sort(compare);
    for (const name of names) await visit(rel === '/' ? `/${name}` : `${rel}/${name}`);
  };

  await visit('/');
  const xattrs = await readXattrs(root);
  for (const e of entries) {
    const x = xattrs.get(e.path);
    if (x) e.xattrs = x;
  }
  entries.sort((a, b) => compare(a.path, b.path));
  const hardlinks = [...inodes.values()]
    .filter((names) => names.length > 1)
    .map((names) => names.sort(compare))
    .sort((a, b) => compare(a[0]!, b[0]!));
  return { entries, hardlinks };
}

/**
 * Every extended attribute below root, by tree path, from one `getfattr -R` run (Node has no xattr API;
 * a child process is also safe against a FUSE server living in this process).
 */
async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const out = await runOk('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { timeoutMs: 120_000 });
  const result = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of out.split('\n')) {
    const file = /^# file: (.*)$/.exec(line);
    if (file) {
      const abs = file[1]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      const rel = abs === root ? '/' : abs.slice(root.length);
      current = {};
      result.set(rel, current);
      continue;
    }
    const attr = /^([^=]+)=(.*)$/.exec(line);
    if (attr && current) current[attr[1]!] = attr[2]!;
  }
  return result;
}

/** The entry at `p`, or undefined. */
export function entryAt(manifest: TreeManifest, p: string): TreeEntry | undefined {
  return manifest.entries.find((e) => e.path === p);
}

/** Paths of the direct children of directory `dir` in the manifest, sorted. */
export function childrenOf(manifest: TreeManifest, dir: string): string[] {
  const prefix = dir === '/' ? '/' : `${dir}/`;
  return manifest.entries
    .filter((e) => e.path !== '/' && e.path.startsWith(prefix) && !e.path.slice(prefix.length).includes('/'))
    .map((e) => e.path.slice(prefix.length));
}

function describe(e: TreeEntry): string {
  const parts = [e.type, `mode=${e.mode.toString(8).padStart(4, '0')}`, `owner=${e.uid}:${e.gid}`];
  if (e.size !== undefined) parts.push(`size=${e.size}`);
  if (e.sha256 !== undefined) parts.push(`sha256=${e.sha256.slice(0, 12)}`);
  if (e.target !== undefined) parts.push(`target=${JSON.stringify(e.target)}`);
  if (e.rdev !== undefined) parts.push(`rdev=${e.rdev.major}:${e.rdev.minor}`);
  if (e.xattrs !== undefined) parts.push(`xattrs=${JSON.stringify(e.xattrs)}`);
  return parts.join(' ');
}

/**
 * Human-readable differences between two manifests (empty when they are equal), for assertion messages:
 * "only in A: /x", "/y: A file mode=0644 ... | B file mode=0600 ...", hard link group differences.
 */
export function diffManifests(a: TreeManifest, b: TreeManifest, names: [string, string] = ['A', 'B']): string[] {
  const out: string[] = [];
  const mapA = new Map(a.entries.map((e) => [e.path, e]));
  const mapB = new Map(b.entries.map((e) => [e.path, e]));
  const paths = [...new Set([...mapA.keys(), ...mapB.keys()])].sort(compare);
  for (const p of paths) {
    const ea = mapA.get(p);
    const eb = mapB.get(p);
    if (!ea) out.push(`only in ${names[1]}: ${p} (${describe(eb!)})`);
    else if (!eb) out.push(`only in ${names[0]}: ${p} (${describe(ea)})`);
    else if (describe(ea) !== describe(eb) || ea.sha256 !== eb.sha256) {
      out.push(`${p}: ${names[0]} ${describe(ea)} | ${names[1]} ${describe(eb)}`);
    }
  }
  const groups = (m: TreeManifest): Set<string> => new Set(m.hardlinks.map((g) => g.join(' = ')));
  const ga = groups(a);
  const gb = groups(b);
  for (const g of ga) if (!gb.has(g)) out.push(`hard link group only in ${names[0]}: ${g}`);
  for (const g of gb) if (!ga.has(g)) out.push(`hard link group only in ${names[1]}: ${g}`);
  return out;
}
