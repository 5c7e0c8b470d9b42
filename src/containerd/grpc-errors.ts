/**
 * The one table for the client direction: gRPC statuses from containerd become clip's typed errors, as
 * containerd's own errdefs.FromGRPC does. The status message is kept and prefixed with what was being
 * done, so an error reads as one line ("write content sha256:…: blob … exists").
 */
import { ServiceError, status } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  ClipError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
} from '../errors';

type ErrorClass = new (message: string, options?: { cause?: unknown }) => ClipError;

const CLASSES: Partial<Record<status, ErrorClass>> = {
  [status.NOT_FOUND]: NotFoundError,
  [status.ALREADY_EXISTS]: AlreadyExistsError,
  [status.FAILED_PRECONDITION]: FailedPreconditionError,
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.OUT_OF_RANGE]: InvalidArgumentError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.DEADLINE_EXCEEDED]: UnavailableError,
  [status.UNIMPLEMENTED]: NotImplementedError,
};

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** A typed error for a failed call; `what` names the call ("stat snapshot sha256:…"). */
export function fromGrpcError(err: unknown, what: string): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new InternalError(`${what}: ${String(err)}`);
  const Class = CLASSES[err.code] ?? InternalError;
  const details = err.code === status.DEADLINE_EXCEEDED ? `timed out (${err.details})` : err.details || status[err.code];
  return new Class(`${what}: ${details}`, { cause: err });
}
