/**
 * The blob of a start-up bundle (docs/format.md, "Start-up bundles"): built by `clip index push` from the
 * layer's verified spans, inflated and checked by a node before it serves a byte of it.
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { createGunzip, gzip } from 'node:zlib';
import type { ClipArchive, StartupBundle } from '../archive';
import { InvalidArgumentError, errorMessage } from '../errors';
import { DigestMismatchError, decodeSpan, spanRange } from '../indexer';
import type { RangeSource } from '../fusefs/layer-span-reader';

/** Media type of a start-up bundle blob in the published archives' artifact. */
export const STARTUP_BUNDLE_MEDIA_TYPE = 'application/vnd.clip.startup-bundle.v1+gzip';
/** Fixed, so that the same ranges of the same layer always give the same blob (and the same archive). */
const GZIP_LEVEL = 9;

const gzipAsync = promisify(gzip);

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * The bundle of the archive's start-up ranges, from the layer blob in `source`: every span the ranges
 * touch is fetched once, inflated from its checkpoint and checked against its digest. Undefined when the
 * archive has no ranges, or the layer has no random access (zstd).
 */
export async function buildStartupBundle(
  archive: ClipArchive,
  source: RangeSource,
  signal?: AbortSignal,
): Promise<{ bundle: StartupBundle; blob: Buffer } | undefined> {
  const ranges = archive.startupRanges ?? [];
  if (ranges.length === 0 || archive.compression === 'zstd') return undefined;
  const pieces: Buffer[] = [];
  let span = -1;
  let spanBytes: Buffer = Buffer.alloc(0);
  let spanStart = 0;
  for (const [start, end] of ranges) {
    for (let at = start; at < end; ) {
      if (span < 0 || at < spanStart || at >= spanStart + spanBytes.length) {
        span = spanHolding(archive, at);
        const range = spanRange(archive, span);
        const compressed = await source.readRange(range.compressedStart, range.compressedEnd - range.compressedStart, signal);
        spanBytes = await decodeSpan(archive, span, compressed);
        spanStart = range.uncompressedStart;
      }
      const to = Math.min(end, spanStart + spanBytes.length);
      pieces.push(spanBytes.subarray(at - spanStart, to - spanStart));
      at = to;
    }
  }
  const data = Buffer.concat(pieces);
  // Node's gzip header has no name and mtime 0: the blob is a function of the bytes and the level.
  const blob = await gzipAsync(data, { level: GZIP_LEVEL });
  const bundle: StartupBundle = {
    digest: sha256(blob),
    compressedSize: blob.length,
    uncompressedSize: data.length,
    compression: 'gzip',
    uncompressedDigest: sha256(data),
  };
  return { bundle, blob };
}

/** The span holding uncompressed offset `at`. */
function spanHolding(archive: ClipArchive, at: number): number {
  const { checkpoints } = archive;
  let lo = 0;
  let hi = checkpoints.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (checkpoints[mid]!.uncompressedOffset <= at) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The inflated bytes of a bundle blob, once they are exactly what the archive's field declares: the blob's
 * size and sha256, then at most uncompressedSize bytes inflated (more is an error, not a truncation), that
 * many exactly, and their sha256. The blob may arrive as chunks: it is hashed and inflated as they come, so
 * the checks cost little after the last one. Throws DigestMismatchError or InvalidArgumentError saying what
 * failed; nothing is returned before every check passed.
 */
export async function inflateStartupBundle(blob: Buffer | AsyncIterable<Buffer>, bundle: StartupBundle, onChunk?: (bytes: number) => void): Promise<Buffer> {
  const what = `start-up bundle ${bundle.digest}`;
  const blobHash = createHash('sha256');
  const dataHash = createHash('sha256');
  const out: Buffer[] = [];
  let blobBytes = 0;
  let dataBytes = 0;
  /** Why inflating failed; the blob is still read and hashed to the end, so a changed blob is named as such. */
  let failure: Error | undefined;
  const gunzip = createGunzip({ chunkSize: 1 << 20 }); // 1 MiB pieces: 16 times fewer thread-pool round trips than the default
  gunzip.on('data', (chunk: Buffer) => {
    dataBytes += chunk.length;
    if (dataBytes > bundle.uncompressedSize) {
      failure ??= new InvalidArgumentError(`${what}: inflates to more than ${bundle.uncompressedSize} bytes`);
      gunzip.destroy();
      return;
    }
    dataHash.update(chunk);
    out.push(chunk);
  });
  const ended = new Promise<void>((resolve) => {
    gunzip.once('end', resolve).once('close', resolve);
    gunzip.on('error', (err) => {
      failure ??= new InvalidArgumentError(`${what}: does not inflate: ${errorMessage(err)}`, { cause: err });
      resolve();
    });
  });
  for await (const chunk of Buffer.isBuffer(blob) ? [blob] : blob) {
    blobBytes += chunk.length;
    if (blobBytes > bundle.compressedSize) throw new InvalidArgumentError(`${what}: more than the ${bundle.compressedSize} bytes the archive says`);
    blobHash.update(chunk);
    onChunk?.(chunk.length);
    if (!failure && !gunzip.destroyed && !gunzip.write(chunk)) {
      await new Promise<void>((resolve) => {
        gunzip.once('drain', resolve);
        void ended.then(resolve);
      });
    }
  }
  if (!gunzip.destroyed) gunzip.end();
  await ended;
  if (blobBytes !== bundle.compressedSize) throw new InvalidArgumentError(`${what}: ${blobBytes} bytes, the archive says ${bundle.compressedSize}`);
  const digest = `sha256:${blobHash.digest('hex')}`;
  if (digest !== bundle.digest) throw new DigestMismatchError('start-up bundle', bundle.digest, digest);
  if (failure) throw failure;
  if (dataBytes !== bundle.uncompressedSize) throw new InvalidArgumentError(`${what}: inflates to ${dataBytes} bytes, the archive says ${bundle.uncompressedSize}`);
  const inflated = `sha256:${dataHash.digest('hex')}`;
  if (inflated !== bundle.uncompressedDigest) throw new DigestMismatchError(`${what}: inflated bytes`, bundle.uncompressedDigest, inflated);
  return Buffer.concat(out, dataBytes);
}
