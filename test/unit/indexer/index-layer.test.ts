import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { decodeArchive, encodeArchive, type ClipArchive } from '../../../src/archive';
import { rememberEncodedEntries, takeEncodedEntries } from '../../../src/archive/entry-encoder';
import { InvalidArgumentError } from '../../../src/errors';
import {
  decodeSpan,
  DigestMismatchError,
  indexLayer,
  spanRange,
  type IndexLayerOptions,
  type SpanStore,
  type SpanWriter,
} from '../../../src/indexer';
import { pythonTars, randomChunks, sha256 } from './fixtures';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

// A small root filesystem with content under proc/, sys/ and dev/, and enough data for many spans.
const { layer, big, escaping } = pythonTars({
  layer: `
import random
rng = random.Random(1)
tf = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)
for d in ['./', 'proc/', 'proc/1/', 'sys/', 'sys/kernel/', 'dev/', 'etc/', 'usr/', 'usr/lib/', 'devices/', 'system/']:
    add(tf, d, tarfile.DIRTYPE, mode=0o555 if d == 'proc/' else 0o755)
add(tf, 'proc/1/status', data=b'Name: init\\n')
add(tf, 'sys/kernel/hostname', data=b'host\\n')
add(tf, 'dev/null', tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
add(tf, 'dev/.wh..wh..opq')
add(tf, '.wh.devfoo')
add(tf, 'devices/keep', data=b'kept')
add(tf, 'system/keep', data=b'kept')
add(tf, 'etc/os-release', data=b'ID=clip\\n')
for i in range(40):
    size = rng.randrange(0, 60000)
    data = bytes(rng.getrandbits(8) for _ in range(size)) if i % 3 == 0 else (b'line %d of a text file\\n' % i) * (size // 24)
    add(tf, 'usr/lib/file%02d' % i, data=data)
add(tf, 'dev/shm-file', data=b'shared')
add(tf, 'usr/lib/first-link', tarfile.LNKTYPE, linkname='dev/shm-file')
add(tf, 'usr/lib/second-link', tarfile.LNKTYPE, linkname='dev/shm-file')
tf.close()
`,
  big: `
import random
tf = tarfile.open(fileobj=buf, mode='w')
add(tf, 'text', data=b'a line of some text file\\n' * 300000)
add(tf, 'random', data=random.Random(2).randbytes(3 << 20))
tf.close()
`,
  escaping: `tf = tarfile.open(fileobj=buf, mode='w')\nadd(tf, '../../etc/cron.d/x', data=b'x')\ntf.close()`,
});
const gzLayer = zlib.gzipSync(layer);

const dir = mkdtempSync(path.join(tmpdir(), 'clip-index-layer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function options(blob: Buffer, extra: Partial<IndexLayerOptions> = {}): IndexLayerOptions {
  return { layerDigest: sha256(blob), mediaType: GZIP, compression: 'gzip', spanSize: 65536, ...extra };
}

async function* chunksOf(blob: Buffer, maxChunk: number, seed: number): AsyncIterable<Buffer> {
  for (const chunk of randomChunks(blob, maxChunk, seed)) yield chunk;
}

/** Every span decodes from exactly its blob range to the right bytes. */
async function checkSpans(archive: ClipArchive, blob: Buffer, tar: Buffer): Promise<void> {
  assert.equal(archive.spanDigests.length, archive.checkpoints.length);
  for (let i = 0; i < archive.checkpoints.length; i++) {
    const range = spanRange(archive, i);
    const span = await decodeSpan(archive, i, blob.subarray(range.compressedStart, range.compressedEnd));
    assert.ok(span.equals(tar.subarray(range.uncompressedStart, range.uncompressedEnd)), `span ${i}`);
  }
}

/** A SpanStore in memory that records what was opened, committed and aborted. */
class MemorySpanStore implements SpanStore {
  readonly opened: number[] = [];
  readonly committed: { index: number; data: Buffer }[] = [];
  readonly aborted: number[] = [];

  constructor(private readonly behaviour: { slow?: boolean; failWrites?: Error } = {}) {}

  async open(index: number): Promise<SpanWriter> {
    this.opened.push(index);
    const parts: Buffer[] = [];
    const { slow, failWrites } = this.behaviour;
    return {
      write: async (chunk) => {
        if (slow) await new Promise((resolve) => setImmediate(resolve));
        if (failWrites) throw failWrites;
        parts.push(Buffer.from(chunk)); // the decoder reuses its buffers once the write is over
      },
      commit: async () => {
        this.committed.push({ index, data: Buffer.concat(parts) });
      },
      abort: async () => {
        this.aborted.push(index);
      },
    };
  }
}

describe('indexLayer', () => {
  it('indexes a gzip layer from a file stream: digests, sizes, entries, spans', async () => {
    const file = path.join(dir, 'layer.tar.gz');
    writeFileSync(file, gzLayer);
    const archive = await indexLayer(createReadStream(file, { highWaterMark: 16384 }), options(gzLayer));
    assert.equal(archive.layerDigest, sha256(gzLayer));
    assert.equal(archive.diffId, sha256(layer));
    assert.equal(archive.mediaType, GZIP);
    assert.equal(archive.compression, 'gzip');
    assert.equal(archive.compressedSize, gzLayer.length);
    assert.equal(archive.uncompressedSize, layer.length);
    assert.ok(archive.checkpoints.length > 5, `${archive.checkpoints.length} spans`);
    for (let i = 0; i < archive.checkpoints.length; i++) {
      const range = spanRange(archive, i);
      assert.equal(archive.spanDigests[i], sha256(layer.subarray(range.uncompressedStart, range.uncompressedEnd)));
    }
    await checkSpans(archive, gzLayer, layer);
    assert.deepEqual(decodeArchive(encodeArchive(archive)), archive, 'the archive format takes it as it is');
    for (const entry of archive.entries.filter((e) => e.type === 'file')) {
      assert.equal(layer.subarray(entry.dataOffset, entry.dataOffset + entry.size).length, entry.size);
    }
  });

  it('encodes the entries while indexing, to the bytes that encoding them afterwards gives', async () => {
    const archive = await indexLayer(randomChunks(gzLayer, 50000, 7), options(gzLayer));
    const ahead = takeEncodedEntries(archive.entries);
    assert.ok(ahead !== undefined && ahead.length > 0, 'the indexer encoded the entries');
    rememberEncodedEntries(archive.entries, ahead);
    assert.deepEqual(encodeArchive(archive), encodeArchive({ ...archive, entries: [...archive.entries] }));
  });

  it('keeps proc, sys and dev themselves but leaves out everything beneath them', async () => {
    const archive = await indexLayer([gzLayer], options(gzLayer));
    const paths = archive.entries.map((e) => e.path);
    assert.deepEqual(paths.slice(0, 13), [
      '.', 'proc', 'sys', 'dev', 'etc', 'usr', 'usr/lib', 'devices', 'system',
      '.wh.devfoo', 'devices/keep', 'system/keep', 'etc/os-release',
    ]);
    assert.equal(archive.entries.find((e) => e.path === 'proc')!.mode, 0o555);
    assert.ok(!paths.some((p) => /^(proc|sys|dev)\//.test(p)));
    assert.equal(paths.length, 13 + 40 + 2);
    // Hardlinks to a left-out file: the first takes its place, the next link to the first.
    const [first, second] = archive.entries.slice(-2);
    assert.equal(first.path, 'usr/lib/first-link');
    assert.equal(first.type, 'file');
    assert.equal(layer.subarray(first.dataOffset, first.dataOffset + first.size).toString(), 'shared');
    assert.deepEqual([second.path, second.type, second.linkTarget], ['usr/lib/second-link', 'hardlink', 'usr/lib/first-link']);
  });

  it('gives the same archive whatever the chunking of the source', async () => {
    const reference = await indexLayer([gzLayer], options(gzLayer));
    for (const [maxChunk, seed] of [[1000, 1], [70_000, 2]]) {
      assert.deepEqual(await indexLayer(chunksOf(gzLayer, maxChunk, seed), options(gzLayer)), reference);
    }
  });

  it('indexes an uncompressed layer with a checkpoint every spanSize bytes', async () => {
    const archive = await indexLayer(chunksOf(layer, 50_000, 3), options(layer, { mediaType: TAR, compression: 'none', spanSize: 100_000 }));
    assert.equal(archive.diffId, archive.layerDigest);
    assert.equal(archive.compressedSize, layer.length);
    assert.equal(archive.checkpoints.length, Math.ceil(layer.length / 100_000));
    archive.checkpoints.forEach((checkpoint, i) => {
      assert.deepEqual(checkpoint, { compressedOffset: i * 100_000, bits: 0, uncompressedOffset: i * 100_000, window: Buffer.alloc(0) });
    });
    await checkSpans(archive, layer, layer);
    assert.deepEqual(decodeArchive(encodeArchive(archive)), archive);
    const gz = await indexLayer([gzLayer], options(gzLayer));
    assert.deepEqual(archive.entries, gz.entries);
  });

  it('leaves no empty span when the layer size is a multiple of spanSize', async () => {
    const archive = await indexLayer([layer], options(layer, { compression: 'none', mediaType: TAR, spanSize: layer.length / 4 }));
    assert.equal(archive.checkpoints.length, 4);
  });

  it('streams each span into the store, in order, committed with bytes matching spanDigests', async () => {
    const store = new MemorySpanStore({ slow: true });
    const archive = await indexLayer([gzLayer], options(gzLayer, { spanStore: store }));
    assert.ok(archive.checkpoints.length > 1);
    assert.deepEqual(store.opened, archive.checkpoints.map((_, i) => i));
    assert.deepEqual(store.committed.map((s) => s.index), archive.checkpoints.map((_, i) => i));
    assert.deepEqual(store.committed.map((s) => sha256(s.data)), archive.spanDigests);
    assert.deepEqual(store.aborted, []);
    assert.ok(Buffer.concat(store.committed.map((s) => s.data)).equals(layer));
  });

  it('aborts the span being written when indexing fails', async () => {
    const store = new MemorySpanStore();
    const truncated = gzLayer.subarray(0, gzLayer.length - 100);
    await assert.rejects(indexLayer([truncated], options(truncated, { spanStore: store })), InvalidArgumentError);
    assert.equal(store.aborted.length, 1);
    assert.equal(store.opened.length, store.committed.length + 1);
  });

  it('rejects a blob that does not match its digest', async () => {
    const other = sha256(Buffer.from('something else'));
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { layerDigest: other })), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, other);
      assert.equal(err.actual, sha256(gzLayer));
      return true;
    });
  });

  it('tells a corrupt download (digest mismatch) from a layer that is malformed as published', async () => {
    const corrupt = Buffer.from(gzLayer);
    corrupt[corrupt.length >> 1] ^= 0x10;
    await assert.rejects(indexLayer([corrupt], options(gzLayer)), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.ok(err.cause instanceof InvalidArgumentError, 'the decoding error is kept as the cause');
      return true;
    });
    await assert.rejects(indexLayer([corrupt], options(corrupt)), (err: unknown) => err instanceof InvalidArgumentError && !(err instanceof DigestMismatchError));
    const escapingGz = zlib.gzipSync(escaping);
    await assert.rejects(indexLayer([escapingGz], options(escapingGz)), /escapes the layer root/);
  });

  it('rejects a blob of another size than its descriptor says', async () => {
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { expectedSize: gzLayer.length - 1 })), /larger than its descriptor/);
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { expectedSize: gzLayer.length + 1 })), /descriptor says/);
  });

  it('indexes a zstd layer: the same entries, spans cut every spanSize with no blob offsets', async () => {
    const zstd = execFileSync('zstd', ['-q', '-c'], { input: layer });
    const store = new MemorySpanStore();
    const archive = await indexLayer(chunksOf(zstd, 5000, 3), options(zstd, { compression: 'zstd', mediaType: ZSTD, spanStore: store }));
    const gz = await indexLayer([gzLayer], options(gzLayer));
    assert.equal(archive.compression, 'zstd');
    assert.equal(archive.diffId, sha256(layer));
    assert.deepEqual(archive.entries, gz.entries);
    assert.deepEqual(archive.checkpoints.map((c) => c.uncompressedOffset), Array.from({ length: Math.ceil(layer.length / 65536) }, (_, i) => i * 65536));
    assert.ok(archive.checkpoints.every((c) => c.compressedOffset === 0 && c.bits === 0 && c.window.length === 0));
    assert.deepEqual(store.committed.map((s) => sha256(s.data)), archive.spanDigests);
    assert.ok(Buffer.concat(store.committed.map((s) => s.data)).equals(layer));
    assert.deepEqual(decodeArchive(encodeArchive(archive)), archive, 'the archive format takes it as it is');
    assert.throws(() => spanRange(archive, 0), /no random access/);
  });

  it('indexes a zstd blob of several frames, a skippable one among them', async () => {
    const half = layer.length >> 1;
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([4, 0, 0, 0]), Buffer.from('clip')]);
    const frames = Buffer.concat([
      execFileSync('zstd', ['-q', '-c'], { input: layer.subarray(0, half) }),
      skippable,
      execFileSync('zstd', ['-q', '-c', '-19'], { input: layer.subarray(half) }),
    ]);
    const archive = await indexLayer([frames], options(frames, { compression: 'zstd', mediaType: ZSTD }));
    assert.equal(archive.diffId, sha256(layer));
    assert.equal(archive.uncompressedSize, layer.length);
  });

  it('rejects a truncated or corrupt zstd blob with a clear error', async () => {
    const zstd = execFileSync('zstd', ['-q', '-c'], { input: layer });
    const truncated = zstd.subarray(0, zstd.length - 10);
    await assert.rejects(indexLayer([truncated], options(truncated, { compression: 'zstd' })), (err: unknown) => err instanceof InvalidArgumentError && /zstd/.test((err as Error).message));
    const corrupt = Buffer.from(zstd);
    corrupt[corrupt.length >> 1] ^= 0x55;
    await assert.rejects(indexLayer([corrupt], options(corrupt, { compression: 'zstd' })), (err: unknown) => err instanceof InvalidArgumentError);
    await assert.rejects(indexLayer([Buffer.alloc(0)], options(Buffer.alloc(0), { compression: 'zstd' })), /unexpected end|not zstd|uncompressed/);
  });

  it('answers a wrongly declared compression with InvalidArgumentError', async () => {
    const zstd = execFileSync('zstd', ['-q', '-c'], { input: layer });
    await assert.rejects(indexLayer([zstd], options(zstd)), /indexed as gzip but its data is zstd/);
    await assert.rejects(indexLayer([zstd], options(zstd, { compression: 'none' })), /indexed as uncompressed but its data is zstd/);
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { compression: 'none' })), /indexed as uncompressed but its data is gzip/);
    await assert.rejects(indexLayer([layer], options(layer)), /indexed as gzip but its data is not gzip/);
  });

  it('stops reading at once when the span store fails, and closes a stream source', async () => {
    const bigGz = zlib.gzipSync(big); // larger than the decoder's input batch
    const file = path.join(dir, 'layer-for-abort.tar.gz');
    writeFileSync(file, bigGz);
    const stream = createReadStream(file, { highWaterMark: 4096 });
    const failure = new Error('cache is full');
    const store = new MemorySpanStore({ failWrites: failure });
    await assert.rejects(indexLayer(stream, options(bigGz, { spanStore: store })), (err) => err === failure);
    assert.deepEqual(store.aborted, [0]);
    assert.ok(stream.destroyed);
    assert.ok(stream.bytesRead < bigGz.length, 'the rest of the blob was not read');
  });

  it('rejects bad options', async () => {
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { layerDigest: 'sha512:abc' })), /only sha256/);
    await assert.rejects(indexLayer([gzLayer], options(gzLayer, { spanSize: 100 })), /span size/);
  });

  it('indexes a larger layer with the default 4 MiB span size', async () => {
    const gz = zlib.gzipSync(big);
    const archive = await indexLayer([gz], { layerDigest: sha256(gz), mediaType: GZIP, compression: 'gzip' });
    assert.equal(archive.checkpoints.length, 3);
    assert.ok(archive.checkpoints[1].uncompressedOffset >= 4 << 20);
    await checkSpans(archive, gz, big);
  });
});
