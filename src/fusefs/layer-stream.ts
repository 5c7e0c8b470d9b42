/**
 * The layer's uncompressed stream as byte ranges: maps [offset, offset + length) to the checkpoint spans
 * that hold it (binary search over the checkpoints) and returns the pieces, in order, as views of the span
 * buffers. Span i is [checkpoints[i].uncompressedOffset, checkpoints[i + 1].uncompressedOffset); the last
 * span ends at uncompressedSize.
 */
import type { ClipArchive } from '../archive/types';
import { InternalError, InvalidArgumentError } from '../errors';
import { RecentSpans } from './recent-spans';
import type { SpanReader } from './span-reader';

export class LayerStream {
  /** Span boundaries: span i is [bounds[i], bounds[i + 1]). */
  private readonly bounds: number[];
  private readonly spans: RecentSpans;
  private readonly reader: SpanReader;

  constructor(
    private readonly archive: Pick<ClipArchive, 'checkpoints' | 'uncompressedSize' | 'layerDigest'>,
    reader: SpanReader,
    memoryBytes: number,
  ) {
    const { checkpoints, uncompressedSize, layerDigest } = archive;
    this.bounds = [...checkpoints.map((c) => c.uncompressedOffset), uncompressedSize];
    const bad = this.bounds.findIndex((b, i) => (i === 0 ? b !== 0 : b < this.bounds[i - 1]));
    if (uncompressedSize > 0 && (checkpoints.length === 0 || bad !== -1)) {
      throw new InvalidArgumentError(
        `layer ${layerDigest}: checkpoints must start at 0 and increase up to the stream size (${uncompressedSize}), checkpoint ${bad} does not`,
      );
    }
    this.reader = reader;
    this.spans = new RecentSpans({ readSpan: (i, signal) => this.readChecked(reader, i, signal) }, memoryBytes);
  }

  /** The span holding `offset` (0 <= offset < uncompressedSize). */
  spanAt(offset: number): number {
    let lo = 0;
    let hi = this.bounds.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.bounds[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The bytes [offset, offset + length) of the stream, which must lie inside it, as consecutive pieces:
   * from the layer's start-up bundle when it holds them all (SpanReader.readBundled); otherwise each piece comes from a span kept in memory, else from the reader's slice of a verified cached span
   * (without loading all of it), else from the whole span, loaded (and kept) once for every request.
   */
  async read(offset: number, length: number, signal: AbortSignal): Promise<Buffer[]> {
    const bundled = await this.reader.readBundled?.(offset, length, signal);
    if (bundled) return [bundled];
    return Promise.all(this.pieces(offset, length, (i, from, to) => this.piece(i, from, to, signal)));
  }

  private async piece(index: number, from: number, to: number, signal: AbortSignal): Promise<Buffer> {
    const kept = this.spans.peek(index);
    if (kept) return kept.subarray(from, to);
    if (this.reader.readSlice && !this.spans.loading(index)) {
      const slice = await this.reader.readSlice(index, from, to - from);
      if (slice) return slice;
    }
    return (await this.spans.get(index, signal)).subarray(from, to);
  }

  /**
   * The same, at once, if every span it needs is in memory (the common case for a sequential read, which
   * asks for one large span many times); otherwise undefined.
   */
  readKept(offset: number, length: number): Buffer[] | undefined {
    const pieces = this.pieces(offset, length, (i, from, to) => this.spans.peek(i)?.subarray(from, to));
    return pieces.every((p) => p !== undefined) ? (pieces as Buffer[]) : undefined;
  }

  private pieces<T>(offset: number, length: number, piece: (span: number, from: number, to: number) => T): T[] {
    const end = offset + length;
    const out: T[] = [];
    for (let i = this.spanAt(offset); i < this.bounds.length - 1 && this.bounds[i] < end; i++) {
      const [start, stop] = [this.bounds[i], this.bounds[i + 1]];
      if (stop <= offset) continue;
      out.push(piece(i, Math.max(offset, start) - start, Math.min(end, stop) - start));
    }
    return out;
  }

  private async readChecked(reader: SpanReader, index: number, signal: AbortSignal): Promise<Buffer> {
    const bytes = await reader.readSpan(index, signal);
    const expected = this.bounds[index + 1] - this.bounds[index];
    if (bytes.length !== expected) {
      throw new InternalError(`layer ${this.archive.layerDigest}: span ${index}: got ${bytes.length} bytes, expected ${expected}`);
    }
    return bytes;
  }
}
