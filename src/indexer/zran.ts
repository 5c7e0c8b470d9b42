/**
 * The one door to the clip_zran native addon (native/zran.c, built by `npm run build:native`): loads it
 * on first use, types it and turns its errors into clip's (corrupt data: InvalidArgumentError, anything
 * else: InternalError).
 */
import path from 'node:path';
import type { Checkpoint } from '../archive/types';
import { InternalError, InvalidArgumentError } from '../errors';

/** What one GzipIndexer.inflate call did. */
export interface InflateResult {
  /** Bytes of input consumed. */
  read: number;
  /** Bytes written at the start of the output buffer. */
  written: number;
  /** The input so far ends exactly at the end of a gzip member. */
  ended: boolean;
  /** A checkpoint recorded at the end of this call's output, or null. */
  checkpoint: Checkpoint | null;
}

interface NativeIndexer {
  inflate(input: Buffer, output: Buffer): Promise<InflateResult>;
}

interface NativeAddon {
  GzipIndexer: new (spanSize: number) => NativeIndexer;
  extractSpan(compressed: Buffer, bits: number, window: Buffer, output: Buffer): Promise<void>;
}

const ADDON_PATH = path.join(__dirname, 'native', 'clip_zran.node');
let addon: NativeAddon | undefined;

function native(): NativeAddon {
  if (addon === undefined) {
    try {
      addon = require(ADDON_PATH) as NativeAddon;
    } catch (err) {
      throw new InternalError(`zran addon ${ADDON_PATH}: cannot load it (was npm run build run?)`, { cause: err });
    }
  }
  return addon;
}

function translate(err: unknown, context: string): Error {
  const message = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  if ((err as { code?: unknown } | null)?.code === 'ZRAN_DATA_ERROR') {
    return new InvalidArgumentError(message, { cause: err });
  }
  return new InternalError(message, { cause: err });
}

/**
 * Inflates a gzip stream (one or more members) piece by piece on the thread pool and records a checkpoint
 * at the first deflate block boundary after every `spanSize` bytes of output (the first one at output
 * offset 0). One inflate at a time; the buffers passed must stay untouched until it settles.
 */
export class GzipIndexer {
  private readonly native: NativeIndexer;

  constructor(spanSize: number) {
    this.native = new (native().GzipIndexer)(spanSize);
  }

  /** Inflates from `input` into `output` until the input is used up, the output is full or a checkpoint is recorded. */
  async inflate(input: Buffer, output: Buffer): Promise<InflateResult> {
    try {
      return await this.native.inflate(input, output);
    } catch (err) {
      throw translate(err, 'gzip layer');
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
    await native().extractSpan(compressed, checkpoint.bits, checkpoint.window, output);
  } catch (err) {
    throw translate(err, `gzip span at compressed offset ${checkpoint.compressedOffset}`);
  }
  return output;
}
