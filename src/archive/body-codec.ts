/**
 * Maps a ClipArchive to and from the protobuf body message (proto/clip/archive/v1/archive.proto).
 * Entries are delta-encoded against the previous entry: the path is front-coded (bytes shared with the
 * previous path + the rest), mtime and data offset are stored as differences. Windows are stored as raw
 * deflate, span digests as raw 32 bytes. Only wire-level problems are reported here (unknown enum
 * values, bad lengths, undecodable bytes); the archive's rules are checked by validateArchive.
 */
import { promisify } from 'node:util';
import { deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { errorMessage } from '../errors';
import {
  Archive as ArchiveBody,
  Checkpoint as CheckpointBody,
  Compression as CompressionBody,
  Entry as EntryBody,
  EntryType as EntryTypeBody,
} from '../generated/clip/archive/v1/archive';
import { ArchiveFormatError } from './format-error';
import type { ArchiveEntry, Checkpoint, ClipArchive, Compression, EntryType } from './types';
import { WINDOW_SIZE } from './validate';

const SHA256_PREFIX = 'sha256:';
const deflateRawAsync = promisify(deflateRaw);

/**
 * The stored (raw deflate) form of windows whose form is already known: read from an archive, or
 * compressed ahead of time by compressWindow. Encoding an archive again (a start-up profile added, a push)
 * then costs no compression, and indexing compresses its windows on the thread pool as they appear.
 */
const storedWindows = new WeakMap<Buffer, Buffer>();

function storedWindow(window: Buffer): Buffer {
  if (window.length === 0) return Buffer.alloc(0);
  let stored = storedWindows.get(window);
  if (stored === undefined) storedWindows.set(window, (stored = deflateRawSync(window)));
  return stored;
}

/** Compresses a checkpoint window on the thread pool now, so that encoding the archive later need not. */
export async function compressWindow(window: Buffer): Promise<void> {
  if (window.length === 0 || storedWindows.has(window)) return;
  storedWindows.set(window, await deflateRawAsync(window));
}
const SHA256_BYTES = 32;

const COMPRESSION_TO_BODY: Record<Compression, CompressionBody> = {
  gzip: CompressionBody.COMPRESSION_GZIP,
  none: CompressionBody.COMPRESSION_NONE,
  zstd: CompressionBody.COMPRESSION_ZSTD,
};
const ENTRY_TYPE_TO_BODY: Record<EntryType, EntryTypeBody> = {
  file: EntryTypeBody.ENTRY_TYPE_FILE,
  dir: EntryTypeBody.ENTRY_TYPE_DIR,
  symlink: EntryTypeBody.ENTRY_TYPE_SYMLINK,
  hardlink: EntryTypeBody.ENTRY_TYPE_HARDLINK,
  char: EntryTypeBody.ENTRY_TYPE_CHAR,
  block: EntryTypeBody.ENTRY_TYPE_BLOCK,
  fifo: EntryTypeBody.ENTRY_TYPE_FIFO,
};
const COMPRESSION_FROM_BODY = invert(COMPRESSION_TO_BODY);
const ENTRY_TYPE_FROM_BODY = invert(ENTRY_TYPE_TO_BODY);

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body message for a validated archive. */
export function toBody(a: ClipArchive): ArchiveBody {
  let prevPath: Buffer = Buffer.alloc(0);
  let prevMtimeMs = 0;
  let prevEnd = 0;
  const entries = a.entries.map((e): EntryBody => {
    const path = Buffer.from(e.path, 'utf8');
    const prefix = sharedPrefixLength(prevPath, path);
    const body: EntryBody = {
      pathPrefix: prefix,
      pathSuffix: path.subarray(prefix),
      type: ENTRY_TYPE_TO_BODY[e.type],
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      mtimeMsDelta: e.mtimeMs - prevMtimeMs,
      dataOffsetDelta: e.dataOffset - prevEnd,
      linkTarget: e.linkTarget,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      xattrs: sortedXattrs(e.xattrs),
    };
    prevPath = path;
    prevMtimeMs = e.mtimeMs;
    prevEnd = e.dataOffset + e.size;
    return body;
  });
  return {
    layerDigest: a.layerDigest,
    diffId: a.diffId,
    mediaType: a.mediaType,
    compression: COMPRESSION_TO_BODY[a.compression],
    compressedSize: a.compressedSize,
    uncompressedSize: a.uncompressedSize,
    entries,
    checkpoints: a.checkpoints.map((c): CheckpointBody => ({
      compressedOffset: c.compressedOffset,
      bits: c.bits,
      uncompressedOffset: c.uncompressedOffset,
      windowDeflate: storedWindow(c.window),
    })),
    spanSha256: a.spanDigests.map((d) => Buffer.from(d.slice(SHA256_PREFIX.length), 'hex')),
    startupSpans: a.startupSpans ?? [],
  };
}

/** The archive a body message describes; the caller validates it. */
export function fromBody(body: ArchiveBody): ClipArchive {
  const compression = COMPRESSION_FROM_BODY.get(body.compression);
  if (compression === undefined) fail(`unknown compression ${body.compression}`);
  return {
    layerDigest: body.layerDigest,
    diffId: body.diffId,
    mediaType: body.mediaType,
    compression,
    compressedSize: body.compressedSize,
    uncompressedSize: body.uncompressedSize,
    entries: entriesFromBody(body.entries),
    checkpoints: body.checkpoints.map((c, i): Checkpoint => ({
      compressedOffset: c.compressedOffset,
      bits: c.bits,
      uncompressedOffset: c.uncompressedOffset,
      window: inflateWindow(c.windowDeflate, `checkpoint ${i}`),
    })),
    spanDigests: body.spanSha256.map((d, i) => {
      if (d.length !== SHA256_BYTES) fail(`span ${i} digest is ${d.length} bytes, want ${SHA256_BYTES}`);
      return SHA256_PREFIX + d.toString('hex');
    }),
    ...(body.startupSpans.length > 0 ? { startupSpans: [...body.startupSpans] } : {}),
  };
}

function entriesFromBody(bodies: EntryBody[]): ArchiveEntry[] {
  let prevPath: Buffer = Buffer.alloc(0);
  let prevMtimeMs = 0;
  let prevEnd = 0;
  return bodies.map((b, i): ArchiveEntry => {
    const where = `entry ${i}`;
    if (b.pathPrefix > prevPath.length) {
      fail(`${where}: path shares ${b.pathPrefix} bytes with the previous path, which has ${prevPath.length}`);
    }
    const pathBytes = b.pathPrefix === 0 ? b.pathSuffix : Buffer.concat([prevPath.subarray(0, b.pathPrefix), b.pathSuffix]);
    const path = decodeUtf8(pathBytes, `${where}: path`);
    const type = ENTRY_TYPE_FROM_BODY.get(b.type);
    if (type === undefined) fail(`${where} (${JSON.stringify(path)}): unknown entry type ${b.type}`);
    const mtimeMs = prevMtimeMs + b.mtimeMsDelta;
    const dataOffset = prevEnd + b.dataOffsetDelta;
    if (!Number.isSafeInteger(mtimeMs) || !Number.isSafeInteger(dataOffset + b.size)) {
      fail(`${where} (${JSON.stringify(path)}): mtime or data offset out of range`);
    }
    if (Object.getPrototypeOf(b.xattrs) !== Object.prototype) {
      fail(`${where} (${JSON.stringify(path)}): xattr name "__proto__" is not "namespace.name"`);
    }
    prevPath = pathBytes;
    prevMtimeMs = mtimeMs;
    prevEnd = dataOffset + b.size;
    return {
      path,
      type,
      mode: b.mode,
      uid: b.uid,
      gid: b.gid,
      size: b.size,
      mtimeMs,
      linkTarget: b.linkTarget,
      devMajor: b.devMajor,
      devMinor: b.devMinor,
      xattrs: { ...b.xattrs },
      dataOffset,
    };
  });
}

function inflateWindow(deflated: Buffer, where: string): Buffer {
  if (deflated.length === 0) return deflated;
  try {
    const window = inflateRawSync(deflated, { maxOutputLength: WINDOW_SIZE });
    storedWindows.set(window, deflated);
    return window;
  } catch (err) {
    const detail = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      ? `inflates to more than ${WINDOW_SIZE} bytes`
      : `does not inflate: ${errorMessage(err)}`;
    throw new ArchiveFormatError(`${where}: window ${detail}`, { cause: err });
  }
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch (err) {
    throw new ArchiveFormatError(`${what} is not valid UTF-8`, { cause: err });
  }
}

function sharedPrefixLength(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Xattrs in name order, so that equal archives encode to equal bytes. */
function sortedXattrs(xattrs: Record<string, Buffer>): Record<string, Buffer> {
  const sorted: Record<string, Buffer> = {};
  for (const name of Object.keys(xattrs).sort()) sorted[name] = xattrs[name]!;
  return sorted;
}

function invert<K extends string, V>(record: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as V, k as K]));
}

function fail(detail: string): never {
  throw new ArchiveFormatError(detail);
}
