/**
 * Maps a ClipArchive to and from the protobuf body message (proto/clip/archive/v1/archive.proto).
 * Entries are delta-encoded against the previous entry (entry-encoder.ts). Windows are stored as raw
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
} from '../generated/clip/archive/v1/archive';
import { ENTRY_TYPE_TO_BODY, EntryEncoder, takeEncodedEntries } from './entry-encoder';
import { ITEMS_PER_STEP, type Steps } from './slices';
import { encodeStartupRanges } from './startup-ranges';
import type { ClipArchive, Compression } from './types';

export const SHA256_PREFIX = 'sha256:';
/** Wire tag (field number << 3 | length-delimited) of Archive.checkpoints. */
const CHECKPOINTS_TAG = (8 << 3) | 2;
/** Wire tag of Checkpoint.window_deflate (field 4, length-delimited). */
const WINDOW_TAG = (4 << 3) | 2;
const NO_BYTES = Buffer.alloc(0);
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
export const COMPRESSION_FROM_BODY = invert(COMPRESSION_TO_BODY);
export const ENTRY_TYPE_FROM_BODY = invert(ENTRY_TYPE_TO_BODY);

/**
 * The body of a validated archive, encoded field by field in field order (the bytes ArchiveBody.encode would
 * write for the whole message), yielding every ITEMS_PER_STEP entries (see slices.ts). The body is returned
 * in parts, to be concatenated in order (frameSteps does, as it frames them).
 */
export function* encodeBody(a: ClipArchive): Steps<Uint8Array[]> {
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
  // Entries encoded while the layer was indexed are taken as they are.
  const parts: Uint8Array[] = [writer.finish()];
  let entries = takeEncodedEntries(a.entries);
  if (entries === undefined) {
    const encoder = new EntryEncoder();
    for (let i = 0; i < a.entries.length; i++) {
      encoder.add(a.entries[i]!);
      if (i % ITEMS_PER_STEP === ITEMS_PER_STEP - 1) yield;
    }
    entries = encoder.finish();
  }
  parts.push(entries);
  // Windows (up to 32 KiB each, most of the bytes of an archive with many spans) are not copied into the
  // writer: they become parts of their own, copied once, into the framed file (header.ts).
  for (const c of a.checkpoints) {
    const window = storedWindow(c.window); // a window not compressed ahead of time costs a deflate
    const head = CheckpointBody.encode(
      { compressedOffset: c.compressedOffset, bits: c.bits, uncompressedOffset: c.uncompressedOffset, windowDeflate: NO_BYTES },
      new BinaryWriter(),
    );
    if (window.length > 0) head.uint32(WINDOW_TAG).uint32(window.length);
    const fields = head.finish();
    writer.uint32(CHECKPOINTS_TAG).uint32(fields.length + window.length).raw(fields);
    if (window.length > 0) parts.push(writer.finish(), window);
    yield;
  }
  writeTail(writer, a.spanDigests, a);
  parts.push(writer.finish());
  return parts;
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

function invert<K extends string, V>(record: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as V, k as K]));
}

