/**
 * The decoder for zstd layers (the clip_indexer addon's ZstdDecoder, on the thread pool). zstd offers no
 * place to resume decompression in the middle of a frame, so a zstd layer is not read span by span from
 * the registry: clip decompresses it whole while indexing and keeps every span in its cache. Its spans are
 * cut every `spanSize` bytes; their checkpoints carry compressedOffset 0 (the blob is always read from the
 * start). Like GzipDecoder, output alternates between two buffers so that the sink works on one while the
 * thread pool fills the other.
 */
import { InternalError, InvalidArgumentError } from '../errors';
import { FixedSpans } from './fixed-spans';
import type { DecoderSink, LayerDecoder } from './layer-decoder';
import { nativeAddon, translateNativeError, type DecompressResult, type NativeZstdDecoder } from './native-addon';

const OUTPUT_BUFFER_SIZE = 4 << 20;
const NO_INPUT = Buffer.alloc(0);

export class ZstdDecoder implements LayerDecoder {
  private readonly native: NativeZstdDecoder = new (nativeAddon().ZstdDecoder)();
  private readonly spans: FixedSpans;
  private readonly outputs = [Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE), Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE)];
  private turn = 0;
  /** Output of the last call, delivered while the next one runs. */
  private undelivered: Buffer | null = null;
  private ended = false;

  constructor(spanSize: number, sink: DecoderSink) {
    this.spans = new FixedSpans(spanSize, sink, () => 0);
  }

  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) offset += (await this.step(chunk.subarray(offset))).read;
  }

  async end(): Promise<void> {
    // zstd may still hold output when the last call stopped because the output buffer was full.
    while ((await this.step(NO_INPUT)).written > 0);
    await this.deliver();
    if (!this.ended) throw new InvalidArgumentError('zstd layer: unexpected end of data (truncated or empty)');
    await this.spans.end();
  }

  private async step(input: Buffer): Promise<DecompressResult> {
    this.turn ^= 1;
    const output = this.outputs[this.turn];
    const running = this.decompress(input, output);
    running.catch(() => undefined); // if delivering throws first, this outcome no longer matters
    await this.deliver();
    const result = await running;
    if (input.length > 0 && result.read === 0 && result.written === 0) throw new InternalError('zstd layer: no progress');
    this.undelivered = output.subarray(0, result.written);
    this.ended = result.ended;
    return result;
  }

  private async decompress(input: Buffer, output: Buffer): Promise<DecompressResult> {
    try {
      return await this.native.decompress(input, output);
    } catch (err) {
      throw translateNativeError(err, 'zstd layer');
    }
  }

  private async deliver(): Promise<void> {
    const data = this.undelivered;
    this.undelivered = null;
    if (data !== null && data.length > 0) await this.spans.data(data);
  }
}
