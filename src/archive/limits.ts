/**
 * Limits on what one clip archive may hold, so that a small hostile file cannot make its reader build a
 * huge heap or block for long (docs/limits.md). decodeArchive enforces them while it decodes: the header
 * fields first (checkArchiveHeader), then every entry and checkpoint as it is read, failing at the first
 * excess with an ArchiveLimitError. The indexer (src/indexer/index-limits.ts) enforces the same content
 * limits while it builds an archive, so clip never writes an archive it would refuse to read.
 *
 * Each limit is a daemon setting (`[limits]` in config/clip.toml); the messages name the setting.
 */
import { ArchiveFormatError } from './format-error';

export interface ContentLimits {
  /** Entries in one layer (limits.max_entries). */
  maxEntries: number;
  /** Bytes of one path or link target (limits.max_path_bytes; Linux PATH_MAX). */
  maxPathBytes: number;
  /** Bytes of one path component (limits.max_name_bytes; Linux NAME_MAX). */
  maxNameBytes: number;
  /** Paths, link targets and extended attributes of all entries together (limits.max_metadata_size). */
  maxMetadataBytes: number;
  /** Checkpoints (spans) of one layer (limits.max_checkpoints); each may hold a 32 KiB window in memory. */
  maxCheckpoints: number;
  /** Uncompressed bytes of one span (limits.max_span_size): a reader holds a whole span in memory. */
  maxSpanBytes: number;
}

export interface ArchiveLimits extends ContentLimits {
  /** Bytes of the whole archive file, header included (limits.max_archive_size). */
  maxBytes: number;
  /** Inflated bytes of the archive's start-up bundle (limits.max_startup_bundle_size): a node keeps them in its cache. */
  maxStartupBundleBytes: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;

export const DEFAULT_CONTENT_LIMITS: Readonly<ContentLimits> = Object.freeze({
  maxEntries: 1_000_000,
  maxPathBytes: 4096,
  maxNameBytes: 255,
  maxMetadataBytes: 128 * MIB,
  maxCheckpoints: 16_384,
  maxSpanBytes: 16 * MIB,
});

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  ...DEFAULT_CONTENT_LIMITS,
  maxBytes: 1024 * MIB,
  maxStartupBundleBytes: 256 * MIB,
});

/** The cap recommended for an archive fetched from a registry (published archives): see docs/limits.md. */
export const DEFAULT_PUBLISHED_ARCHIVE_BYTES = 64 * MIB;

/** The setting that configures each limit, for messages. */
export const LIMIT_SETTINGS: Readonly<Record<keyof ArchiveLimits, string>> = Object.freeze({
  maxBytes: 'limits.max_archive_size',
  maxStartupBundleBytes: 'limits.max_startup_bundle_size',
  maxEntries: 'limits.max_entries',
  maxPathBytes: 'limits.max_path_bytes',
  maxNameBytes: 'limits.max_name_bytes',
  maxMetadataBytes: 'limits.max_metadata_size',
  maxCheckpoints: 'limits.max_checkpoints',
  maxSpanBytes: 'limits.max_span_size',
});

/** "limits.max_path_bytes = 4096": the setting and its value, for the end of a limit message. */
export function limitSetting(setting: string, value: number): string {
  return `${setting} = ${value}`;
}

/** An archive that breaks one of the limits: a format error (INVALID_ARGUMENT) naming the limit. */
export class ArchiveLimitError extends ArchiveFormatError {
  constructor(
    /** What exceeds the limit, without the limit. */
    readonly excess: string,
    readonly limit: keyof ArchiveLimits,
    readonly value: number,
    options?: { cause?: unknown; file?: string },
  ) {
    super(`${excess} (limit ${limitSetting(LIMIT_SETTINGS[limit], value)})`, options);
  }
}

/** The limits with `overrides` applied; every value must be a positive safe integer. */
export function archiveLimits(overrides: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const limits = { ...DEFAULT_ARCHIVE_LIMITS, ...withoutUndefined(overrides) };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new ArchiveFormatError(`invalid limit ${name} = ${String(value)} (want a positive integer)`);
    }
  }
  return limits;
}

export function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Why `path` (a path or a link target) breaks the length limits, or undefined. `bytes` is its UTF-8 length
 * when the caller knows it.
 */
export function pathLengthProblem(
  path: string,
  limits: Pick<ContentLimits, 'maxPathBytes' | 'maxNameBytes'>,
  bytes = Buffer.byteLength(path),
): { problem: string; limit: 'maxPathBytes' | 'maxNameBytes' } | undefined {
  if (bytes > limits.maxPathBytes) return { problem: `is ${bytes} bytes long`, limit: 'maxPathBytes' };
  if (bytes <= limits.maxNameBytes) return undefined; // no component can be longer than the path
  let start = 0;
  while (start <= path.length) {
    let end = path.indexOf('/', start);
    if (end < 0) end = path.length;
    // A component of n UTF-16 units has at most 3n UTF-8 bytes: measure only those that may be too long.
    if (3 * (end - start) > limits.maxNameBytes) {
      const n = Buffer.byteLength(path.slice(start, end));
      if (n > limits.maxNameBytes) return { problem: `has a ${n}-byte component`, limit: 'maxNameBytes' };
    }
    start = end + 1;
  }
  return undefined;
}
