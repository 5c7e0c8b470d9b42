/**
 * Hostile layers against the indexing limits (src/indexer/index-limits.ts, docs/limits.md): each stops
 * with an IndexLimitError (FAILED_PRECONDITION, the caller falls back to a normal unpack) naming the
 * setting, and a realistic 200 000-entry layer passes with the defaults.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { decodeArchive, encodeArchive } from '../../../src/archive';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { IndexLimitError, indexLayer, type IndexLayerOptions } from '../../../src/indexer';
import { RegistryClient } from '../../../src/registry';
import { LayerIndexer } from '../../../src/remote/layer-indexer';
import { FAST_RETRY, TestRepository, TestServer, serveRegistry } from '../../integration/registry/test-servers';
import { recordingLogger } from '../../helpers/recording-logger';
import { sha256 } from './fixtures';
import { endOfArchive, paxEntry, tarEntry } from './tar-writer';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

function options(blob: Buffer, extra: Partial<IndexLayerOptions> = {}): IndexLayerOptions {
  const compression = extra.compression ?? 'gzip';
  return { layerDigest: sha256(blob), mediaType: compression === 'gzip' ? GZIP : TAR, compression, expectedSize: blob.length, ...extra };
}

async function rejectsWithLimit(blob: Buffer, extra: Partial<IndexLayerOptions>, message: RegExp): Promise<void> {
  await assert.rejects(indexLayer([blob], options(blob, extra)), (err: unknown) => {
    assert.ok(err instanceof IndexLimitError, `want IndexLimitError, got ${String(err)}`);
    assert.equal(err.code, 'FAILED_PRECONDITION');
    assert.match(err.message, message);
    return true;
  });
}

/** Writes `bits` (LSB first) of a deflate stream. */
class BitWriter {
  private readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;

  bits(value: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.acc |= ((value >> i) & 1) << this.n;
      if (++this.n === 8) this.flush();
    }
  }

  /** A Huffman code: its bits go most significant first. */
  code(value: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) this.bits((value >> i) & 1, 1);
  }

  finish(): Buffer {
    if (this.n > 0) this.flush();
    return Buffer.from(this.bytes);
  }

  private flush(): void {
    this.bytes.push(this.acc);
    this.acc = 0;
    this.n = 0;
  }
}

/**
 * A gzip member holding ONE fixed-Huffman deflate block: a zero byte, then `repeats` copies of "258 bytes
 * at distance 1" (13 bits each). No deflate block boundary after its start, so no checkpoint can be placed
 * in its output.
 */
function singleBlockGzip(repeats: number): Buffer {
  const w = new BitWriter();
  w.bits(1, 1); // BFINAL
  w.bits(1, 2); // BTYPE 01: fixed Huffman
  w.code(0x30, 8); // literal 0
  for (let i = 0; i < repeats; i++) {
    w.code(0b11000101, 8); // length code 285: 258 bytes
    w.code(0, 5); // distance code 0: distance 1
  }
  w.code(0, 7); // end of block
  const size = 1 + 258 * repeats;
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(zlib.crc32(Buffer.alloc(size)), 0);
  trailer.writeUInt32LE(size >>> 0, 4);
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), w.finish(), trailer]);
}

describe('indexing limits', () => {
  it('refuses a PAX name bomb: a path longer than limits.max_path_bytes', async () => {
    // 21 entries with 1 MB PAX paths: a 22 KB gzip layer that would keep 21 MB of paths.
    const name = 'a/'.repeat(500_000) + 'f';
    const parts = [];
    for (let i = 0; i < 21; i++) parts.push(paxEntry([['path', `${name}${i}`]]), tarEntry({ name: `f${i}` }));
    const blob = zlib.gzipSync(Buffer.concat([...parts, endOfArchive()]));
    assert.ok(blob.length < 64 << 10, `bomb is ${blob.length} bytes`);
    await rejectsWithLimit(blob, {}, /^tar entry at offset 1000960: path is 1000002 bytes long \(limit limits\.max_path_bytes = 4096\)$/);
  });

  it('refuses more than limits.max_pax_size of PAX and GNU long-name records for one entry', async () => {
    const comment = paxEntry([['comment', 'c'.repeat(2 << 20)]]);
    await rejectsWithLimit(
      zlib.gzipSync(Buffer.concat([comment, tarEntry({ name: 'f' }), endOfArchive()])),
      {},
      /^tar entry at offset 0: x header of 2097169 bytes: more than 1048576 bytes of records for one entry \(limit limits\.max_pax_size = 1048576\)$/,
    );
    // Records of one entry add up: a GNU long name, then a PAX header.
    const longName = tarEntry({ name: '././@LongLink', typeflag: 'L' }, Buffer.from(`${'d/'.repeat(300_000)}f\0`));
    const pax = paxEntry([['comment', 'c'.repeat(600_000)]]);
    await rejectsWithLimit(
      Buffer.concat([longName, pax, tarEntry({ name: 'f' }), endOfArchive()]),
      { compression: 'none' },
      /^tar entry at offset 600576: x header of 600016 bytes after 600002 bytes of records for the same entry: more than 1048576 bytes of records for one entry \(limit limits\.max_pax_size = 1048576\)$/,
    );
  });

  it('refuses a component longer than limits.max_name_bytes, and more entries or metadata than allowed', async () => {
    const long = Buffer.concat([paxEntry([['path', `usr/${'n'.repeat(256)}`]]), tarEntry({ name: 'x' }), endOfArchive()]);
    await rejectsWithLimit(long, { compression: 'none' }, /^tar entry at offset 1024: path has a 256-byte component \(limit limits\.max_name_bytes = 255\)$/);
    const many = Buffer.concat([...Array.from({ length: 11 }, (_, i) => tarEntry({ name: `f${i}` })), endOfArchive()]);
    await rejectsWithLimit(many, { compression: 'none', limits: { maxEntries: 10 } }, /^tar entry at offset 5120: more than 10 entries \(limit limits\.max_entries = 10\)$/);
    await rejectsWithLimit(many, { compression: 'none', limits: { maxMetadataBytes: 20 } }, /^tar entry at offset 5120: paths, link targets and xattrs take more than 20 bytes \(limit limits\.max_metadata_size = 20\)$/);
  });

  it('refuses a single-block gzip bomb: no deflate block boundary within limits.max_span_size', async () => {
    const blob = singleBlockGzip(80_000); // 156 KB inflating to 20.6 MB in one block
    await rejectsWithLimit(
      blob,
      {},
      /^layer: no place to resume decompression within 16777216 bytes after uncompressed offset 0 \(a span that long cannot be served\) \(limit limits\.max_span_size = 16777216\)$/,
    );
    // Under the limit, the same kind of blob indexes as one long span.
    const small = singleBlockGzip(40_000);
    const archive = await indexLayer([small], options(small));
    assert.equal(archive.checkpoints.length, 1);
    assert.equal(archive.uncompressedSize, 1 + 258 * 40_000);
  });

  it('refuses more spans than limits.max_checkpoints and more bytes than limits.max_layer_size', async () => {
    const tar = Buffer.concat([tarEntry({ name: 'big' }, Buffer.alloc(64 << 10, 7)), endOfArchive()]);
    await rejectsWithLimit(tar, { compression: 'none', spanSize: 4096, limits: { maxCheckpoints: 8 } }, /^layer: more than 8 spans \(limit limits\.max_checkpoints = 8\)$/);
    await rejectsWithLimit(tar, { compression: 'none', limits: { maxLayerBytes: 32 << 10 } }, /^layer: more than 32768 bytes uncompressed \(limit limits\.max_layer_size = 32768\)$/);
    await assert.rejects(indexLayer([tar], options(tar, { compression: 'none', spanSize: 1 << 20, limits: { maxSpanBytes: 4096 } })), /the span size limit 4096 is smaller than the span size 1048576/);
    // Without a span limit of its own, a large span size raises it (clip index --span-size 32MiB).
    const archive = await indexLayer([tar], options(tar, { compression: 'none', spanSize: 32 << 20 }));
    assert.equal(archive.checkpoints.length, 1);
  });

  it('indexes a 200 000-entry node_modules layer with the default limits, and its archive decodes within them', async () => {
    const parts: Buffer[] = [tarEntry({ name: 'node_modules/', typeflag: '5' })];
    for (let p = 0; p < 5_000; p++) {
      parts.push(tarEntry({ name: `node_modules/package-${p}/`, typeflag: '5' }));
      for (let f = 0; f < 39; f++) parts.push(tarEntry({ name: `node_modules/package-${p}/lib/file-${f}.js` }));
    }
    const tar = Buffer.concat([...parts, endOfArchive()]);
    const archive = await indexLayer([tar], options(tar, { compression: 'none' }));
    assert.equal(archive.entries.length, 200_001);
    const decoded = decodeArchive(encodeArchive(archive));
    assert.equal(decoded.entries.length, 200_001);
    assert.equal(decoded.entries[200_000]!.path, 'node_modules/package-4999/lib/file-38.js');
  });
});

describe('a zstd RLE bomb through the LayerIndexer', () => {
  let server: TestServer;
  let client: RegistryClient;
  let cacheDir: string;
  const repo = new TestRepository();

  before(async () => {
    server = await TestServer.start((req, res) => serveRegistry(repo, req, res));
    client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
    cacheDir = mkdtempSync(path.join(tmpdir(), 'clip-limits-'));
  });
  after(async () => {
    await client.close();
    await server.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  function filesUnder(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => !e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
  }

  it('stops at limits.max_zstd_ratio and leaves nothing in the cache', async () => {
    // 256 MiB of zeros in a few KB of zstd RLE blocks (a valid, if empty, tar stream).
    const blob = execFileSync('sh', ['-c', 'head -c 268435456 /dev/zero | zstd -q -c'], { maxBuffer: 1 << 20 });
    assert.ok(blob.length < 64 << 10, `bomb is ${blob.length} bytes`);
    const layer = repo.addBlob(blob);
    const image = repo.addImage([blob], 'bomb');
    const indexer = new LayerIndexer({ registry: client, cache: new ContentCache(cacheDir), logger: recordingLogger(), spanSize: 4 << 20, cacheWhileIndexing: true });
    await assert.rejects(
      indexer.index(
        { imageRef: `${server.host}/limits/bomb:bomb`, layerDigest: layer.digest, manifestDigest: image.manifest.digest },
        { descriptor: { mediaType: ZSTD, digest: layer.digest, size: layer.size } },
      ),
      (err: unknown) => {
        assert.ok(err instanceof IndexLimitError, `want IndexLimitError, got ${String(err)}`);
        assert.match(err.message, new RegExp(`^zstd layer: ${blob.length} compressed bytes expanded to \\d+ bytes, more than 1000 times as many \\(limit limits\\.max_zstd_ratio = 1000\\)$`));
        return true;
      },
    );
    assert.deepEqual(filesUnder(cacheDir), []);
  });
});
