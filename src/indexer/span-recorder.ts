/**
 * Cuts the uncompressed stream into spans at its checkpoints: keeps the checkpoint list, computes each
 * span's sha256 (on the thread pool) and, when given a store, streams each span's bytes into it as they
 * arrive (to keep them in a cache while indexing, without copying them). Span i is
 * [checkpoints[i].uncompressedOffset, next checkpoint's).
 *
 * It enforces the span limits (index-limits.ts): a gzip checkpoint can only sit at a deflate block
 * boundary, so a blob with few boundaries (one deflate block of gigabytes) makes spans no reader could
 * hold in memory; a span longer than limits.maxSpanBytes, or more than limits.maxCheckpoints spans,
 * throws IndexLimitError as soon as the stream passes the limit.
 */
import type { Checkpoint } from '../archive/types';
import { InternalError } from '../errors';
import { DEFAULT_INDEX_LIMITS, limitError, type IndexLimits } from './index-limits';
import { Sha256Stream } from './sha256-stream';

/** Where one span's bytes go while the layer is indexed. */
export interface SpanWriter {
  /** Appends `chunk`; it must not be used after the promise settles (the decoder reuses its buffers). */
  write(chunk: Buffer): Promise<void>;
  /** The span is complete; `digest` ("sha256:…") is what ends up in ClipArchive.spanDigests. */
  commit(digest: string): Promise<void>;
  /** Indexing failed: drop what was written. */
  abort(): Promise<void>;
}

/** Receives the bytes of every span, in order. They are NOT verified while they stream: see indexLayer. */
export interface SpanStore {
  open(index: number): Promise<SpanWriter>;
}

export class SpanRecorder {
  readonly checkpoints: Checkpoint[] = [];
  readonly digests: string[] = [];
  private hash: Sha256Stream | null = null;
  private writer: SpanWriter | null = null;
  private offset = 0;
  /** Where the current span may end at the latest. */
  private spanEnd = 0;

  constructor(
    private readonly store?: SpanStore,
    private readonly limits: IndexLimits = DEFAULT_INDEX_LIMITS,
  ) {}

  /** Ends the current span (committing it to the store) and starts one at `checkpoint`. */
  async checkpoint(checkpoint: Checkpoint): Promise<void> {
    if (checkpoint.uncompressedOffset !== this.offset) {
      throw new InternalError(`checkpoint at ${checkpoint.uncompressedOffset} arrived at offset ${this.offset}`);
    }
    if (this.checkpoints.length === this.limits.maxCheckpoints) {
      throw limitError(`layer: more than ${this.limits.maxCheckpoints} spans`, this.limits, 'maxCheckpoints');
    }
    await this.finishSpan();
    this.spanEnd = this.offset + this.limits.maxSpanBytes;
    this.checkpoints.push(checkpoint);
    this.hash = new Sha256Stream();
    if (this.store) this.writer = await this.store.open(this.checkpoints.length - 1);
  }

  /** Hashes (and stores) the next bytes; `chunk` may be reused once the promise settles. */
  data(chunk: Buffer): Promise<void> {
    if (this.hash === null) throw new InternalError('span data before the first checkpoint');
    this.offset += chunk.length;
    if (this.offset > this.spanEnd) {
      const start = this.checkpoints[this.checkpoints.length - 1]!.uncompressedOffset;
      throw limitError(
        `layer: no place to resume decompression within ${this.limits.maxSpanBytes} bytes after uncompressed offset ${start} (a span that long cannot be served)`,
        this.limits,
        'maxSpanBytes',
      );
    }
    const hashed = this.hash.update(chunk);
    return this.writer ? both(hashed, this.writer.write(chunk)) : hashed;
  }

  /** Ends the last span. */
  async end(): Promise<void> {
    if (this.checkpoints.length === 0) throw new InternalError('stream ended without a checkpoint');
    await this.finishSpan();
  }

  /** Drops the span being written, if any (indexing failed). */
  async abort(): Promise<void> {
    const writer = this.writer;
    this.writer = null;
    await writer?.abort();
  }

  private async finishSpan(): Promise<void> {
    if (this.hash === null) return;
    const digest = await this.hash.digest();
    this.hash = null;
    this.digests.push(digest);
    const writer = this.writer;
    this.writer = null;
    await writer?.commit(digest);
  }
}

/** Settles when both have, rejecting with the first failure (after both settled, so no write is left behind). */
async function both(a: Promise<void>, b: Promise<void>): Promise<void> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
}
