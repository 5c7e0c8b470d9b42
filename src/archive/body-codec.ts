/**
 * Maps a ClipArchive to and from the protobuf body message (proto/clip/archive/v1/archive.proto).
 * Entries are delta-encoded against the previous entry: the path is front-coded (bytes shared with the
 * previous path + the rest), mtime and data offset are stored as differences. Windows are stored as raw
 * deflate, span digests as raw 32 bytes. Only wire-level problems are reported here (unknown enum
 * values, bad lengths, undecodable bytes); the archive's rules are checked by validateArchive.
 * This file encodes; body-decoder.ts decodes, within the archive limits.
 */
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { promisify } from 'node:util';
import { deflateRaw, deflateRawSync } from 'node:zlib';
import {
  Archive as ArchiveBody,
  Checkpoint as CheckpointBody,
  Compression as CompressionBody,
  Entry as EntryBody,
  EntryType as EntryTypeBody,
} from '../generated/clip/archive/v1/archive';
import { ITEMS_PER_STEP, type Steps } from './slices';
import { encodeStartupRanges } from './startup-ranges';
import type { ClipArchive, Compression, EntryType } from './types';

export const SHA256_PREFIX = 'sha256:';
/** Wire tags (field number << 3 | length-delimited) of Archive.entries and Archive.checkpoints. */
const ENTRIES_TAG = (7 << 3) | 2;
const CHECKPOINTS_TAG = (8 << 3) | 2;
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

/** Records that `window` is stored as `deflated` (a window read from an archive), so encoding need not compress it. */
export function rememberStoredWindow(window: Buffer, deflated: Buffer): void {
  storedWindows.set(window, deflated);
}

/** Compresses a checkpoint window on the thread pool now, so that encoding the archive later need not. */
export async function compressWindow(window: Buffer): Promise<void> {
  if (window.length === 0 || storedWindows.has(window)) return;
  storedWindows.set(window, await deflateRawAsync(window));
}
export const SHA256_BYTES = 32;

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
export const COMPRESSION_FROM_BODY = invert(COMPRESSION_TO_BODY);
export const ENTRY_TYPE_FROM_BODY = invert(ENTRY_TYPE_TO_BODY);

/**
 * The body of a validated archive, encoded field by field in field order (the bytes ArchiveBody.encode would
 * write for the whole message), yielding every ITEMS_PER_STEP entries (see slices.ts).
 */
export function* encodeBody(a: ClipArchive): Steps<Uint8Array> {
  const writer = new BinaryWriter();
  ArchiveBody.encode(
    {
      layerDigest: a.layerDigest,
      diffId: a.diffId,
      mediaType: a.mediaType,
      compression: COMPRESSION_TO_BODY[a.compression],
      compressedSize: a.compressedSize,
      uncompressedSize: a.uncompressedSize,
      entries: [],
      checkpoints: [],
      spanSha256: [],
      startupSpans: [],
      startupRanges: [],
      startupBundle: undefined,
    },
    writer,
  );
  let prevPath: Buffer = Buffer.alloc(0);
  let prevMtimeMs = 0;
  let prevEnd = 0;
  for (let i = 0; i < a.entries.length; i++) {
    const e = a.entries[i]!;
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
    EntryBody.encode(body, writer.uint32(ENTRIES_TAG).fork()).join();
    prevPath = path;
    prevMtimeMs = e.mtimeMs;
    prevEnd = e.dataOffset + e.size;
    if (i % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
  }
  for (const c of a.checkpoints) {
    const body: CheckpointBody = {
      compressedOffset: c.compressedOffset,
      bits: c.bits,
      uncompressedOffset: c.uncompressedOffset,
      windowDeflate: storedWindow(c.window),
    };
    CheckpointBody.encode(body, writer.uint32(CHECKPOINTS_TAG).fork()).join();
    yield; // a window not compressed ahead of time costs a deflate
  }
  writeTail(writer, a.spanDigests, a);
  return writer.finish();
}

/** Writes the fields that follow the checkpoints: span digests and the start-up fields. */
function writeTail(writer: BinaryWriter, spanDigests: string[], a: Pick<ClipArchive, 'startupSpans' | 'startupRanges' | 'startupBundle'>): void {
  ArchiveBody.encode(
    {
      layerDigest: '',
      diffId: '',
      mediaType: '',
      compression: 0,
      compressedSize: 0,
      uncompressedSize: 0,
      entries: [],
      checkpoints: [],
      spanSha256: spanDigests.map(rawDigest),
      ...startupFieldBodies(a),
    },
    writer,
  );
}

/** Field numbers of Archive.startup_spans, startup_ranges and startup_bundle (docs/format.md). */
const STARTUP_FIELDS: ReadonlySet<number> = new Set([10, 11, 12]);

/**
 * `body` (an encoded Archive) with its start-up fields replaced by those of `a`, without decoding or
 * encoding anything else: the fields are cut out wherever they are and the new ones appended, where
 * encodeBody writes them, so the result equals encodeBody of the archive with these fields. Throws on a
 * body that is not a sequence of well-formed fields (callers pass bodies that were decoded already).
 */
export function replaceStartupFields(body: Uint8Array, a: Pick<ClipArchive, 'startupSpans' | 'startupRanges' | 'startupBundle'>): Uint8Array {
  const reader = new BinaryReader(body);
  const kept: Uint8Array[] = [];
  let start = 0;
  while (reader.pos < reader.len) {
    const at = reader.pos;
    const [field, wireType] = reader.tag();
    reader.skip(wireType, field);
    if (STARTUP_FIELDS.has(field)) {
      kept.push(body.subarray(start, at));
      start = reader.pos;
    }
  }
  kept.push(body.subarray(start));
  const writer = new BinaryWriter();
  writeTail(writer, [], a);
  return Buffer.concat([...kept, writer.finish()]);
}

function startupFieldBodies(a: Pick<ClipArchive, 'startupSpans' | 'startupRanges' | 'startupBundle'>): Pick<ArchiveBody, 'startupSpans' | 'startupRanges' | 'startupBundle'> {
  return {
    startupSpans: a.startupSpans ?? [],
    startupRanges: encodeStartupRanges(a.startupRanges ?? []),
    startupBundle: a.startupBundle && {
      sha256: rawDigest(a.startupBundle.digest),
      compressedSize: a.startupBundle.compressedSize,
      uncompressedSize: a.startupBundle.uncompressedSize,
      compression: COMPRESSION_TO_BODY[a.startupBundle.compression],
      uncompressedSha256: rawDigest(a.startupBundle.uncompressedDigest),
    },
  };
}

/** The 32 raw bytes of a validated "sha256:<hex>" digest. */
function rawDigest(digest: string): Buffer {
  return Buffer.from(digest.slice(SHA256_PREFIX.length), 'hex');
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

