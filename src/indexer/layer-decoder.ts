/**
 * The seam between a layer's blob and its uncompressed tar stream. A decoder takes the blob chunk by chunk
 * and passes the uncompressed bytes, and the checkpoints where reading can later resume, to a sink in
 * stream order. Implementations: GzipDecoder (zran) and PlainDecoder (uncompressed tar).
 */
import type { Checkpoint } from '../archive/types';

export interface DecoderSink {
  /** The next uncompressed bytes; the decoder reuses the buffer once the call (or its promise) is over. */
  data(chunk: Buffer): void | Promise<void>;
  /**
   * A checkpoint at the current end of the uncompressed output. The first is at offset 0; the others
   * only come when more output follows them (so no span is empty). A returned promise is awaited.
   */
  checkpoint(checkpoint: Checkpoint): void | Promise<void>;
}

export interface LayerDecoder {
  /** Decodes the next chunk of the blob. Do not call again before the returned promise settles. */
  write(chunk: Buffer): Promise<void>;
  /** Delivers what is left and checks the blob ended where its format says it should. */
  end(): Promise<void>;
}
