/**
 * Errors particular to indexing. They extend the shared classes in src/errors.ts, so the edges translate
 * them by code like any other; callers that want to react to them specifically use instanceof.
 */
import { limitSetting } from '../archive/limits';
import { FailedPreconditionError, InvalidArgumentError, NotImplementedError } from '../errors';

/** Content does not hash to the digest it was fetched or recorded by (a corrupt or wrong download). */
export class DigestMismatchError extends InvalidArgumentError {
  constructor(
    what: string,
    readonly expected: string,
    readonly actual: string,
    options?: { cause?: unknown },
  ) {
    super(`${what}: digest mismatch: expected ${expected}, got ${actual}`, options);
  }
}

/**
 * A layer that cannot be served lazily (encrypted). Not a broken layer: the caller should fall back
 * to a normal unpack.
 */
export class UnsupportedCompressionError extends NotImplementedError {
  constructor(
    readonly compression: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A layer that breaks one of the indexing limits (src/indexer/index-limits.ts): too many entries, a path
 * too long, too much metadata, a span or the whole layer too large, a zstd layer that expands too much.
 * Not necessarily a broken layer, but one clip will not serve lazily: the caller falls back to a normal
 * unpack. The message names the setting that raises the limit.
 */
export class IndexLimitError extends FailedPreconditionError {
  constructor(
    detail: string,
    /** The setting, e.g. "limits.max_path_bytes". */
    readonly setting: string,
    readonly value: number,
  ) {
    super(`${detail} (limit ${limitSetting(setting, value)})`);
  }
}
