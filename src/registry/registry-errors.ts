/**
 * Registry-specific errors. Each extends one of clip's typed errors (src/errors.ts), so the edges
 * (gRPC, FUSE) translate them without knowing about registries; `status` is the HTTP status when
 * the error came from a response.
 */
import {
  FailedPreconditionError,
  InternalError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
} from '../errors';

interface StatusOptions {
  cause?: unknown;
  status?: number;
}

/** The registry answered 404: the repository, manifest or blob does not exist there. */
export class RegistryNotFoundError extends NotFoundError {
  readonly status?: number;
  constructor(message: string, options: StatusOptions = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** 401/403 that authentication could not resolve (no or wrong credentials, denied scope). */
export class RegistryAuthError extends FailedPreconditionError {
  readonly status?: number;
  constructor(message: string, options: StatusOptions = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** Any other 4xx the registry gave as its final answer (bad request, too many redirects, 416...). */
export class RegistryRequestError extends FailedPreconditionError {
  readonly status?: number;
  constructor(message: string, options: StatusOptions = {}) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
}

/** The server broke the protocol (wrong Content-Range, short or long body). Retrying elsewhere may help. */
export class RegistryProtocolError extends UnavailableError {}

/** Content whose bytes do not hash to the digest that names them. */
export class DigestMismatchError extends InternalError {}

/** A manifest format clip does not handle (Docker schema 1, unknown media types). */
export class UnsupportedManifestError extends NotImplementedError {}

/** An index or manifest list has no entry for the wanted platform. */
export class NoMatchingPlatformError extends NotFoundError {}
