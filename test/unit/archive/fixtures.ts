/**
 * Archives for the archive tests: a realistic layer with every entry type, and a builder for large
 * synthetic layers. Deterministic (seeded PRNG), so failures reproduce.
 */
import { createHash } from 'node:crypto';
import type { ArchiveEntry, Checkpoint, ClipArchive } from '../../../src/archive';

const BLOCK = 512;
const WINDOW = 32768;

/** Mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sha256(s: string | Buffer): string {
  return `sha256:${createHash('sha256').update(s).digest('hex')}`;
}

export function randomBytesFrom(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Text-like bytes (source code / config files), which deflate compresses as it would real layer data. */
export function textBytesFrom(rand: () => number, n: number): Buffer {
  const words = ['return', 'const', 'function', 'import', 'the', 'value', 'if', 'else', '{', '}', '(', ')', '=', ';',
    'self', 'def', 'class', 'for', 'in', 'None', 'true', 'false', 'x', 'y', 'data', 'config', '#', '\n', '  '];
  let s = '';
  while (s.length < n) s += `${words[Math.floor(rand() * words.length)]}${rand() < 0.15 ? '\n' : ' '}${rand() < 0.05 ? Math.floor(rand() * 1e6) : ''}`;
  return Buffer.from(s.slice(0, n), 'latin1');
}

function entry(partial: Partial<ArchiveEntry> & Pick<ArchiveEntry, 'path' | 'type'>): ArchiveEntry {
  return {
    mode: partial.type === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeMs: 1_700_000_000_000,
    linkTarget: '',
    devMajor: 0,
    devMinor: 0,
    xattrs: {},
    dataOffset: 0,
    ...partial,
  };
}

/**
 * Lays `entries` out as a tar stream would (a 512-byte header, sometimes a PAX header, data padded to
 * 512 bytes, two zero blocks at the end) and fills in each dataOffset; returns the stream size.
 */
function layOut(entries: ArchiveEntry[], rand: () => number): number {
  let offset = 0;
  for (const e of entries) {
    offset += BLOCK * (rand() < 0.1 || Object.keys(e.xattrs).length > 0 ? 3 : 1);
    e.dataOffset = offset;
    offset += Math.ceil(e.size / BLOCK) * BLOCK;
  }
  return offset + 2 * BLOCK;
}

/** Checkpoints every ~`span` bytes (the first at 0, one with a short window), bits cycling through 0-7. */
function checkpointsFor(uncompressedSize: number, span: number, rand: () => number, windowKind: 'text' | 'random'): {
  checkpoints: Checkpoint[];
  compressedSize: number;
} {
  const offsets = [0];
  if (uncompressedSize > 20000 + span) offsets.push(20000); // a window shorter than 32 KiB
  for (let o = span; o < uncompressedSize; o += span + Math.floor(rand() * 4096)) offsets.push(o);
  const checkpoints = offsets.map((uncompressedOffset, i): Checkpoint => {
    const n = Math.min(WINDOW, uncompressedOffset);
    return {
      compressedOffset: 10 + Math.floor(uncompressedOffset * 0.4) + i,
      bits: i === 0 ? 0 : i % 8,
      uncompressedOffset,
      window: windowKind === 'text' ? textBytesFrom(rand, n) : randomBytesFrom(rand, n),
    };
  });
  return { checkpoints, compressedSize: 10 + Math.floor(uncompressedSize * 0.4) + offsets.length + 8 };
}

/** A realistic layer: several hundred entries of every type, binary xattrs, non-ASCII names. */
export function realisticArchive(): ClipArchive {
  const rand = prng(42);
  const entries: ArchiveEntry[] = [entry({ path: '.', type: 'dir' })];
  const files: string[] = [];
  for (const dir of ['bin', 'etc', 'usr', 'usr/bin', 'usr/lib', 'usr/share', 'usr/share/doc', 'var', 'var/log', 'tmp']) {
    entries.push(entry({ path: dir, type: 'dir', mode: dir === 'tmp' ? 0o1777 : 0o755 }));
  }
  for (let p = 0; p < 30; p++) {
    const pkg = `usr/lib/python3.11/site-packages/pkg${p}`;
    entries.push(entry({ path: pkg, type: 'dir', mtimeMs: 1_690_000_000_000 + p * 1000 }));
    for (let f = 0; f < 12; f++) {
      const path = `${pkg}/module_${f}${f % 3 === 0 ? '.pyc' : '.py'}`;
      files.push(path);
      entries.push(entry({
        path,
        type: 'file',
        mode: f === 0 ? 0o4755 : 0o644,
        uid: p % 5 === 0 ? 1000 : 0,
        gid: p % 7 === 0 ? 4294967294 : 0,
        size: Math.floor(rand() * 200_000),
        mtimeMs: 1_690_000_000_000 + Math.floor(rand() * 1e10) + (f % 2 ? 0.5e3 : 0),
        xattrs: f === 1 ? { 'security.capability': randomBytesFrom(rand, 20), 'user.empty': Buffer.alloc(0) } : {},
      }));
    }
  }
  for (const name of ['é-accent', 'è-accent', '日本語.txt', '日本人.txt', 'emoji-😀.md', 'emoji-😁.md']) {
    const path = `usr/share/doc/${name}`;
    files.push(path);
    entries.push(entry({ path, type: 'file', size: 100 }));
  }
  for (let i = 0; i < 40; i++) {
    entries.push(entry({ path: `usr/bin/tool${i}`, type: 'symlink', mode: 0o777, linkTarget: i % 2 ? `../lib/tool${i}` : `/usr/lib/tool${i}` }));
    entries.push(entry({ path: `usr/bin/hard${i}`, type: 'hardlink', linkTarget: files[i * 7]! }));
  }
  entries.push(
    entry({ path: 'etc/ancient', type: 'file', size: 1, mtimeMs: -86_400_000 }),
    entry({ path: 'var/log/null', type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 }),
    entry({ path: 'var/log/sda', type: 'block', mode: 0o660, devMajor: 8, devMinor: 0 }),
    entry({ path: 'var/log/big-dev', type: 'block', devMajor: 4095, devMinor: 1048575 }),
    entry({ path: 'var/log/pipe', type: 'fifo', mode: 0o600 }),
    entry({ path: 'etc/removed', type: 'char', devMajor: 0, devMinor: 0 }), // an overlayfs whiteout
    entry({ path: 'var/opaque', type: 'dir', xattrs: { 'trusted.overlay.opaque': Buffer.from('y') } }),
    entry({ path: 'etc/bin.dat', type: 'file', size: 3, xattrs: { 'user.bin': Buffer.from([0, 255, 0, 1, 128]), 'user.big': randomBytesFrom(rand, 4000) } }),
  );
  const uncompressedSize = layOut(entries, rand);
  const { checkpoints, compressedSize } = checkpointsFor(uncompressedSize, 1 << 20, rand, 'text');
  return {
    layerDigest: sha256('layer'),
    diffId: sha256('diff'),
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    compressedSize,
    uncompressedSize,
    entries,
    checkpoints,
    spanDigests: checkpoints.map((_, i) => sha256(`span ${i}`)),
  };
}

/**
 * A large layer shaped like a language runtime's package tree: `count` entries, about one directory per
 * ten files, a few symlinks and hardlinks, files averaging ~10 KB, checkpoints every `span` bytes.
 */
export function largeArchive(count: number, opts: { span?: number; windows?: 'text' | 'random' } = {}): ClipArchive {
  const rand = prng(7);
  const entries: ArchiveEntry[] = [];
  const segments = ['usr', 'lib', 'python3.11', 'site-packages', 'node_modules', 'share', 'include', 'src', 'tests', 'locale'];
  let dir = 'usr/lib';
  let lastFile = '';
  entries.push(entry({ path: 'usr', type: 'dir' }), entry({ path: dir, type: 'dir' }));
  while (entries.length < count) {
    const r = rand();
    if (r < 0.1) {
      const depth = 2 + Math.floor(rand() * 4);
      const parts = dir.split('/').slice(0, depth);
      parts.push(`${segments[Math.floor(rand() * segments.length)]}-${Math.floor(rand() * 1000)}`);
      dir = parts.join('/');
      entries.push(entry({ path: dir, type: 'dir', mtimeMs: 1_690_000_000_000 + Math.floor(rand() * 1e9) }));
    } else if (r < 0.12 && lastFile !== '') {
      entries.push(entry({ path: `${dir}/link-${entries.length}`, type: 'symlink', mode: 0o777, linkTarget: `../${lastFile.split('/').pop()}` }));
    } else if (r < 0.13 && lastFile !== '') {
      entries.push(entry({ path: `${dir}/hard-${entries.length}`, type: 'hardlink', linkTarget: lastFile }));
    } else {
      lastFile = `${dir}/file_${entries.length}${rand() < 0.5 ? '.py' : '.so'}`;
      entries.push(entry({
        path: lastFile,
        type: 'file',
        mode: rand() < 0.2 ? 0o755 : 0o644,
        size: Math.floor(-Math.log(1 - rand()) * 10_000),
        mtimeMs: 1_690_000_000_000 + Math.floor(rand() * 1e9),
      }));
    }
  }
  const uncompressedSize = layOut(entries, rand);
  const { checkpoints, compressedSize } = checkpointsFor(uncompressedSize, opts.span ?? 4 << 20, rand, opts.windows ?? 'text');
  return {
    layerDigest: sha256('large layer'),
    diffId: sha256('large diff'),
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    compressedSize,
    uncompressedSize,
    entries,
    checkpoints,
    spanDigests: checkpoints.map((_, i) => sha256(`large span ${i}`)),
  };
}
