/**
 * SHA-256 of a stream of buffers, computed on the thread pool (the clip_indexer addon's Sha256) so the
 * JavaScript thread stays free while a layer is hashed. Updates queue up and are hashed in order, several
 * at a time: each update's promise settles once its buffer has been hashed, and until then the buffer
 * must not change. A caller that does not reuse its buffers need not wait, but should bound pendingBytes.
 *
 * Each trip to the thread pool wakes a thread, which costs tens of microseconds (more in some VMs), so a
 * stream fed small chunks can gather them: with `batchBytes`, queued chunks wait until that many bytes are
 * queued (or digest() is called) before they are hashed.
 */
import { InternalError } from '../errors';
import { nativeAddon, translateNativeError, type NativeSha256 } from './native-addon';

interface Batch {
  chunks: Buffer[];
  bytes: number;
  done: Promise<void>;
  settle: (err?: Error) => void;
}

function newBatch(): Batch {
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  done.catch(() => undefined); // a caller that does not wait hears of a failure from digest()
  return { chunks: [], bytes: 0, done, settle };
}

export class Sha256Stream {
  private readonly native: NativeSha256 = new (nativeAddon().Sha256)();
  /** Updates not yet handed to the thread pool. */
  private next: Batch | null = null;
  private running: Promise<void> | null = null;
  private failure: Error | undefined;
  private finished = false;
  private pending = 0;

  constructor(private readonly batchBytes = 0) {}

  /** Bytes given to update() and not hashed yet. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Queues `chunk`; the promise settles once it is hashed (with batchBytes: once its batch filled). */
  update(chunk: Buffer): Promise<void> {
    if (this.finished) throw new InternalError('Sha256Stream: update after digest');
    if (this.failure) return Promise.reject(this.failure);
    if (chunk.length === 0) return Promise.resolve();
    const batch = (this.next ??= newBatch());
    batch.chunks.push(chunk);
    batch.bytes += chunk.length;
    this.pending += chunk.length;
    if (batch.bytes >= this.batchBytes) this.running ??= this.pump();
    return batch.done;
  }

  /** Waits until at most `limit` bytes (no less than batchBytes) are queued: backpressure for callers that do not wait. */
  async drain(limit: number): Promise<void> {
    while (this.pending > Math.max(limit, this.batchBytes) && this.running) await this.running;
  }

  /** "sha256:<hex>" of everything updated, once it is all hashed. The stream is finished afterwards. */
  async digest(): Promise<string> {
    if (this.finished) throw new InternalError('Sha256Stream: digest called twice');
    this.finished = true;
    if (this.next) this.running ??= this.pump();
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
    return `sha256:${this.native.digest()}`;
  }

  private async pump(): Promise<void> {
    await null; // never finish synchronously, or `running` would be assigned after it was cleared
    while (this.next && (this.next.bytes >= this.batchBytes || this.finished)) {
      const batch = this.next;
      this.next = null;
      try {
        if (this.failure) throw this.failure;
        await this.native.update(batch.chunks);
        batch.settle();
      } catch (err) {
        this.failure ??= translateNativeError(err, 'sha256');
        batch.settle(this.failure);
      }
      this.pending -= batch.bytes;
    }
    this.running = null;
  }
}

/**
 * "sha256:<hex>" of one buffer, hashed on the thread pool: a span (megabytes) checked on the read path
 * no longer holds up the JavaScript thread that answers containerd and FUSE, and several spans are
 * hashed side by side. `data` must stay untouched until the promise settles.
 */
export async function sha256Digest(data: Buffer): Promise<string> {
  const stream = new Sha256Stream();
  void stream.update(data);
  return stream.digest();
}
