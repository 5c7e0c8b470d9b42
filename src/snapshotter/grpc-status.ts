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

/** Statuses that are part of normal operation (containerd expects them) rather than failures. */
export function isExpectedStatus(code: status): boolean {
  return code === status.NOT_FOUND || code === status.ALREADY_EXISTS || code === status.UNIMPLEMENTED;
}
