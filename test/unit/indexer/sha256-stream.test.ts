import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { InternalError } from '../../../src/errors';
import { Sha256Stream } from '../../../src/indexer/sha256-stream';

const expected = (...parts: Buffer[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return `sha256:${h.digest('hex')}`;
};

describe('Sha256Stream (SHA-256 on the thread pool)', () => {
  it('hashes nothing to the digest of the empty string', async () => {
    assert.equal(await new Sha256Stream().digest(), expected());
  });

  it('hashes chunks queued without waiting, in order, in batches', async () => {
    const chunks = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % 70000)));
    const stream = new Sha256Stream();
    const settled = chunks.map((c) => stream.update(c));
    assert.ok(stream.pendingBytes > 0, 'queued bytes are counted until hashed');
    await Promise.all(settled);
    assert.equal(stream.pendingBytes, 0);
    assert.equal(await stream.digest(), expected(...chunks));
  });

  it('is done with a chunk once its update settles, so the buffer may be reused', async () => {
    const buffer = Buffer.alloc(1 << 16);
    const parts: Buffer[] = [];
    const stream = new Sha256Stream();
    for (let i = 0; i < 20; i++) {
      buffer.fill(i);
      parts.push(Buffer.from(buffer));
      await stream.update(buffer);
    }
    assert.equal(await stream.digest(), expected(...parts));
  });

  it('with batchBytes, gathers small chunks until the batch fills or digest() is called', async () => {
    const chunks = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000, i));
    const stream = new Sha256Stream(10_000);
    let settled = 0;
    const first = chunks.slice(0, 9).map((c) => stream.update(c).then(() => settled++));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, 0, 'a batch of 9000 bytes waits for more');
    const rest = chunks.slice(9).map((c) => stream.update(c).then(() => settled++));
    await Promise.all(first);
    await stream.drain(10_000);
    assert.ok(stream.pendingBytes <= 10_000, `${stream.pendingBytes} bytes still queued after drain`);
    assert.equal(await stream.digest(), expected(...chunks));
    await Promise.all(rest);
    assert.equal(settled, 50);
  });

  it('ignores empty chunks and refuses use after digest', async () => {
    const stream = new Sha256Stream();
    await stream.update(Buffer.alloc(0));
    await stream.update(Buffer.from('abc'));
    assert.equal(await stream.digest(), expected(Buffer.from('abc')));
    assert.throws(() => stream.update(Buffer.from('x')), InternalError);
    await assert.rejects(stream.digest(), InternalError);
  });

  it('rejects what is not a Buffer, for that update and for the digest', async () => {
    const stream = new Sha256Stream();
    await assert.rejects(stream.update('text' as unknown as Buffer), InternalError);
    await assert.rejects(stream.digest(), /must be a Buffer/);
  });
});
