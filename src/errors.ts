/**
 * Typed errors shared by every part of clip. Each class carries a stable `code`; the edges translate
 * these codes exactly once: the gRPC adapter to status codes (snapshotter/grpc-status.ts), the FUSE
 * filesystem to errno values. Messages follow containerd's Go style ("snapshot x: not found") so
 * containerd's own error decoding does not double the class text.
 */
export type ClipErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'NOT_IMPLEMENTED'
  | 'INTERNAL';

export abstract class ClipError extends Error {
  abstract readonly code: ClipErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends ClipError {
  readonly code = 'NOT_FOUND';
}

export class AlreadyExistsError extends ClipError {
  readonly code = 'ALREADY_EXISTS';
}

export class FailedPreconditionError extends ClipError {
  readonly code = 'FAILED_PRECONDITION';
}

export class InvalidArgumentError extends ClipError {
  readonly code = 'INVALID_ARGUMENT';
}

export class UnavailableError extends ClipError {
  readonly code = 'UNAVAILABLE';
}

export class NotImplementedError extends ClipError {
  readonly code = 'NOT_IMPLEMENTED';
}

export class InternalError extends ClipError {
  readonly code = 'INTERNAL';
}

/** A configuration file or setting clip cannot use (the `clip` command exits 5). */
export class ConfigError extends InvalidArgumentError {}

/** A daemon the command needs (containerd, clip) does not answer on its socket (the `clip` command exits 3). */
export class DaemonUnreachableError extends UnavailableError {}

/** The content cache has no room for a span within its bounds ([cache] max_size, min_free); the span is served uncached. */
export class CacheFullError extends UnavailableError {}

export function isClipError(err: unknown): err is ClipError {
  return err instanceof ClipError;
}

/** Best-effort message of any thrown value, for logs and one-line CLI errors. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
