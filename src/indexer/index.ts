/**
 * src/indexer: turning a layer blob into a clip archive (tar entries, zran checkpoints, digests), and
 * reading single spans back from the blob.
 */
export { indexLayer, DEFAULT_SPAN_SIZE, type IndexLayerOptions } from './index-layer';
export type { SpanStore, SpanWriter } from './span-recorder';
export { spanRange, decodeSpan, type SpanRange, type SpanSource } from './span-decoder';
export { declaredCompression, detectCompression, layerCompression, MAGIC_LENGTH, type DetectedCompression } from './compression';
export { DigestMismatchError, IndexLimitError, UnsupportedCompressionError } from './errors';
export { sha256Digest } from './sha256-stream';
export { loadIndexerAddon } from './native-addon';
export { DEFAULT_INDEX_LIMITS, indexLimits, type IndexLimits } from './index-limits';
