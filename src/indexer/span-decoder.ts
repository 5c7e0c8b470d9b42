/**
 * Reading one span of a layer back, the other half of the zran technique: which bytes of the blob to
 * fetch for span i, and how to turn them into the span's verified uncompressed bytes.
 */
import type { ClipArchive } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { DigestMismatchError } from './errors';
import { sha256Digest } from './sha256-stream';
import { extractSpan } from './zran';

export type SpanSource = Pick<ClipArchive, 'layerDigest' | 'compression' | 'compressedSize' | 'uncompressedSize' | 'checkpoints' | 'spanDigests'>;

export interface SpanRange {
  /** First blob byte to fetch (for gzip, the byte holding the block's first bits when bits > 0). */
  compressedStart: number;
  /** End of the blob bytes to fetch (exclusive); neighbouring gzip spans may share one byte. */
  compressedEnd: number;
  uncompressedStart: number;
  uncompressedEnd: number;
}

export function spanRange(archive: SpanSource, index: number): SpanRange {
  const { checkpoints } = archive;
  if (archive.compression === 'zstd') {
    throw new InvalidArgumentError(`layer ${archive.layerDigest}: a zstd layer has no random access (it is read whole)`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= checkpoints.length) {
    throw new InvalidArgumentError(`layer ${archive.layerDigest}: no span ${index}`);
  }
  const checkpoint = checkpoints[index];
  const next = checkpoints[index + 1];
  return {
    compressedStart: checkpoint.compressedOffset - (checkpoint.bits ? 1 : 0),
    compressedEnd: next ? next.compressedOffset : archive.compressedSize,
    uncompressedStart: checkpoint.uncompressedOffset,
    uncompressedEnd: next ? next.uncompressedOffset : archive.uncompressedSize,
  };
}

/**
 * Turns the blob bytes of spanRange(archive, index) into the span's uncompressed bytes and checks them
 * against archive.spanDigests[index] (DigestMismatchError if they differ, InvalidArgumentError if the
 * compressed bytes are corrupt).
 */
export async function decodeSpan(archive: SpanSource, index: number, compressed: Buffer): Promise<Buffer> {
  const range = spanRange(archive, index);
  const length = range.uncompressedEnd - range.uncompressedStart;
  const data =
    archive.compression === 'gzip' ? await extractSpan(archive.checkpoints[index], compressed, length) : compressed;
  if (data.length !== length) {
    throw new InvalidArgumentError(`layer ${archive.layerDigest}: span ${index} is ${data.length} bytes, expected ${length}`);
  }
  const digest = await sha256Digest(data);
  if (digest !== archive.spanDigests[index]) {
    throw new DigestMismatchError(`layer ${archive.layerDigest} span ${index}`, archive.spanDigests[index], digest);
  }
  return data;
}
