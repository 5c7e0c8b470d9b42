/**
 * The one door to the clip_indexer native addon (native/addon.c, built by `npm run build:native`): loads
 * it on first use, types it, and turns its errors into clip's (corrupt data: InvalidArgumentError,
 * anything else: InternalError). zran.ts, zstd-decoder.ts and sha256-stream.ts wrap what it exports.
 */
import path from 'node:path';
import { lazyAddon } from '../native-addon';
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

export interface NativeGzipIndexer {
  inflate(input: Buffer, output: Buffer): Promise<InflateResult>;
}

/** What one ZstdDecoder.decompress call did. */
export interface DecompressResult {
  read: number;
  written: number;
  /** The data so far ends exactly at the end of a zstd frame. */
  ended: boolean;
}

export interface NativeZstdDecoder {
  decompress(input: Buffer, output: Buffer): Promise<DecompressResult>;
}

export interface NativeSha256 {
  update(chunks: Buffer[]): Promise<void>;
  digest(): string;
}

interface NativeAddon {
  GzipIndexer: new (spanSize: number) => NativeGzipIndexer;
  extractSpan(compressed: Buffer, bits: number, window: Buffer, output: Buffer): Promise<void>;
  Sha256: new () => NativeSha256;
  ZstdDecoder: new () => NativeZstdDecoder;
}

export const nativeAddon = lazyAddon<NativeAddon>(path.join(__dirname, 'native', 'clip_indexer.node'), 'indexer addon');

/**
 * Loads the addon now rather than when the first layer is indexed: its dlopen (and that of the libraries it
 * links) took 15-60 ms of the first Prepare in a fresh daemon.
 */
export function loadIndexerAddon(): void {
  nativeAddon();
}

/** clip's error for a failure of the addon, with `context` in front of its message. */
export function translateNativeError(err: unknown, context: string): Error {
  const message = `${context}: ${err instanceof Error ? err.message : String(err)}`;
  if ((err as { code?: unknown } | null)?.code === 'CLIP_INDEXER_DATA_ERROR') {
    return new InvalidArgumentError(message, { cause: err });
  }
  return new InternalError(message, { cause: err });
}
