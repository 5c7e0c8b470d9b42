/**
 * Errors particular to indexing. Both extend the shared classes in src/errors.ts, so the edges translate
 * them by code like any other; callers that want to react to them specifically use instanceof.
 */
import { InvalidArgumentError, NotImplementedError } from '../errors';

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
