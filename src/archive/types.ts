/**
 * The in-memory form of a clip archive: everything needed to serve one image layer lazily, and no file
 * data. Produced by src/indexer, encoded and decoded by src/archive, served by src/fusefs.
 *
 * Offsets: `dataOffset` and checkpoint `uncompressedOffset` are positions in the layer's uncompressed tar
 * stream; checkpoint `compressedOffset` is a position in the layer blob as stored in the registry.
 */

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface ArchiveEntry {
  /** Path inside the layer, relative, normalised, no leading "./" or "/" (e.g. "usr/bin/env"). */
  path: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Size of the file data in bytes (regular files; 0 otherwise). */
  size: number;
  /** Modification time in milliseconds since the epoch (fractional PAX mtimes are kept to the ms). */
  mtimeMs: number;
  /** Symlink target, or for a hardlink the path of the entry it links to. */
  linkTarget: string;
  devMajor: number;
  devMinor: number;
  /** Extended attributes (PAX SCHILY.xattr.* and LIBARCHIVE.xattr.*), raw values. */
  xattrs: Record<string, Buffer>;
  /** Offset of the file's data in the uncompressed tar stream (regular files). */
  dataOffset: number;
}

export type Compression = 'gzip' | 'none' | 'zstd';

/**
 * A place where decompression of the layer blob can resume (the zran technique). For an uncompressed
 * layer, compressedOffset == uncompressedOffset, bits == 0 and the window is empty.
 */
export interface Checkpoint {
  /** Offset in the blob of the first full byte of the deflate block. */
  compressedOffset: number;
  /** 0-7: how many bits of the block are the high bits of the byte at compressedOffset - 1. */
  bits: number;
  /** Offset in the uncompressed stream where this block's output starts. */
  uncompressedOffset: number;
  /** Up to 32 KiB of uncompressed data immediately before uncompressedOffset (the inflate dictionary). */
  window: Buffer;
}

export interface ClipArchive {
  /** Digest of the layer blob as stored in the registry ("sha256:…"): the archive's identity. */
  layerDigest: string;
  /** Digest of the uncompressed tar stream ("sha256:…"). */
  diffId: string;
  mediaType: string;
  compression: Compression;
  compressedSize: number;
  uncompressedSize: number;
  /** Entries in tar order; entries under top-level proc/, sys/ and dev/ are left out. */
  entries: ArchiveEntry[];
  /**
   * Checkpoints in increasing offset order; the first is at uncompressed offset 0. Span i is the
   * uncompressed range [checkpoints[i].uncompressedOffset, checkpoints[i+1].uncompressedOffset), the last
   * span ends at uncompressedSize.
   */
  checkpoints: Checkpoint[];
  /** sha256 ("sha256:…") of each span's uncompressed bytes; same length as checkpoints. */
  spanDigests: string[];
  /**
   * The start-up profile, when one was recorded: the spans containers read as they started from this
   * layer, in order of first read. A node mounting the layer loads them ahead (src/remote/startup-profile).
   */
  startupSpans?: number[];
  /**
   * Recorded with startupSpans: the byte ranges [start, end) of the uncompressed stream containers read as
   * they started, in order, never touching; each start a multiple of STARTUP_RANGE_BLOCK, each end one too
   * or uncompressedSize. At most MAX_STARTUP_RANGES.
   */
  startupRanges?: Array<[number, number]>;
  /**
   * The start-up bundle published with the archive (format 1.1): the bytes of startupRanges in stream
   * order, concatenated, gzip-compressed as one stream. Requires startupRanges.
   */
  startupBundle?: StartupBundle;
}

/** A start-up bundle blob (docs/format.md, "Start-up bundles"). */
export interface StartupBundle {
  /** sha256 of the blob as stored ("sha256:…"). */
  digest: string;
  compressedSize: number;
  /** The sum of the lengths of the archive's start-up ranges. */
  uncompressedSize: number;
  compression: 'gzip';
  /** sha256 of the inflated blob ("sha256:…"). */
  uncompressedDigest: string;
}

/** The granularity of start-up read ranges (docs/format.md). */
export const STARTUP_RANGE_BLOCK = 4096;
/** At most this many start-up read ranges are kept in an archive. */
export const MAX_STARTUP_RANGES = 8192;
