/**
 * Turns a layer blob into a clip archive in one streaming pass: the blob is hashed (and must match its
 * digest), decoded (gzip with zran checkpoints, or plain tar), the uncompressed stream is hashed whole
 * (the diffID) and per span, and its tar entries are recorded. The three hashes and the inflation run on
 * the thread pool, side by side; the JavaScript thread parses tar. Memory stays bounded whatever the layer
 * size: a few MiB of buffers, plus the archive itself, which the limits bound (index-limits.ts). A layer
 * over a limit stops at once with IndexLimitError.
 */
import type { Readable } from 'node:stream';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { compressWindow } from '../archive';
import type { ClipArchive, Compression } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { checkMagic, MAGIC_LENGTH } from './compression';
import { EntryCollector } from './entry-collector';
import { DigestMismatchError } from './errors';
import { GzipDecoder } from './gzip-decoder';
import { DEFAULT_INDEX_LIMITS, checkLayerGrowth, indexLimits, type IndexLimits } from './index-limits';
import type { DecoderSink, LayerDecoder } from './layer-decoder';
import { PlainDecoder } from './plain-decoder';
import { ZstdDecoder } from './zstd-decoder';
import { Sha256Stream } from './sha256-stream';
import { SpanRecorder, type SpanStore } from './span-recorder';
import { TarParser } from './tar-parser';

/** The blob arrives in small chunks (16-64 KiB from a socket): they are hashed this many bytes at a time. */
const BLOB_HASH_BATCH = 1 << 20;
/** Tar bytes parsed between two turns of the event loop (at most 512 headers, a few ms). */
const TAR_SLICE = 256 << 10;
/** Blob bytes that may wait for hashing before reading the blob pauses. */
const BLOB_HASH_BACKLOG = 16 << 20;

/** SOCI's default: ~4 MiB of uncompressed data per span (a checkpoint costs up to 32 KiB of window). */
export const DEFAULT_SPAN_SIZE = 4 << 20;
const MIN_SPAN_SIZE = 4 << 10;
const MAX_SPAN_SIZE = 1 << 30;

export interface IndexLayerOptions {
  /** The blob's digest ("sha256:…"); the content must hash to it. */
  layerDigest: string;
  /** Recorded in the archive as is. */
  mediaType: string;
  /** See layerCompression() to derive it from the media type and the blob's first bytes. */
  compression: Compression;
  /** Minimum uncompressed bytes between checkpoints; default DEFAULT_SPAN_SIZE. */
  spanSize?: number;
  /** The blob size from its descriptor, when known: a blob of another size is refused. */
  expectedSize?: number;
  /**
   * Receives each span's uncompressed bytes, in order, as they are decoded (to keep the streamed bytes in
   * the content cache while indexing). The bytes are NOT verified yet: the blob digest is only known at the
   * end, so treat committed spans as provisional until indexLayer resolves. When indexing fails, the span
   * being written is aborted; committed ones are the caller's to drop.
   */
  spanStore?: SpanStore;
  /**
   * Limits on the layer (DEFAULT_INDEX_LIMITS, each overridable; maxSpanBytes defaults to at least twice
   * spanSize); an excess rejects with IndexLimitError.
   */
  limits?: Partial<IndexLimits>;
}

function validate(options: IndexLayerOptions, spanSize: number, limits: IndexLimits): void {
  const { layerDigest, compression, expectedSize } = options;
  if (!/^sha256:[0-9a-f]{64}$/.test(layerDigest)) {
    throw new InvalidArgumentError(`layer ${layerDigest}: only sha256 digests are supported`);
  }
  if (compression !== 'gzip' && compression !== 'none' && compression !== 'zstd') {
    throw new InvalidArgumentError(`layer ${layerDigest}: unknown compression ${String(compression)}`);
  }
  if (!Number.isInteger(spanSize) || spanSize < MIN_SPAN_SIZE || spanSize > MAX_SPAN_SIZE) {
    throw new InvalidArgumentError(`span size ${spanSize} is not an integer from ${MIN_SPAN_SIZE} to ${MAX_SPAN_SIZE}`);
  }
  if (limits.maxSpanBytes < spanSize) {
    throw new InvalidArgumentError(`the span size limit ${limits.maxSpanBytes} is smaller than the span size ${spanSize}`);
  }
  if (expectedSize !== undefined && (!Number.isSafeInteger(expectedSize) || expectedSize < 0)) {
    throw new InvalidArgumentError(`layer ${layerDigest}: invalid expected size ${expectedSize}`);
  }
}

function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new InvalidArgumentError('layer stream must yield bytes, not strings or objects');
}

/**
 * Runs one decoding step. A data error is returned, to be reported once the whole blob is hashed (a
 * digest mismatch explains it better); anything else is thrown at once.
 */
async function attempt(step: () => Promise<void>): Promise<InvalidArgumentError | undefined> {
  try {
    await step();
    return undefined;
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
}

/**
 * Streams a layer blob once and returns its clip archive. Rejects with DigestMismatchError when the blob
 * does not match options.layerDigest, InvalidArgumentError for a malformed blob (corrupt gzip or zstd,
 * data of another compression than declared, bad tar, sparse files, paths escaping the layer).
 */
export async function indexLayer(
  source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: IndexLayerOptions,
): Promise<ClipArchive> {
  const { layerDigest, mediaType, compression, expectedSize } = options;
  const spanSize = options.spanSize ?? DEFAULT_SPAN_SIZE;
  // Without a span limit of its own, a span size above the default limit (clip index --span-size) raises it.
  const limits = indexLimits({ maxSpanBytes: Math.max(DEFAULT_INDEX_LIMITS.maxSpanBytes, 2 * spanSize), ...options.limits });
  validate(options, spanSize, limits);

  const blobHash = new Sha256Stream(BLOB_HASH_BATCH);
  const diffHash = new Sha256Stream();
  const entries = new EntryCollector();
  const tar = new TarParser((entry) => entries.add(entry), limits);
  const spans = new SpanRecorder(options.spanStore, limits);
  const windows: Promise<void>[] = [];
  let uncompressedSize = 0;
  const sink: DecoderSink = {
    async data(chunk) {
      uncompressedSize += chunk.length;
      checkLayerGrowth(limits, compression, uncompressedSize, compressedSize);
      const hashed = Promise.all([diffHash.update(chunk), spans.data(chunk)]);
      try {
        // While the thread pool hashes; in slices, so that a chunk dense with entries does not hold the
        // event loop (4 MiB of headers is 8192 entries).
        for (let at = 0; at < chunk.length; at += TAR_SLICE) {
          if (at > 0) await nextTurn();
          tar.write(chunk.subarray(at, at + TAR_SLICE));
        }
      } catch (err) {
        await hashed.catch(() => undefined); // nothing may still be writing the chunk when the span is dropped
        throw err;
      }
      await hashed;
    },
    checkpoint(checkpoint) {
      windows.push(compressWindow(checkpoint.window)); // on the thread pool, ready for encoding the archive
      return spans.checkpoint(checkpoint);
    },
  };
  const decoder: LayerDecoder =
    compression === 'gzip' ? new GzipDecoder(spanSize, sink)
    : compression === 'zstd' ? new ZstdDecoder(spanSize, sink)
    : new PlainDecoder(spanSize, sink);

  let compressedSize = 0;
  let head = Buffer.alloc(0); // the blob's first bytes, until its magic number is checked
  let failure: InvalidArgumentError | undefined;
  let done = false;
  try {
    for await (const chunk of source) {
      const bytes = asBuffer(chunk);
      compressedSize += bytes.length;
      if (expectedSize !== undefined && compressedSize > expectedSize) {
        throw new InvalidArgumentError(`layer ${layerDigest}: blob is larger than its descriptor's ${expectedSize} bytes`);
      }
      if (head.length < MAGIC_LENGTH) {
        head = Buffer.concat([head, bytes.subarray(0, MAGIC_LENGTH - head.length)]);
        if (head.length === MAGIC_LENGTH) checkMagic(compression, head, layerDigest);
      }
      // The blob's chunks are never reused, so its hash runs behind, within a bounded backlog.
      void blobHash.update(bytes);
      if (failure === undefined) failure = await attempt(() => decoder.write(bytes));
      if (blobHash.pendingBytes > BLOB_HASH_BACKLOG) await blobHash.drain(BLOB_HASH_BACKLOG);
    }
    if (failure === undefined) {
      failure = await attempt(async () => {
        await decoder.end();
        tar.end();
        await spans.end();
      });
    }

    const actual = await blobHash.digest();
    if (actual !== layerDigest) throw new DigestMismatchError(`layer ${layerDigest}`, layerDigest, actual, { cause: failure });
    if (failure !== undefined) throw failure;
    if (expectedSize !== undefined && compressedSize !== expectedSize) {
      throw new InvalidArgumentError(`layer ${layerDigest}: blob is ${compressedSize} bytes, its descriptor says ${expectedSize}`);
    }
    await Promise.all(windows);
    done = true;
  } finally {
    if (!done) await spans.abort();
  }
  return {
    layerDigest,
    diffId: await diffHash.digest(),
    mediaType,
    compression,
    compressedSize,
    uncompressedSize,
    entries: entries.finish(),
    checkpoints: spans.checkpoints,
    spanDigests: spans.digests,
  };
}
