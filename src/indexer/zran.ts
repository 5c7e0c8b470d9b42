/**
 * Gzip checkpoints and random access (the zran technique), on the clip_indexer addon's thread-pool jobs.
 */
import type { Checkpoint } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { nativeAddon, translateNativeError, type InflateResult, type NativeGzipIndexer } from './native-addon';

export type { InflateResult } from './native-addon';

/**
 * Inflates a gzip stream (one or more members) piece by piece on the thread pool and records a checkpoint
 * at the first deflate block boundary after every `spanSize` bytes of output (the first one at output
 * offset 0). One inflate at a time; the buffers passed must stay untouched until it settles.
 */
export class GzipIndexer {
  private readonly native: NativeGzipIndexer;

  constructor(spanSize: number) {
    this.native = new (nativeAddon().GzipIndexer)(spanSize);
  }

  /** Inflates from `input` into `output` until the input is used up, the output is full or a checkpoint is recorded. */
  async inflate(input: Buffer, output: Buffer): Promise<InflateResult> {
    try {
      return await this.native.inflate(input, output);
    } catch (err) {
      throw translateNativeError(err, 'gzip layer');
    }
  }
}

/**
 * Inflates `length` bytes of a gzip blob starting at `checkpoint` (on the thread pool). `compressed` is the
 * blob from `checkpoint.compressedOffset - (checkpoint.bits ? 1 : 0)` on; it must reach far enough to
 * produce `length` bytes (up to the next checkpoint's compressedOffset, or the end of the blob).
 */
export async function extractSpan(checkpoint: Checkpoint, compressed: Buffer, length: number): Promise<Buffer> {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`extractSpan: invalid length ${length}`);
  }
  const output = Buffer.allocUnsafe(length);
  try {
    await nativeAddon().extractSpan(compressed, checkpoint.bits, checkpoint.window, output);
  } catch (err) {
    throw translateNativeError(err, `gzip span at compressed offset ${checkpoint.compressedOffset}`);
  }
  return output;
}
