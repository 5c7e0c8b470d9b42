/**
 * The seam through which the filesystem gets file bytes. Declared here, by its user; implemented elsewhere
 * (the content cache and the registry) and, in tests, by a plain in-memory buffer.
 */

/** Returns the verified uncompressed bytes of span i of the layer: [checkpoints[i].uncompressedOffset, next). */
export interface SpanReader {
  readSpan(index: number, signal: AbortSignal): Promise<Buffer>;
  /**
   * Bytes [from, from + length) of span i if they can be had without loading and checking the whole span
   * (a span already verified and kept on disk); otherwise undefined, and the caller uses readSpan.
   */
  readSlice?(index: number, from: number, length: number): Promise<Buffer | undefined>;
  /**
   * Bytes [offset, offset + length) of the layer's stream from its start-up bundle, when the bundle holds
   * them all (waiting for it while it is on its way); otherwise undefined, and the caller reads spans.
   */
  readBundled?(offset: number, length: number, signal: AbortSignal): Promise<Buffer | undefined>;
  /**
   * Where verified spans are kept as files, for a server that reads them itself; `watch` reports each
   * verified span with its file's name in `dir` (those verified already first), until the returned function
   * is called.
   */
  spanFiles?(): SpanFiles;
}

export interface SpanFiles {
  dir: string;
  watch(onVerified: (index: number, fileName: string) => void): () => void;
  /**
   * Gives the cache a way to learn when the server last read each span (per span index, milliseconds of
   * the monotonic clock, 0 if never), for its least-recently-used eviction; until the returned function is
   * called. The layer counts as mounted meanwhile.
   */
  trackReads?(readTimes: () => ArrayLike<number>): () => void;
  /**
   * The server answered a read from span i's file for the first time since `watch` reported it: a reader
   * the read path never sees otherwise has reached span i (a sequential reader's read-ahead moves on).
   */
  cachedRead?(index: number): void;
  /**
   * Reports the layer's start-up bundle once it is verified in `dir` (its file's name, and the stream
   * ranges it holds as [start, end) pairs, in order), for a server that reads it itself; never if the layer
   * has none or it cannot be had. Until the returned function is called.
   */
  watchBundle?(onReady: (fileName: string, ranges: Float64Array) => void): () => void;
}
