/**
 * The one place where the filesystem turns errors into errno values for the kernel, and the one place where
 * such errors are logged. Expected outcomes (ENOENT for a missing name, EROFS for a write) are answered by
 * the native server (native/clip_fuse.c) and the kernel without a log line; every failure of a read passed
 * up to JavaScript goes through `FuseErrorReporter.errno`, which logs it once and picks the errno from one
 * table.
 *
 * Values are negative (the native server's fail() takes them negated).
 */
import { constants } from 'node:os';
import type { Logger } from 'winston';
import { ClipErrorCode, errorMessage, isClipError } from '../errors';

const e = constants.errno;

export const ENOENT = -e.ENOENT;
export const EIO = -e.EIO;
export const EEXIST = -e.EEXIST;
export const EINVAL = -e.EINVAL;
export const EOPNOTSUPP = -e.EOPNOTSUPP;

/**
 * Every failure to produce bytes the index says exist is an I/O error to the reader: the read path wraps
 * SpanReader failures and timeouts as UnavailableError, whatever their cause. ENOSYS is never an error's
 * errno: the kernel would switch the operation off for the whole mount.
 */
const ERRNO_BY_CODE: Record<ClipErrorCode, number> = {
  NOT_FOUND: ENOENT,
  ALREADY_EXISTS: EEXIST,
  INVALID_ARGUMENT: EINVAL,
  FAILED_PRECONDITION: EIO,
  UNAVAILABLE: EIO,
  NOT_IMPLEMENTED: EOPNOTSUPP,
  INTERNAL: EIO,
};

/** The errno for any thrown value: typed clip errors by their code, anything else EIO. */
export function errnoFor(err: unknown): number {
  return isClipError(err) ? ERRNO_BY_CODE[err.code] : EIO;
}

/** Logs each error once, where it is translated, with the operation and path it failed. */
export class FuseErrorReporter {
  constructor(
    private readonly logger: Logger,
    private readonly context: string,
  ) {}

  errno(op: string, path: string, err: unknown): number {
    const errno = errnoFor(err);
    this.logger.log(errno === EIO ? 'error' : 'warn', `${this.context}: ${op} ${path}: ${errorMessage(err)} (errno ${-errno})`);
    return errno;
  }
}
