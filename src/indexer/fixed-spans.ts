/**
 * Span boundaries for streams that can be cut anywhere (uncompressed tar, and zstd, whose layers are
 * kept whole in the cache): a checkpoint every `spanSize` bytes of output, with an empty window. Passes the
 * output to the sink cut at those boundaries.
 */
import type { Checkpoint } from '../archive/types';
import type { DecoderSink } from './layer-decoder';

const NO_WINDOW = Buffer.alloc(0);

export class FixedSpans {
  private position = 0;
  /** Offset of the next checkpoint; it is emitted only once data follows it. */
  private nextCheckpoint = 0;

  /** `compressedOffset` gives the blob offset recorded for a checkpoint at a given output offset. */
  constructor(
    private readonly spanSize: number,
    private readonly sink: DecoderSink,
    private readonly compressedOffset: (uncompressedOffset: number) => number,
  ) {}

  /** Passes the next output bytes on; `chunk` may be reused once the promise settles. */
  async data(chunk: Buffer): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      if (this.position === this.nextCheckpoint) await this.emitCheckpoint();
      const n = Math.min(chunk.length - i, this.nextCheckpoint - this.position);
      await this.sink.data(chunk.subarray(i, i + n));
      i += n;
      this.position += n;
    }
  }

  /** An empty stream still has span 0. */
  async end(): Promise<void> {
    if (this.nextCheckpoint === 0) await this.emitCheckpoint();
  }

  private async emitCheckpoint(): Promise<void> {
    const offset = this.position;
    const checkpoint: Checkpoint = { compressedOffset: this.compressedOffset(offset), bits: 0, uncompressedOffset: offset, window: NO_WINDOW };
    this.nextCheckpoint += this.spanSize;
    await this.sink.checkpoint(checkpoint);
  }
}
