/**
 * The decoder for uncompressed tar layers: the blob is the tar stream, so a checkpoint is simply every
 * `spanSize` bytes (compressedOffset == uncompressedOffset, bits 0, empty window).
 */
import { FixedSpans } from './fixed-spans';
import type { DecoderSink, LayerDecoder } from './layer-decoder';

export class PlainDecoder implements LayerDecoder {
  private readonly spans: FixedSpans;

  constructor(spanSize: number, sink: DecoderSink) {
    this.spans = new FixedSpans(spanSize, sink, (offset) => offset);
  }

  write(chunk: Buffer): Promise<void> {
    return this.spans.data(chunk);
  }

  end(): Promise<void> {
    return this.spans.end();
  }
}
