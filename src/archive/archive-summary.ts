/**
 * What `clip inspect` shows of an archive file: its format version, the layer it describes, its entries by
 * type (with OCI whiteouts and opaque markers counted apart), its checkpoints, and how big it is next to
 * the layer, and the start-up profile and bundle it carries. Pure: the caller reads the file.
 */
import { decodeArchive } from './format';
import type { ClipArchive, EntryType } from './types';

export interface ArchiveSummary {
  /** Format version from the header (bytes 8-11, docs/format.md). */
  formatVersion: string;
  /** Size of the archive file in bytes. */
  archiveSize: number;
  layerDigest: string;
  diffId: string;
  mediaType: string;
  compression: ClipArchive['compression'];
  compressedSize: number;
  uncompressedSize: number;
  entries: {
    total: number;
    byType: Record<EntryType, number>;
    /** Regular files' data, in bytes. */
    fileBytes: number;
    /** `.wh.<name>` entries (OCI whiteouts), counted among the files too. */
    whiteouts: number;
    /** `.wh..wh..opq` entries (OCI opaque directory markers), counted among the files too. */
    opaqueMarkers: number;
    /** Entries with extended attributes. */
    withXattrs: number;
  };
  checkpoints: {
    count: number;
    /** Uncompressed bytes per span: the largest and the mean. */
    largestSpan: number;
    meanSpan: number;
    /** Sum of the checkpoints' windows (uncompressed; stored deflated in the file). */
    windowBytes: number;
  };
  /** The recorded start-up profile (fields 10-11, docs/format.md), if any. */
  startupProfile?: {
    spans: number;
    ranges: number;
    /** Uncompressed bytes the ranges cover: what containers read as they started. */
    rangeBytes: number;
  };
  /** The start-up bundle (field 12, format 1.1), if any: the blob a node fetches with one request. */
  startupBundle?: { digest: string; compressedSize: number; uncompressedSize: number; uncompressedDigest: string };
  /** archiveSize / compressedSize and / uncompressedSize (0 for an empty layer). */
  ratio: { compressed: number; uncompressed: number };
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

function baseName(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Decodes an archive file (validating it) and sums it up. */
export function summarizeArchive(file: Buffer): ArchiveSummary {
  const archive = decodeArchive(file);
  const byType: Record<EntryType, number> = { file: 0, dir: 0, symlink: 0, hardlink: 0, char: 0, block: 0, fifo: 0 };
  let fileBytes = 0;
  let whiteouts = 0;
  let opaqueMarkers = 0;
  let withXattrs = 0;
  for (const e of archive.entries) {
    byType[e.type]++;
    fileBytes += e.size;
    const name = baseName(e.path);
    if (name === OPAQUE_MARKER) opaqueMarkers++;
    else if (name.startsWith(WHITEOUT_PREFIX)) whiteouts++;
    if (Object.keys(e.xattrs).length > 0) withXattrs++;
  }
  const offsets = archive.checkpoints.map((c) => c.uncompressedOffset);
  const spans = offsets.map((o, i) => (offsets[i + 1] ?? archive.uncompressedSize) - o);
  const ratio = (n: number): number => (n > 0 ? file.length / n : 0);
  const ranges = archive.startupRanges ?? [];
  const bundle = archive.startupBundle;
  return {
    formatVersion: `${file.readUInt16LE(8)}.${file.readUInt16LE(10)}`,
    archiveSize: file.length,
    layerDigest: archive.layerDigest,
    diffId: archive.diffId,
    mediaType: archive.mediaType,
    compression: archive.compression,
    compressedSize: archive.compressedSize,
    uncompressedSize: archive.uncompressedSize,
    entries: { total: archive.entries.length, byType, fileBytes, whiteouts, opaqueMarkers, withXattrs },
    checkpoints: {
      count: spans.length,
      largestSpan: Math.max(0, ...spans),
      meanSpan: spans.length > 0 ? Math.round(archive.uncompressedSize / spans.length) : 0,
      windowBytes: archive.checkpoints.reduce((n, c) => n + c.window.length, 0),
    },
    ...(archive.startupSpans || archive.startupRanges
      ? { startupProfile: { spans: archive.startupSpans?.length ?? 0, ranges: ranges.length, rangeBytes: ranges.reduce((n, [a, b]) => n + b - a, 0) } }
      : {}),
    ...(bundle
      ? { startupBundle: { digest: bundle.digest, compressedSize: bundle.compressedSize, uncompressedSize: bundle.uncompressedSize, uncompressedDigest: bundle.uncompressedDigest } }
      : {}),
    ratio: { compressed: ratio(archive.compressedSize), uncompressed: ratio(archive.uncompressedSize) },
  };
}
