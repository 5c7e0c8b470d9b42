/**
 * The decoder for gzip layers, built on the zran indexer. Inflation runs on the thread pool; while it
 * works on one piece, the previous piece's output is handed to the sink, so what the sink does with it
 * (hashing, tar parsing, caching) overlaps with inflation.
 *
 * Buffering: small input chunks (HTTP bodies arrive in 16-64 KiB pieces) are copied into a batch
 * first, because each trip to the thread pool costs tens of microseconds; larger chunks are inflated in
 * place. The batch grows from 64 KiB to 1 MiB, so that a small layer does not wait for a full batch before
 * inflation starts. Output alternates between two 4 MiB buffers: the thread pool fills one while the sink reads the
 * other, so nothing is allocated per chunk. After an error the decoder must not be used again.
 */
import type { Checkpoint } from '../archive/types';
import { InternalError, InvalidArgumentError } from '../errors';
import type { DecoderSink, LayerDecoder } from './layer-decoder';
import { GzipIndexer, type InflateResult } from './zran';

const FIRST_INPUT_BATCH = 64 << 10;
const INPUT_BATCH_SIZE = 1 << 20;
const OUTPUT_BUFFER_SIZE = 4 << 20;
const NO_INPUT = Buffer.alloc(0);

interface Piece {
  data: Buffer;
  checkpoint: Checkpoint | null;
}

export class GzipDecoder implements LayerDecoder {
  private readonly indexer: GzipIndexer;
  /** Small input chunks gathered for one inflate call; reused once that call is over. */
  private readonly batch = Buffer.allocUnsafe(INPUT_BATCH_SIZE);
  private batchUsed = 0;
  /** The batch fills up to this size; it grows from FIRST_INPUT_BATCH so that small layers start inflating early. */
  private batchLimit = FIRST_INPUT_BATCH;
  private readonly outputs = [Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE), Buffer.allocUnsafe(OUTPUT_BUFFER_SIZE)];
  private turn = 0;
  /** Output of the last inflate, delivered while the next one runs. */
  private undelivered: Piece | null = null;
  /** A checkpoint waiting for output after it: one at the very end of the stream is never delivered. */
  private held: Checkpoint | null = null;
  private delivered = 0;
  private ended = false;

  constructor(
    spanSize: number,
    private readonly sink: DecoderSink,
  ) {
    this.indexer = new GzipIndexer(spanSize);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.batchUsed === 0 && chunk.length >= INPUT_BATCH_SIZE) return this.inflate(chunk);
    for (let offset = 0; offset < chunk.length; ) {
      const n = chunk.copy(this.batch, this.batchUsed, offset, offset + this.batchLimit - this.batchUsed);
      offset += n;
      this.batchUsed += n;
      if (this.batchUsed === this.batchLimit) {
        await this.inflateBatch();
        this.batchLimit = Math.min(2 * this.batchLimit, INPUT_BATCH_SIZE);
      }
    }
  }

  async end(): Promise<void> {
    await this.inflateBatch();
    // zlib may still hold output if the last call stopped because the output buffer was full.
    for (;;) {
      const result = await this.step(NO_INPUT);
      if (result.written === 0 && result.checkpoint === null) break;
    }
    await this.deliver();
    if (!this.ended) throw new InvalidArgumentError('gzip layer: unexpected end of data (truncated or empty)');
    if (this.delivered === 0 && this.held !== null) await this.sink.checkpoint(this.held); // empty stream: span 0
  }

  private async inflateBatch(): Promise<void> {
    const input = this.batch.subarray(0, this.batchUsed);
    this.batchUsed = 0;
    await this.inflate(input); // settles only once the thread pool is done reading the batch
  }

  private async inflate(input: Buffer): Promise<void> {
    let offset = 0;
    while (offset < input.length) offset += (await this.step(input.subarray(offset))).read;
  }

  /** Starts inflating `input` into the free output buffer, delivers the previous output meanwhile. */
  private async step(input: Buffer): Promise<InflateResult> {
    this.turn ^= 1;
    const output = this.outputs[this.turn];
    const running = this.indexer.inflate(input, output);
    running.catch(() => undefined); // if delivering throws first, this outcome no longer matters
    await this.deliver();
    const result = await running;
    if (input.length > 0 && result.read === 0 && result.written === 0 && result.checkpoint === null) {
      throw new InternalError('gzip layer: inflate made no progress');
    }
    this.undelivered = { data: output.subarray(0, result.written), checkpoint: result.checkpoint };
    this.ended = result.ended;
    return result;
  }

  private async deliver(): Promise<void> {
    const piece = this.undelivered;
    if (piece === null) return;
    this.undelivered = null;
    if (piece.data.length > 0) {
      if (this.held !== null) {
        const checkpoint = this.held;
        this.held = null;
        await this.sink.checkpoint(checkpoint);
      }
      await this.sink.data(piece.data);
      this.delivered += piece.data.length;
    }
    if (piece.checkpoint !== null) this.held = piece.checkpoint;
  }
}
