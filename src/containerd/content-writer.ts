/**
 * The client side of containerd's streaming Content.Write, as containerd's own remote writer drives it.
 * containerd answers every request with one response, in order:
 *
 *   → STAT   ref, total, expected      ← offset already ingested (a stale ingest is restarted at 0)
 *   → WRITE  offset, data    (×n)      ← offset after the write
 *   → COMMIT offset, total, expected, labels
 *                                      ← digest; containerd verified size and digest, the blob exists
 *
 * ALREADY_EXISTS (the namespace has the digest; containerd then adds it to the lease) can come on any
 * response. Writes are pipelined (a few chunks in flight) and follow backpressure in both directions:
 * the source is read only as fast as containerd accepts data, and a stream that makes no progress
 * (no answer, no room to send) for IDLE_TIMEOUT_MS is cancelled.
 */
import { ClientDuplexStream } from '@grpc/grpc-js';
import {
  ContentClient,
  WriteAction,
  WriteContentRequest,
  WriteContentResponse,
} from '../generated/containerd/services/content/v1/content';
import { AlreadyExistsError, InternalError, UnavailableError } from '../errors';
import { CallContext, callMetadata } from './grpc-call';
import { fromGrpcError } from './grpc-errors';

/** Bytes per WRITE message (containerd accepts messages up to 16 MiB). */
const WRITE_CHUNK_BYTES = 1 << 20;
/** WRITE messages sent before waiting for the oldest answer. */
const MAX_IN_FLIGHT = 4;
/** A write stream that gets no answer for this long is cancelled. */
const IDLE_TIMEOUT_MS = 60_000;

/** Bytes to store: a buffer, or any byte stream (a Node Readable is one). */
export type WriteSource = Buffer | AsyncIterable<Buffer | Uint8Array>;

export interface ContentWrite {
  ref: string;
  digest: string;
  size: number;
  data: WriteSource;
  labels: Record<string, string>;
  onProgress?: (written: number) => void;
}

/**
 * One write stream: requests are sent with backpressure, responses awaited one at a time; waiting for
 * either longer than the idle timeout, or a failed stream, rejects.
 */
class WriteStream {
  private readonly ready: WriteContentResponse[] = [];
  private waiter: { resolve: (r: WriteContentResponse) => void; reject: (e: unknown) => void } | undefined;
  private drainWaiter: ((err?: unknown) => void) | undefined;
  private failure: unknown;

  constructor(
    private readonly call: ClientDuplexStream<WriteContentRequest, WriteContentResponse>,
    private readonly what: string,
  ) {
    call.on('drain', () => {
      this.drainWaiter?.();
      this.drainWaiter = undefined;
    });
    call.on('data', (res: WriteContentResponse) => {
      if (this.waiter) {
        this.waiter.resolve(res);
        this.waiter = undefined;
      } else this.ready.push(res);
    });
    call.on('error', (err: unknown) => this.fail(fromGrpcError(err, what)));
    call.on('end', () => this.fail(new InternalError(`${what}: containerd ended the write stream early`)));
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    this.waiter?.reject(this.failure);
    this.waiter = undefined;
    this.drainWaiter?.(this.failure);
    this.drainWaiter = undefined;
  }

  private idleTimer(): NodeJS.Timeout {
    return setTimeout(() => this.fail(new UnavailableError(`${this.what}: no progress with containerd for ${IDLE_TIMEOUT_MS / 1000} s`)), IDLE_TIMEOUT_MS);
  }

  /** Sends one request; waits while the stream's buffer is full. */
  send(req: Partial<WriteContentRequest>): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const full: WriteContentRequest = { action: WriteAction.STAT, ref: '', total: 0, expected: '', offset: 0, data: Buffer.alloc(0), labels: {}, ...req };
    if (this.call.write(full)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = this.idleTimer();
      this.drainWaiter = (err) => {
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
    });
  }

  next(): Promise<WriteContentResponse> {
    const res = this.ready.shift();
    if (res) return Promise.resolve(res);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = this.idleTimer();
      this.waiter = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }
}

/** Yields the source in chunks of at most WRITE_CHUNK_BYTES. */
async function* chunks(data: WriteSource): AsyncGenerator<Buffer> {
  const source: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer> = Buffer.isBuffer(data) ? [data] : data;
  for await (const piece of source) {
    const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    for (let at = 0; at < buf.length; at += WRITE_CHUNK_BYTES) yield buf.subarray(at, at + WRITE_CHUNK_BYTES);
  }
}

/** Writes one blob; 'exists' when containerd already has the digest in this namespace. */
export async function writeContent(raw: ContentClient, ctx: CallContext, w: ContentWrite): Promise<'written' | 'exists'> {
  const what = `write content ${w.digest}`;
  const { signal } = ctx;
  signal?.throwIfAborted();
  const call = raw.write(callMetadata(ctx));
  const stream = new WriteStream(call, what);
  const onAbort = (): void => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await stream.send({ action: WriteAction.STAT, ref: w.ref, total: w.size, expected: w.digest });
    await stream.next();
    let offset = 0;
    let inFlight = 0;
    for await (const data of chunks(w.data)) {
      if (offset + data.length > w.size) throw new InternalError(`${what}: more than the expected ${w.size} bytes`);
      await stream.send({ action: WriteAction.WRITE, ref: w.ref, offset, data });
      offset += data.length;
      if (++inFlight >= MAX_IN_FLIGHT) {
        w.onProgress?.((await stream.next()).offset);
        inFlight--;
      }
    }
    if (offset !== w.size) throw new InternalError(`${what}: the source ended after ${offset} of ${w.size} bytes`);
    await stream.send({ action: WriteAction.COMMIT, ref: w.ref, offset, total: w.size, expected: w.digest, labels: w.labels });
    let last: WriteContentResponse | undefined;
    for (; inFlight >= 0; inFlight--) {
      last = await stream.next();
      w.onProgress?.(last.offset);
    }
    call.end();
    if (last?.digest !== w.digest) throw new InternalError(`${what}: containerd committed ${last?.digest || 'nothing'}`);
    return 'written';
  } catch (err) {
    call.cancel();
    if (signal?.aborted) throw signal.reason;
    if (err instanceof AlreadyExistsError) return 'exists';
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
