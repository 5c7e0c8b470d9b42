/**
 * The one table that turns clip's typed errors into gRPC statuses, matching what containerd's
 * errdefs.FromGRPC (1.6/1.7) and errgrpc.ToNative (2.x) understand.
 */
import { Metadata, status } from '@grpc/grpc-js';
import { ClipErrorCode, isClipError, errorMessage } from '../errors';

const CODES: Record<ClipErrorCode, status> = {
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  UNAVAILABLE: status.UNAVAILABLE,
  NOT_IMPLEMENTED: status.UNIMPLEMENTED,
  INTERNAL: status.INTERNAL,
};

export interface GrpcStatus {
  code: status;
  details: string;
  metadata: Metadata;
}

/** The status for any thrown value; untyped errors are UNKNOWN, as containerd maps unknown errors. */
export function toGrpcStatus(err: unknown): GrpcStatus {
  const code = isClipError(err) ? CODES[err.code] : status.UNKNOWN;
  return { code, details: errorMessage(err), metadata: new Metadata() };
}

/**
 * How loudly to log a failed call: statuses containerd provokes in normal operation (a Stat before an
 * unpack, an existing key, GC removing a parent first) are debug; a bad request is a warning; the rest
 * are errors.
 */
export function logLevelFor(code: status): 'debug' | 'warn' | 'error' {
  switch (code) {
    case status.NOT_FOUND:
    case status.ALREADY_EXISTS:
    case status.FAILED_PRECONDITION:
    case status.UNIMPLEMENTED:
      return 'debug';
    case status.INVALID_ARGUMENT:
      return 'warn';
    default:
      return 'error';
  }
}
