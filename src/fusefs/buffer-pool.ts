/**
 * Reusable buffers for the span read path: a fetched range and the span inflated from it are large (a few
 * MiB each) and live for milliseconds, so allocating them fresh for every span makes V8 count megabytes of
 * new external memory per span and run major garbage collections; reusing them does not.
 *
 * Rules:
 * * The pool keeps at most `maxBytes` of buffers (leased or free). A lease it cannot serve within that bound
 *   gets a plain buffer of its own that the garbage collector takes back: acquiring never waits, so a pool
 *   can never hold a reader up or deadlock two loads that each want a second buffer.
 * * A lease counts its holders (retain/release). Its memory goes back to the pool only when the last holder
 *   released it, and only then may another lease be given the same memory: bytes a reader still holds are
 *   never overwritten. Releasing more often than retained throws (a bug, not a condition).
 * * Free buffers are dropped once the pool has not been asked for one for `idleMs`: an idle daemon does not
 *   keep the memory of its last burst of reads.
 * * detach() hands the bytes to code that keeps them indefinitely (the garbage collector's business from
 *   then on); the pool forgets the memory and may allocate a replacement later.
 */
import { InternalError } from '../errors';

/** Buffers are allocated in multiples of this, so spans of slightly different sizes share them. */
const GRANULE = 64 << 10;

export class BufferLease {
  private holders = 1;
  private detached = false;

  /** @internal the pool creates leases */
  constructor(
    /** The leased bytes: exactly the length asked for. */
    readonly bytes: Buffer,
    private readonly memory: Buffer,
    private readonly pool: BufferPool | undefined,
  ) {}

  /** A lease of bytes no pool owns (released or not, they are the garbage collector's). */
  static unpooled(bytes: Buffer): BufferLease {
    return new BufferLease(bytes, bytes, undefined);
  }

  /** Whether the bytes are still held (by anyone). */
  get held(): boolean {
    return this.holders > 0;
  }

  /** One more holder; each must release. */
  retain(): this {
    if (this.holders === 0) throw new InternalError('BufferLease: retained after its last release');
    this.holders++;
    return this;
  }

  release(): void {
    if (this.holders === 0) throw new InternalError('BufferLease: released more often than held');
    if (--this.holders === 0 && !this.detached) this.pool?.giveBack(this.memory);
  }

  /** The bytes, for keeping indefinitely: the pool will never reuse this memory. */
  detach(): Buffer {
    if (this.holders === 0) throw new InternalError('BufferLease: detached after its last release');
    if (!this.detached) {
      this.detached = true;
      this.pool?.forget(this.memory);
    }
    return this.bytes;
  }
}

export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Bytes of the buffers the pool owns, leased or free. */
  private owned = 0;
  /** Leases served outside the bound (a plain buffer each), for tests and metrics. */
  overflows = 0;
  private lastAcquire = 0;
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly maxBytes: number,
    private readonly idleMs = 10_000,
  ) {}

  /** Bytes of the buffers the pool owns now, leased or free (never more than maxBytes). */
  get ownedBytes(): number {
    return this.owned;
  }

  /** `length` bytes (contents undefined), pooled when the bound allows. */
  acquire(length: number): BufferLease {
    this.lastAcquire = Date.now();
    const fit = this.takeFree(length);
    if (fit) return new BufferLease(fit.subarray(0, length), fit, this);
    const size = Math.max(GRANULE, Math.ceil(length / GRANULE) * GRANULE);
    // Free buffers too small for this length make room for one that fits.
    while (this.owned + size > this.maxBytes && this.free.length > 0) this.owned -= this.free.pop()!.length;
    if (this.owned + size > this.maxBytes) {
      this.overflows++;
      return BufferLease.unpooled(Buffer.allocUnsafeSlow(length));
    }
    this.owned += size;
    const memory = Buffer.allocUnsafeSlow(size);
    return new BufferLease(memory.subarray(0, length), memory, this);
  }

  /** The smallest free buffer that holds `length` bytes, taken off the free list. */
  private takeFree(length: number): Buffer | undefined {
    let best = -1;
    this.free.forEach((b, i) => {
      if (b.length >= length && (best < 0 || b.length < this.free[best]!.length)) best = i;
    });
    return best < 0 ? undefined : this.free.splice(best, 1)[0];
  }

  /** @internal a lease's last holder let go */
  giveBack(memory: Buffer): void {
    this.free.push(memory);
    this.trimTimer ??= setTimeout(() => this.trim(), this.idleMs).unref();
  }

  /** Drops the free buffers if the pool has been idle for idleMs, else looks again when it may be. */
  private trim(): void {
    this.trimTimer = undefined;
    const idle = Date.now() - this.lastAcquire;
    if (idle < this.idleMs) {
      this.trimTimer = setTimeout(() => this.trim(), this.idleMs - idle).unref();
      return;
    }
    for (const b of this.free.splice(0)) this.owned -= b.length;
  }

  /** @internal a lease was detached */
  forget(memory: Buffer): void {
    this.owned -= memory.length;
  }
}
