/**
 * The clip archive: the metadata-only description of one image layer (entries and gzip checkpoints),
 * its file format (docs/format.md) and reading and writing it.
 */
export type { ArchiveEntry, Checkpoint, ClipArchive, Compression, EntryType, StartupBundle } from './types';
export { MAX_STARTUP_RANGES, STARTUP_RANGE_BLOCK } from './types';
export { startupRangesFromBlockMap, type StartupRange } from './startup-ranges';
export { BundleRanges, startupRangeBytes } from './startup-bundle';
export { ArchiveFormatError } from './format-error';
export { FORMAT_VERSION, HEADER_SIZE, checkArchiveHeader, type ArchiveHeader } from './header';
export {
  ArchiveLimitError,
  DEFAULT_ARCHIVE_LIMITS,
  DEFAULT_CONTENT_LIMITS,
  DEFAULT_PUBLISHED_ARCHIVE_BYTES,
  archiveLimits,
  type ArchiveLimits,
  type ContentLimits,
} from './limits';
export { WINDOW_SIZE } from './validate';
export { archiveBody, decodeArchive, decodeArchiveAsync, encodeArchive, encodeArchiveAsync, withStartupFields, type StartupFields } from './format';
export { buildLayerTable, type LayerTable, type LayerTableInput } from './entry-table';
export { compressWindow } from './body-codec';
export { EntryEncoder, rememberEncodedEntries } from './entry-encoder';
export { readArchiveFile, writeArchiveFile, writeFileAtomic } from './archive-file';
export { summarizeArchive } from './archive-summary';
export { contentDifference, sameSpans } from './archive-diff';
export type { ArchiveSummary } from './archive-summary';
