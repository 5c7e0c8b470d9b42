/**
 * Cuts the uncompressed stream into spans at its checkpoints: keeps the checkpoint list, computes each
 * span's sha256 and, when asked, hands each completed span's bytes to a handler (to keep the streamed
 * bytes in a cache while indexing). Span i is [checkpoints[i].uncompressedOffset, next checkpoint's).
 */
import { createHash, type Hash } from 'node:crypto';
import type { Checkpoint } from '../archive/types';
import { InternalError } from '../errors';

/** One completed span of a layer's uncompressed stream. */
export interface LayerSpan {
  index: number;
  uncompressedOffset: number;
  data: Buffer;
  /** sha256 of data ("sha256:…"), the value that ends up in ClipArchive.spanDigests[index]. */
  digest: string;
}

export type SpanHandler = (span: LayerSpan) => void | Promise<void>;

export class SpanRecorder {
  readonly checkpoints: Checkpoint[] = [];
  readonly digests: string[] = [];
  private hash: Hash | null = null;
  /** Copies of the current span's bytes, kept only when there is a handler. */
  private parts: Buffer[] = [];
  private offset = 0;

  constructor(private readonly onSpan?: SpanHandler) {}

  /** Ends the current span (handing it to the handler) and starts one at `checkpoint`. */
  checkpoint(checkpoint: Checkpoint): void | Promise<void> {
    if (checkpoint.uncompressedOffset !== this.offset) {
      throw new InternalError(`checkpoint at ${checkpoint.uncompressedOffset} arrived at offset ${this.offset}`);
    }
    const finished = this.finishSpan();
    this.checkpoints.push(checkpoint);
    this.hash = createHash('sha256');
    return finished;
  }

  data(chunk: Buffer): void {
    if (this.hash === null) throw new InternalError('span data before the first checkpoint');
    this.hash.update(chunk);
    if (this.onSpan) this.parts.push(Buffer.from(chunk)); // decoders reuse their buffers
    this.offset += chunk.length;
  }

  /** Ends the last span. */
  end(): void | Promise<void> {
    if (this.checkpoints.length === 0) throw new InternalError('stream ended without a checkpoint');
    return this.finishSpan();
  }

  private finishSpan(): void | Promise<void> {
    if (this.hash === null) return;
    const index = this.digests.length;
    const digest = `sha256:${this.hash.digest('hex')}`;
    this.digests.push(digest);
    this.hash = null;
    if (!this.onSpan) return;
    const data = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    return this.onSpan({ index, uncompressedOffset: this.checkpoints[index].uncompressedOffset, data, digest });
  }
}
