/**
 * The semantic rules every clip archive obeys (docs/format.md, "Validation"). encodeArchive checks them
 * before writing and decodeArchive after reading, so an archive in memory is always one a reader can
 * serve safely: no entry escapes the layer, every offset lies inside the layer, and the checkpoints
 * describe a usable sequence of spans. Checks return a problem (or undefined) and the message naming
 * the entry or checkpoint is only built on failure: archives have 100k entries.
 */
import { ArchiveFormatError } from './format-error';
import { ITEMS_PER_STEP, runToEnd, type Steps } from './slices';
import { startupBundleProblem } from './startup-bundle';
import { startupRangesProblem } from './startup-ranges';
import type { ArchiveEntry, Checkpoint, ClipArchive, EntryType } from './types';

/** Size of the deflate window, the most a checkpoint needs to resume decompression. */
export const WINDOW_SIZE = 32768;

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo']);
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const UINT32_MAX = 0xffffffff;
/** "namespace.name" (user.x, trusted.overlay.opaque, security.capability, ...), no NUL. */
const XATTR_NAME = /^[^.\0]+\.[^\0]+$/;
const XATTR_NAME_MAX = 255; // bytes, Linux XATTR_NAME_MAX
const XATTR_SIZE_MAX = 65536; // bytes, Linux XATTR_SIZE_MAX
/** A lone UTF-16 surrogate: such a string has no UTF-8 form. */
const LONE_SURROGATE = /\p{Cs}/u;

export function validateArchive(a: ClipArchive): void {
  runToEnd(validationSteps(a));
}

/**
 * validateArchive, yielding every ITEMS_PER_STEP entries (see slices.ts). With `entries` false the entries
 * are left to the caller (decodeArchiveAsync checks them in C: entry-table.ts).
 */
export function* validationSteps(a: ClipArchive, entries = true): Steps<void> {
  checkDigest('layer digest', a.layerDigest);
  checkDigest('diff id', a.diffId);
  if (typeof a.mediaType !== 'string') fail('media type is not a string');
  if (a.compression !== 'gzip' && a.compression !== 'none' && a.compression !== 'zstd') fail(`unknown compression ${JSON.stringify(a.compression)}`);
  if (!isUint(a.compressedSize)) fail(`compressed size ${a.compressedSize} is not a non-negative integer`);
  if (!isUint(a.uncompressedSize)) fail(`uncompressed size ${a.uncompressedSize} is not a non-negative integer`);
  if (a.compression === 'none' && a.compressedSize !== a.uncompressedSize) {
    fail(`uncompressed layer has compressed size ${a.compressedSize} != uncompressed size ${a.uncompressedSize}`);
  }
  if (entries) yield* checkEntries(a);
  checkCheckpoints(a);
  if (a.spanDigests.length !== a.checkpoints.length) {
    fail(`${a.spanDigests.length} span digests for ${a.checkpoints.length} checkpoints (want one per span)`);
  }
  a.spanDigests.forEach((d, i) => checkDigest(`span ${i} digest`, d));
  if (a.startupSpans !== undefined) {
    const seen = new Set<number>();
    for (const i of a.startupSpans) {
      if (!isUint(i) || i >= a.checkpoints.length) fail(`start-up span ${i} is not one of the ${a.checkpoints.length} spans`);
      if (seen.has(i)) fail(`start-up span ${i} is listed twice`);
      seen.add(i);
    }
  }
  if (a.startupRanges !== undefined) {
    const problem = startupRangesProblem(a.startupRanges, a.uncompressedSize);
    if (problem !== undefined) fail(problem);
  }
  if (a.startupBundle !== undefined) {
    const problem = startupBundleProblem(a.startupBundle, a.startupRanges);
    if (problem !== undefined) fail(problem);
  }
}

/**
 * Why `p` is not a safe, normalised path inside the layer, or undefined if it is one. "." (the layer
 * root) is allowed here; callers decide where.
 */
export function pathProblem(p: string): string | undefined {
  if (p === '') return 'is empty';
  if (p.includes('\0')) return 'contains a NUL byte';
  if (LONE_SURROGATE.test(p)) return 'is not valid Unicode';
  if (p.startsWith('/')) return 'is absolute';
  const parts = p.split('/');
  if (parts.includes('..')) return "has a '..' component";
  if (p === '.') return undefined;
  if (parts.some((c) => c === '' || c === '.')) return "is not normalised (empty or '.' component, or trailing '/')";
  return undefined;
}

function* checkEntries(a: ClipArchive): Steps<void> {
  /** Type of the latest entry seen so far at each path, for hardlink targets. */
  const earlier = new Map<string, EntryType>();
  for (let i = 0; i < a.entries.length; i++) {
    const e = a.entries[i]!;
    const problem = entryProblem(e, a.uncompressedSize) ?? (e.type === 'hardlink' ? hardlinkProblem(e, earlier) : undefined);
    if (problem !== undefined) fail(`entry ${i} (${JSON.stringify(e.path)}): ${problem}`);
    earlier.set(e.path, e.type);
    if (i % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
  }
}

function entryProblem(e: ArchiveEntry, uncompressedSize: number): string | undefined {
  if (typeof e.path !== 'string') return 'path is not a string';
  const path = pathProblem(e.path);
  if (path !== undefined) return `path ${path}`;
  if (!ENTRY_TYPES.has(e.type)) return `unknown entry type ${JSON.stringify(e.type)}`;
  if (e.path === '.' && e.type !== 'dir') return 'the layer root "." must be a directory';
  if (!Number.isInteger(e.mode) || e.mode < 0 || e.mode > 0o7777) return `mode ${e.mode} is not within 0-07777`;
  if (!isUint32(e.uid)) return `uid ${e.uid} is not a 32-bit unsigned integer`;
  if (!isUint32(e.gid)) return `gid ${e.gid} is not a 32-bit unsigned integer`;
  if (!isUint32(e.devMajor)) return `dev major ${e.devMajor} is not a 32-bit unsigned integer`;
  if (!isUint32(e.devMinor)) return `dev minor ${e.devMinor} is not a 32-bit unsigned integer`;
  if (!isUint(e.size)) return `size ${e.size} is not a non-negative integer`;
  if (e.type !== 'file' && e.size !== 0) return `a ${e.type} has size ${e.size}, want 0`;
  if (!Number.isSafeInteger(e.mtimeMs)) return `mtime ${e.mtimeMs} is not a whole number of ms`;
  if (!isUint(e.dataOffset)) return `data offset ${e.dataOffset} is not a non-negative integer`;
  if (e.dataOffset + e.size > uncompressedSize) {
    return `data [${e.dataOffset}, ${e.dataOffset + e.size}) ends beyond the uncompressed size ${uncompressedSize}`;
  }
  return linkTargetProblem(e) ?? xattrsProblem(e.xattrs);
}

function linkTargetProblem(e: ArchiveEntry): string | undefined {
  if (typeof e.linkTarget !== 'string') return 'link target is not a string';
  if (e.type === 'symlink') {
    if (e.linkTarget === '' || e.linkTarget.includes('\0') || LONE_SURROGATE.test(e.linkTarget)) {
      return `symlink target ${JSON.stringify(e.linkTarget)} is empty or not a valid name`;
    }
  } else if (e.type === 'hardlink') {
    const problem = pathProblem(e.linkTarget);
    if (problem !== undefined) return `hardlink target ${JSON.stringify(e.linkTarget)} ${problem}`;
  } else if (e.linkTarget !== '') {
    return `a ${e.type} has link target ${JSON.stringify(e.linkTarget)}, want none`;
  }
  return undefined;
}

function hardlinkProblem(e: ArchiveEntry, earlier: ReadonlyMap<string, EntryType>): string | undefined {
  if (e.linkTarget === e.path) return 'hardlink to itself';
  const target = earlier.get(e.linkTarget);
  if (target === undefined) return `hardlink target ${JSON.stringify(e.linkTarget)} is not an earlier entry`;
  if (target === 'dir') return `hardlink target ${JSON.stringify(e.linkTarget)} is a directory`;
  return undefined;
}

function xattrsProblem(xattrs: Record<string, Buffer>): string | undefined {
  if (typeof xattrs !== 'object' || xattrs === null) return 'xattrs is not an object';
  for (const name in xattrs) {
    if (!XATTR_NAME.test(name) || LONE_SURROGATE.test(name) || Buffer.byteLength(name) > XATTR_NAME_MAX) {
      return `xattr name ${JSON.stringify(name)} is not "namespace.name" of at most ${XATTR_NAME_MAX} bytes`;
    }
    const value = xattrs[name];
    if (!Buffer.isBuffer(value)) return `xattr ${name} value is not a Buffer`;
    if (value.length > XATTR_SIZE_MAX) return `xattr ${name} value is ${value.length} bytes, at most ${XATTR_SIZE_MAX}`;
  }
  return undefined;
}

function checkCheckpoints(a: ClipArchive): void {
  if (a.checkpoints.length === 0) fail('no checkpoints (want at least one, at uncompressed offset 0)');
  a.checkpoints.forEach((c, i) => {
    const problem = checkpointProblem(a, c, i);
    if (problem !== undefined) fail(`checkpoint ${i}: ${problem}`);
  });
}

function checkpointProblem(a: ClipArchive, c: Checkpoint, i: number): string | undefined {
  if (!isUint(c.compressedOffset)) return `compressed offset ${c.compressedOffset} is not a non-negative integer`;
  if (!isUint(c.uncompressedOffset)) return `uncompressed offset ${c.uncompressedOffset} is not a non-negative integer`;
  if (!Number.isInteger(c.bits) || c.bits < 0 || c.bits > 7) return `bits ${c.bits} is not within 0-7`;
  const prev = a.checkpoints[i - 1];
  if (prev === undefined && c.uncompressedOffset !== 0) {
    return `the first checkpoint is at uncompressed offset ${c.uncompressedOffset}, want 0`;
  }
  if (a.compression === 'zstd') {
    // zstd has no resumable positions: every checkpoint reads the blob from its start.
    if (c.compressedOffset !== 0 || c.bits !== 0) return 'in a zstd layer a checkpoint has compressed offset 0 and bits 0';
  } else if (prev !== undefined && c.compressedOffset <= prev.compressedOffset) {
    return `compressed offset ${c.compressedOffset} is not after the previous checkpoint's ${prev.compressedOffset}`;
  }
  if (prev !== undefined && c.uncompressedOffset <= prev.uncompressedOffset) {
    return `uncompressed offset ${c.uncompressedOffset} is not after the previous checkpoint's ${prev.uncompressedOffset}`;
  }
  if (c.compressedOffset >= a.compressedSize && !(a.compression === 'zstd' && c.compressedOffset === 0)) {
    return `compressed offset ${c.compressedOffset} is beyond the compressed size ${a.compressedSize}`;
  }
  if (c.uncompressedOffset >= a.uncompressedSize && !(i === 0 && a.uncompressedSize === 0)) {
    return `uncompressed offset ${c.uncompressedOffset} is beyond the uncompressed size ${a.uncompressedSize}`;
  }
  if (c.bits > 0 && c.compressedOffset === 0) return `bits ${c.bits} at compressed offset 0 (no byte before it)`;
  return windowProblem(a, c);
}

function windowProblem(a: ClipArchive, c: Checkpoint): string | undefined {
  if (!Buffer.isBuffer(c.window)) return 'window is not a Buffer';
  if (c.window.length > WINDOW_SIZE) return `window is ${c.window.length} bytes, at most ${WINDOW_SIZE}`;
  if (a.compression === 'none') {
    if (c.bits !== 0 || c.compressedOffset !== c.uncompressedOffset || c.window.length !== 0) {
      return 'in an uncompressed layer a checkpoint has equal offsets, bits 0 and no window';
    }
    return undefined;
  }
  if (a.compression === 'zstd') return c.window.length === 0 ? undefined : 'in a zstd layer a checkpoint has no window';
  const want = Math.min(WINDOW_SIZE, c.uncompressedOffset);
  if (c.window.length !== want) {
    return `window is ${c.window.length} bytes, want ${want} (the data before uncompressed offset ${c.uncompressedOffset}, at most ${WINDOW_SIZE})`;
  }
  return undefined;
}

function checkDigest(what: string, d: string): void {
  if (typeof d !== 'string' || !DIGEST.test(d)) fail(`${what} ${JSON.stringify(d)} is not "sha256:" and 64 lowercase hex digits`);
}

function isUint(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function isUint32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= UINT32_MAX;
}

function fail(detail: string): never {
  throw new ArchiveFormatError(detail);
}
