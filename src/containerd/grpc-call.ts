/**
 * How clip calls containerd: every call carries the namespace (gRPC metadata `containerd-namespace`)
 * and, inside a lease, the lease id (`containerd-lease`), has a deadline, and fails with a typed error.
 */
import { CallOptions, ClientReadableStream, ClientUnaryCall, Metadata, ServiceError } from '@grpc/grpc-js';
import { fromGrpcError } from './grpc-errors';

/** Who a call is made for: containerd's namespace and the lease that protects what it creates. */
export interface CallContext {
  namespace: string;
  lease?: string;
  /** Cancels calls in flight and fails new ones with the signal's reason. */
  signal?: AbortSignal;
}

/** Deadline of ordinary calls. */
export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

export function callMetadata(ctx: CallContext): Metadata {
  const md = new Metadata();
  md.set('containerd-namespace', ctx.namespace);
  if (ctx.lease) md.set('containerd-lease', ctx.lease);
  return md;
}

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

/**
 * Makes one unary call. `invoke` receives the metadata, the call options (deadline) and the callback,
 * e.g. `(md, opts, cb) => client.stat(request, md, opts, cb)`.
 */
export function unaryCall<Res>(
  what: string,
  ctx: CallContext,
  invoke: (md: Metadata, options: Partial<CallOptions>, cb: Callback<Res>) => ClientUnaryCall,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<Res> {
  const { signal } = ctx;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const call = invoke(callMetadata(ctx), { deadline: Date.now() + timeoutMs }, (err, res) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(signal.reason);
      else if (err) reject(fromGrpcError(err, what));
      else resolve(res);
    });
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Makes one server-streaming call and hands each message to `onMessage` in order. An exception thrown by
 * `onMessage` cancels the call and is what the promise rejects with (the caller's bound on what it reads).
 */
export function streamCall<Res>(
  what: string,
  ctx: CallContext,
  invoke: (md: Metadata, options: Partial<CallOptions>) => ClientReadableStream<Res>,
  timeoutMs: number,
  onMessage: (res: Res) => void,
): Promise<void> {
  const { signal } = ctx;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let failure: unknown;
    const call = invoke(callMetadata(ctx), { deadline: Date.now() + timeoutMs });
    const onAbort = (): void => {
      failure ??= signal!.reason;
      call.cancel();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (err?: unknown): void => {
      signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    call.on('data', (res: Res) => {
      if (failure !== undefined) return;
      try {
        onMessage(res);
      } catch (err) {
        failure = err;
        call.cancel();
      }
    });
    call.on('error', (err: ServiceError) => settle(failure ?? fromGrpcError(err, what)));
    call.on('end', () => settle(failure));
  });
}
