/**
 * The decoder for uncompressed tar layers: the blob is the tar stream, so a checkpoint is simply every
 * `spanSize` bytes (compressedOffset == uncompressedOffset, bits 0, empty window).
 */
import type { Checkpoint } from '../archive/types';
import type { DecoderSink, LayerDecoder } from './layer-decoder';

const NO_WINDOW = Buffer.alloc(0);

function plainCheckpoint(offset: number): Checkpoint {
  return { compressedOffset: offset, bits: 0, uncompressedOffset: offset, window: NO_WINDOW };
}

export class PlainDecoder implements LayerDecoder {
  private position = 0;
  /** Offset of the next checkpoint; it is emitted only once data follows it. */
  private nextCheckpoint = 0;

  constructor(
    private readonly spanSize: number,
    private readonly sink: DecoderSink,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      if (this.position === this.nextCheckpoint) await this.emitCheckpoint();
      const n = Math.min(chunk.length - i, this.nextCheckpoint - this.position);
      await this.sink.data(chunk.subarray(i, i + n));
      i += n;
      this.position += n;
    }
  }

  async end(): Promise<void> {
    if (this.nextCheckpoint === 0) await this.emitCheckpoint(); // an empty blob still has span 0
  }

  private async emitCheckpoint(): Promise<void> {
    const pending = this.sink.checkpoint(plainCheckpoint(this.position));
    this.nextCheckpoint += this.spanSize;
    if (pending) await pending;
  }
}
