/**
 * Layers for filesystem tests, built directly as ClipArchive objects together with their uncompressed
 * stream: entries are laid out the way a tar stream lays them out (a 512-byte header, then the data padded
 * to 512 bytes), each file's bytes at its dataOffset, and a checkpoint every `spanSize` bytes.
 * MemorySpanReader serves spans as slices of that buffer: a real, simple implementation of the SpanReader
 * seam (the production one reads a cache or inflates registry bytes).
 */
import { createHash } from 'node:crypto';
import winston from 'winston';
import { recordingLogger } from '../../helpers/recording-logger';
import type { ArchiveEntry, ClipArchive, EntryType } from '../../../src/archive/types';
import type { SpanReader } from '../../../src/fusefs';
import { normalizeEntryPath } from '../../../src/indexer/entry-path';

export interface FixtureEntry {
  path: string;
  type: EntryType;
  data?: Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeMs?: number;
  linkTarget?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer>;
}

export interface FixtureLayer {
  archive: ClipArchive;
  /** The uncompressed layer stream. */
  stream: Buffer;
}

const BLOCK = 512;
const HEADER_FILL = 0xa5;
export const DEFAULT_MTIME_MS = 1_600_000_000_000;

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A tar path ("./a//b/", "/c") as an archive stores it ("a/b", "c"; the root is "."), as the indexer does. */
function archivePath(tarPath: string): string {
  return normalizeEntryPath(tarPath, 'path') || '.';
}

export function buildLayer(entries: FixtureEntry[], spanSize = 64 * 1024): FixtureLayer {
  const chunks: Buffer[] = [];
  let offset = 0;
  const archiveEntries: ArchiveEntry[] = entries.map((e) => {
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    chunks.push(Buffer.alloc(BLOCK, HEADER_FILL));
    offset += BLOCK;
    const dataOffset = offset;
    const padded = Math.ceil(data.length / BLOCK) * BLOCK;
    chunks.push(data, Buffer.alloc(padded - data.length));
    offset += padded;
    return {
      path: archivePath(e.path),
      type: e.type,
      mode: e.mode ?? (e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: data.length,
      mtimeMs: e.mtimeMs ?? DEFAULT_MTIME_MS,
      linkTarget: e.type === 'hardlink' ? archivePath(e.linkTarget ?? '') : (e.linkTarget ?? ''),
      devMajor: e.devMajor ?? 0,
      devMinor: e.devMinor ?? 0,
      xattrs: e.xattrs ?? {},
      dataOffset,
    };
  });
  chunks.push(Buffer.alloc(2 * BLOCK));
  const stream = Buffer.concat(chunks);
  const checkpoints = [];
  const spanDigests = [];
  for (let at = 0; at < stream.length; at += spanSize) {
    checkpoints.push({ compressedOffset: at, bits: 0, uncompressedOffset: at, window: Buffer.alloc(0) });
    spanDigests.push(sha256(stream.subarray(at, at + spanSize)));
  }
  const digest = sha256(stream);
  return {
    stream,
    archive: {
      layerDigest: digest,
      diffId: digest,
      mediaType: 'application/vnd.oci.image.layer.v1.tar',
      compression: 'none',
      compressedSize: stream.length,
      uncompressedSize: stream.length,
      entries: archiveEntries,
      checkpoints,
      spanDigests,
    },
  };
}

/** Spans as slices of the in-memory stream; counts calls. */
export class MemorySpanReader implements SpanReader {
  calls = 0;

  constructor(private readonly layer: FixtureLayer) {}

  async readSpan(index: number): Promise<Buffer> {
    this.calls++;
    const { checkpoints, uncompressedSize } = this.layer.archive;
    const start = checkpoints[index].uncompressedOffset;
    const end = index + 1 < checkpoints.length ? checkpoints[index + 1].uncompressedOffset : uncompressedSize;
    return this.layer.stream.subarray(start, end);
  }
}

/** A logger that keeps its lines for assertions (and prints nothing). */
export function memoryLogger(): { logger: winston.Logger; lines: string[] } {
  const logger = recordingLogger();
  return { logger, lines: logger.lines };
}

/** Deterministic pseudo-random bytes (so failures reproduce). */
export function patternBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
