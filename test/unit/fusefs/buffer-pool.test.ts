import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../../src/fusefs/buffer-pool';

const MIB = 1 << 20;

/** Whether two buffers share memory. */
const sameMemory = (a: Buffer, b: Buffer): boolean => a.buffer === b.buffer;

describe('BufferPool', () => {
  it('reuses the memory of a released lease for the next one that fits', () => {
    const pool = new BufferPool(8 * MIB);
    const a = pool.acquire(4 * MIB);
    const memory = a.bytes;
    a.release();
    const b = pool.acquire(4 * MIB - 100);
    assert.ok(sameMemory(b.bytes, memory), 'a released buffer is used again');
    assert.equal(b.bytes.length, 4 * MIB - 100, 'a lease is exactly as long as asked');
    assert.equal(pool.ownedBytes, 4 * MIB);
    b.release();
  });

  it('never owns more than its bound: leases beyond it get buffers of their own, which are never pooled', () => {
    const pool = new BufferPool(8 * MIB);
    const leases = [pool.acquire(4 * MIB), pool.acquire(4 * MIB), pool.acquire(4 * MIB)];
    assert.equal(pool.ownedBytes, 8 * MIB);
    assert.equal(pool.overflows, 1);
    const [a, b, c] = leases.map((l) => l.bytes);
    assert.ok(!sameMemory(a!, b!) && !sameMemory(a!, c!) && !sameMemory(b!, c!), 'three leases held at once share no memory');
    for (const l of leases) l.release();
    assert.equal(pool.ownedBytes, 8 * MIB, 'the overflow buffer did not join the pool');
    const again = [pool.acquire(4 * MIB), pool.acquire(4 * MIB), pool.acquire(4 * MIB)];
    assert.ok(again.every((l) => !sameMemory(l.bytes, c!)), 'the overflow buffer is never handed out again');
    assert.equal(pool.overflows, 2);
  });

  it('drops free buffers too small for a lease to make room for one that fits', () => {
    const pool = new BufferPool(4 * MIB);
    pool.acquire(3 * MIB).release();
    const big = pool.acquire(4 * MIB);
    assert.equal(pool.overflows, 0);
    assert.equal(pool.ownedBytes, 4 * MIB);
    big.release();
  });

  it('does not give a lease\'s memory to anyone else while any of its holders still holds it', () => {
    const pool = new BufferPool(4 * MIB);
    const span = pool.acquire(4 * MIB);
    span.bytes.fill(0x11);
    const reader = span.retain(); // a second holder: a reader still sending these bytes
    span.release(); // the loader is done with them
    assert.ok(reader.held);
    const other = pool.acquire(4 * MIB);
    assert.ok(!sameMemory(other.bytes, span.bytes), 'memory still held is not leased again');
    other.bytes.fill(0x22);
    assert.ok(span.bytes.every((b) => b === 0x11), 'the held bytes are intact');
    reader.release();
    assert.ok(!span.held);
    other.release();
    const next = pool.acquire(4 * MIB);
    assert.ok(sameMemory(next.bytes, span.bytes) || sameMemory(next.bytes, other.bytes), 'released memory is reused');
    next.release();
  });

  it('never reuses memory that was detached for keeping, and stops counting it', () => {
    const pool = new BufferPool(8 * MIB);
    const lease = pool.acquire(4 * MIB);
    const kept = lease.detach();
    kept.fill(0x33);
    lease.release();
    assert.equal(pool.ownedBytes, 0, 'the detached memory no longer counts against the bound');
    const leases = [pool.acquire(4 * MIB), pool.acquire(4 * MIB)];
    for (const l of leases) {
      assert.ok(!sameMemory(l.bytes, kept));
      l.bytes.fill(0x44);
    }
    assert.ok(kept.every((b) => b === 0x33));
    assert.equal(pool.overflows, 0);
  });

  it('throws when a lease is released more often than it is held', () => {
    const pool = new BufferPool(MIB);
    const lease = pool.acquire(100);
    lease.release();
    assert.throws(() => lease.release(), /released more often than held/);
    assert.throws(() => lease.retain(), /after its last release/);
    assert.throws(() => lease.detach(), /after its last release/);
  });

  it('drops its free buffers once nobody has asked for one for a while', async () => {
    const pool = new BufferPool(8 * MIB, 50);
    const held = pool.acquire(MIB);
    pool.acquire(2 * MIB).release();
    assert.equal(pool.ownedBytes, 3 * MIB);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(pool.ownedBytes, MIB, 'the free buffer went, the leased one stays');
    held.release();
  });
});
