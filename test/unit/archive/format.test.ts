import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { ArchiveFormatError, compressWindow, decodeArchive, encodeArchive, type ClipArchive } from '../../../src/archive';
import { InvalidArgumentError } from '../../../src/errors';
import { Archive as ArchiveBody, type Entry as EntryBody } from '../../../src/generated/clip/archive/v1/archive';
import { EntryEncoder, rememberEncodedEntries } from '../../../src/archive/entry-encoder';
import { HEADER_SIZE } from '../../../src/archive/header';
import { largeArchive, realisticArchive, sha256 } from './fixtures';

const HEADER = 56;

/** Frames `body` as docs/format.md describes, independently of src/archive/header.ts. */
function frame(body: Uint8Array, v: { major?: number; minor?: number; flags?: number } = {}): Buffer {
  const head = Buffer.alloc(24);
  Buffer.from('89434c49500d0a1a', 'hex').copy(head, 0);
  head.writeUInt16LE(v.major ?? 1, 8);
  head.writeUInt16LE(v.minor ?? 0, 10);
  head.writeUInt32LE(v.flags ?? 0, 12);
  head.writeBigUInt64LE(BigInt(body.length), 16);
  const sum = createHash('sha256').update(head).update(body).digest();
  return Buffer.concat([head, sum, body]);
}

function bodyOf(a: ClipArchive): ArchiveBody {
  return ArchiveBody.decode(encodeArchive(a).subarray(HEADER));
}

/** The body of `a` with every path stored whole (no front coding), so tests can set any entry's path. */
function plainBody(a: ClipArchive): ArchiveBody {
  const body = bodyOf(a);
  body.entries.forEach((e, i) => {
    e.pathPrefix = 0;
    e.pathSuffix = Buffer.from(a.entries[i]!.path);
  });
  return body;
}

function rejects(file: Buffer, message: RegExp): void {
  assert.throws(() => decodeArchive(file), (err: unknown) => {
    assert.ok(err instanceof ArchiveFormatError, `want ArchiveFormatError, got ${String(err)}`);
    assert.ok(err instanceof InvalidArgumentError);
    assert.match(err.message, /^clip archive: /);
    assert.match(err.message, message);
    return true;
  });
}

function rejectsBody(a: ClipArchive, mutate: (body: ArchiveBody) => void, message: RegExp): void {
  const body = plainBody(a);
  mutate(body);
  rejects(frame(ArchiveBody.encode(body).finish()), message);
}

/** A small valid gzip layer for the rule tests. */
function small(): ClipArchive {
  const e = (path: string, type: ClipArchive['entries'][number]['type'], extra: Partial<ClipArchive['entries'][number]> = {}) => ({
    path, type, mode: 0o755, uid: 0, gid: 0, size: 0, mtimeMs: 1_700_000_000_000, linkTarget: '', devMajor: 0, devMinor: 0,
    xattrs: {}, dataOffset: 0, ...extra,
  });
  return {
    layerDigest: sha256('l'),
    diffId: sha256('d'),
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    compressedSize: 3_000_000,
    uncompressedSize: 10_000_000,
    entries: [
      e('.', 'dir'),
      e('bin', 'dir'),
      e('bin/sh', 'file', { size: 1000, dataOffset: 2048 }),
      e('bin/ash', 'hardlink', { linkTarget: 'bin/sh', dataOffset: 3584 }),
      e('bin/ls', 'symlink', { linkTarget: 'sh', dataOffset: 4096 }),
      e('etc', 'dir', { dataOffset: 4608 }),
      e('etc/null', 'char', { devMajor: 1, devMinor: 3, dataOffset: 5120 }),
    ],
    checkpoints: [
      { compressedOffset: 10, bits: 0, uncompressedOffset: 0, window: Buffer.alloc(0) },
      { compressedOffset: 1_000_000, bits: 3, uncompressedOffset: 4_000_000, window: Buffer.alloc(32768, 1) },
      { compressedOffset: 2_000_000, bits: 7, uncompressedOffset: 8_000_000, window: Buffer.alloc(32768, 2) },
    ],
    spanDigests: [sha256('0'), sha256('1'), sha256('2')],
  };
}

describe('clip archive format: round trip', () => {
  it('decodes what it encodes, for every entry type, binary xattrs, short and full windows, bits 0-7', () => {
    const a = realisticArchive();
    const types = new Set(a.entries.map((e) => e.type));
    assert.deepEqual([...types].sort(), ['block', 'char', 'dir', 'fifo', 'file', 'hardlink', 'symlink']);
    assert.ok(a.entries.length >= 400, `${a.entries.length} entries`);
    assert.deepEqual(new Set(a.checkpoints.map((c) => c.bits)), new Set([0, 1, 2, 3, 4, 5, 6, 7]));
    assert.ok(a.checkpoints.some((c) => c.window.length === 32768));
    assert.ok(a.checkpoints.some((c) => c.window.length > 0 && c.window.length < 32768));

    const file = encodeArchive(a);
    assert.deepEqual(decodeArchive(file), a);
  });

  it('encodes the same bytes whether windows were compressed ahead (compressWindow) or not', async () => {
    const plain = encodeArchive(realisticArchive());
    const a = realisticArchive();
    await Promise.all(a.checkpoints.map((c) => compressWindow(c.window)));
    assert.deepEqual(encodeArchive(a), plain);
    const decoded = decodeArchive(plain);
    assert.deepEqual(encodeArchive(decoded), plain, 'a decoded archive re-encodes to the same bytes');
  });

  it('encodes the same bytes with its entries encoded ahead (EntryEncoder), and encodes a list that grew since again', () => {
    const plain = encodeArchive(realisticArchive());
    const a = realisticArchive();
    const encoder = new EntryEncoder();
    a.entries.forEach((e) => encoder.add(e));
    assert.equal(encoder.count, a.entries.length);
    rememberEncodedEntries(a.entries, encoder.finish());
    assert.deepEqual(encodeArchive(a), plain);

    const grown = realisticArchive();
    const last = grown.entries.pop()!;
    grown.entries.forEach((e) => encoder.add(e));
    rememberEncodedEntries(grown.entries, encoder.finish());
    grown.entries.push(last); // the bytes remembered no longer cover every entry
    assert.deepEqual(encodeArchive(grown), plain);
  });

  it('writes checkpoints with stored windows of every size as the generated encoder writes the whole message', () => {
    const a = realisticArchive();
    // Deflated, a window of one repeated byte takes a few bytes (a one-byte length), a text window thousands.
    a.checkpoints.forEach((c, i) => {
      if (i % 2 === 1) c.window = Buffer.alloc(c.window.length, i);
    });
    assert.ok(a.checkpoints.length > 3 && a.checkpoints[0]!.window.length === 0);
    const file = encodeArchive(a);
    const body = file.subarray(HEADER_SIZE);
    assert.deepEqual(Buffer.from(ArchiveBody.encode(ArchiveBody.decode(body)).finish()), body);
    assert.deepEqual(decodeArchive(file), a);
  });

  it('round-trips a start-up profile, in its order, and leaves it out when there is none', () => {
    const withProfile = { ...small(), startupSpans: [2, 0] };
    assert.deepEqual(decodeArchive(encodeArchive(withProfile)).startupSpans, [2, 0]);
    assert.equal('startupSpans' in decodeArchive(encodeArchive(small())), false);
  });

  it('round-trips start-up read ranges, the last one ending at the end of the stream', () => {
    const a = small();
    const end = a.uncompressedSize;
    const lastBlock = Math.floor((end - 1) / 4096) * 4096;
    const startupRanges: Array<[number, number]> = [[0, 8192], [4096 * 5, 4096 * 6], [lastBlock, end]];
    const decoded = decodeArchive(encodeArchive({ ...a, startupSpans: [0], startupRanges }));
    assert.deepEqual(decoded.startupRanges, startupRanges);
    assert.equal('startupRanges' in decodeArchive(encodeArchive(a)), false);
  });

  it('starts with the documented header', () => {
    const file = encodeArchive(small());
    assert.equal(file.subarray(0, 8).toString('latin1'), '\x89CLIP\r\n\x1a');
    assert.equal(file.readUInt16LE(8), 1);
    assert.equal(file.readUInt16LE(10), 0);
    assert.equal(file.readUInt32LE(12), 0);
    assert.equal(file.readBigUInt64LE(16), BigInt(file.length - HEADER));
    assert.deepEqual(frame(file.subarray(HEADER)), file);
  });

  it('is deterministic, whatever the order of xattrs in memory', () => {
    const a = realisticArchive();
    const b = realisticArchive();
    for (const e of b.entries) e.xattrs = Object.fromEntries(Object.entries(e.xattrs).reverse());
    assert.deepEqual(encodeArchive(a), encodeArchive(b));
  });

  it('round-trips an uncompressed layer and an empty one', () => {
    const none: ClipArchive = {
      ...small(),
      compression: 'none',
      compressedSize: 10_000_000,
      checkpoints: [0, 4_000_000].map((o) => ({ compressedOffset: o, bits: 0, uncompressedOffset: o, window: Buffer.alloc(0) })),
      spanDigests: [sha256('0'), sha256('1')],
    };
    assert.deepEqual(decodeArchive(encodeArchive(none)), none);
    const empty: ClipArchive = {
      ...small(),
      compressedSize: 20,
      uncompressedSize: 0,
      entries: [],
      checkpoints: [{ compressedOffset: 10, bits: 0, uncompressedOffset: 0, window: Buffer.alloc(0) }],
      spanDigests: [sha256('')],
    };
    assert.deepEqual(decodeArchive(encodeArchive(empty)), empty);
  });

  it('round-trips a zstd layer, whose checkpoints have no blob offsets, and refuses one that has', () => {
    const zstd: ClipArchive = {
      ...small(),
      compression: 'zstd',
      compressedSize: 3_000_000,
      checkpoints: [0, 4_000_000].map((o) => ({ compressedOffset: 0, bits: 0, uncompressedOffset: o, window: Buffer.alloc(0) })),
      spanDigests: [sha256('0'), sha256('1')],
    };
    assert.deepEqual(decodeArchive(encodeArchive(zstd)), zstd);
    const offset = { ...zstd, checkpoints: zstd.checkpoints.map((c, i) => ({ ...c, compressedOffset: i * 1000 })) };
    assert.throws(() => encodeArchive(offset), /checkpoint 1: in a zstd layer a checkpoint has compressed offset 0 and bits 0/);
    const windowed = { ...zstd, checkpoints: zstd.checkpoints.map((c) => ({ ...c, window: Buffer.alloc(c.uncompressedOffset ? 10 : 0) })) };
    assert.throws(() => encodeArchive(windowed), /checkpoint 1: in a zstd layer a checkpoint has no window/);
  });

  it('encodes 100k entries compactly (numbers reported, times not asserted)', (t) => {
    const a = largeArchive(100_000);
    let start = process.hrtime.bigint();
    const file = encodeArchive(a);
    const encodeMs = Number(process.hrtime.bigint() - start) / 1e6;
    start = process.hrtime.bigint();
    const back = decodeArchive(file);
    const decodeMs = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(back.entries.length, a.entries.length);
    assert.deepEqual(back.entries[99_999], a.entries[99_999]);

    const windowBytes = bodyOf(a).checkpoints.reduce((n, c) => n + c.windowDeflate.length, 0);
    const pathBytes = a.entries.reduce((n, e) => n + Buffer.byteLength(e.path), 0);
    const entryBytes = file.length - windowBytes;
    t.diagnostic(`100k entries: ${file.length} bytes (${(entryBytes / a.entries.length).toFixed(1)} bytes/entry without `
      + `windows; mean path ${(pathBytes / a.entries.length).toFixed(1)} bytes), ${a.checkpoints.length} checkpoints `
      + `(${(windowBytes / a.checkpoints.length).toFixed(0)} bytes/window), layer ${a.uncompressedSize} bytes; `
      + `encode ${encodeMs.toFixed(0)} ms, decode ${decodeMs.toFixed(0)} ms`);
    assert.ok(entryBytes / a.entries.length < 40, `${entryBytes / a.entries.length} bytes per entry`);
  });

  it('stores windows compressed (bytes per checkpoint reported)', (t) => {
    for (const windows of ['text', 'random'] as const) {
      const a = largeArchive(1000, { span: 64 << 10, windows });
      // Checkpoints 0 and 1 have short windows (at offsets 0 and 20000); every later one has 32768 bytes.
      assert.equal(a.checkpoints[2]!.window.length, 32768);
      const without = encodeArchive({ ...a, checkpoints: a.checkpoints.slice(0, 2), spanDigests: a.spanDigests.slice(0, 2) });
      const perCheckpoint = (encodeArchive(a).length - without.length) / (a.checkpoints.length - 2);
      t.diagnostic(`${windows} windows: ${perCheckpoint.toFixed(0)} bytes per checkpoint (32768-byte window + offsets + span digest)`);
      if (windows === 'text') assert.ok(perCheckpoint < 20000, `${perCheckpoint}`);
      else assert.ok(perCheckpoint < 32768 + 100, `${perCheckpoint}`);
    }
  });
});

describe('clip archive format: damaged files', () => {
  const good = encodeArchive(realisticArchive());

  it('rejects a flipped byte anywhere in the body or the checked header with a checksum error', () => {
    for (const at of [HEADER, HEADER + 1, Math.floor(good.length / 2), good.length - 1, 12, 13]) {
      const bad = Buffer.from(good);
      bad[at]! ^= 0x40;
      rejects(bad, /checksum mismatch/);
    }
  });

  it('rejects a damaged checksum', () => {
    const bad = Buffer.from(good);
    bad[30]! ^= 1;
    rejects(bad, /checksum mismatch/);
  });

  it('rejects truncation at every kind of place', () => {
    rejects(good.subarray(0, 0), /truncated: 0 bytes, shorter than the 56-byte header/);
    rejects(good.subarray(0, 5), /truncated: 5 bytes/);
    rejects(good.subarray(0, 20), /truncated: 20 bytes/);
    rejects(good.subarray(0, HEADER), /truncated: header says the body is \d+ bytes, only 0 present/);
    rejects(good.subarray(0, HEADER + 100), /truncated: header says the body is \d+ bytes, only 100 present/);
    rejects(good.subarray(0, good.length - 1), /truncated: .* only \d+ present/);
  });

  it('rejects bytes after the body', () => {
    rejects(Buffer.concat([good, Buffer.from([0])]), /1 unexpected bytes after the \d+-byte body/);
  });

  it('rejects a file that is not a clip archive', () => {
    rejects(Buffer.from('{"layerDigest": "sha256:..."}'.padEnd(100)), /not a clip archive \(bad magic 7b226c61/);
    const bad = Buffer.from(good);
    bad[0] = 0x88;
    rejects(bad, /not a clip archive/);
    const crlf = Buffer.from(good);
    crlf[6] = 0x0d; // as after a text-mode newline conversion
    rejects(crlf, /not a clip archive/);
  });

  it('rejects a newer major version and accepts a newer minor version (with fields it does not know)', () => {
    const body = good.subarray(HEADER);
    rejects(frame(body, { major: 2 }), /unsupported format version 2\.0 \(this reader supports 1\.x\)/);
    rejects(frame(body, { major: 0, minor: 9 }), /unsupported format version 0\.9/);
    assert.deepEqual(decodeArchive(frame(body, { minor: 1 })), realisticArchive());
    // A 1.1 writer may add fields and flags; a 1.0 reader skips them.
    const unknownField = Buffer.from([0xa2, 0x06, 0x03, 0x61, 0x62, 0x63]); // field 100, length-delimited "abc"
    assert.deepEqual(decodeArchive(frame(Buffer.concat([body, unknownField]), { minor: 1, flags: 0x80000001 })), realisticArchive());
  });

  it('rejects a body that is not protobuf', () => {
    rejects(frame(Buffer.from([0x0a, 0xff, 0xff, 0xff])), /malformed body/);
  });
});

describe('clip archive format: rules checked when decoding', () => {
  const a = small();
  const cases: Array<[string, (b: ArchiveBody) => void, RegExp]> = [
    ['checkpoints not increasing (uncompressed)', (b) => { b.checkpoints[2]!.uncompressedOffset = 4_000_000; }, /checkpoint 2: uncompressed offset 4000000 is not after the previous checkpoint's 4000000/],
    ['checkpoints not increasing (compressed)', (b) => { b.checkpoints[2]!.compressedOffset = 999_999; }, /checkpoint 2: compressed offset 999999 is not after the previous checkpoint's 1000000/],
    ['first checkpoint not at 0', (b) => { b.checkpoints[0]!.uncompressedOffset = 1; }, /checkpoint 0: the first checkpoint is at uncompressed offset 1, want 0/],
    ['no checkpoints', (b) => { b.checkpoints = []; b.spanSha256 = []; }, /no checkpoints/],
    ['compressed offset beyond the compressed size', (b) => { b.compressedSize = 2_000_000; }, /checkpoint 2: compressed offset 2000000 is beyond the compressed size 2000000/],
    ['uncompressed offset beyond the uncompressed size', (b) => { b.uncompressedSize = 8_000_000; }, /checkpoint 2: uncompressed offset 8000000 is beyond the uncompressed size 8000000/],
    ['bits > 7', (b) => { b.checkpoints[1]!.bits = 8; }, /checkpoint 1: bits 8 is not within 0-7/],
    ['bits at offset 0', (b) => { b.checkpoints[0]!.compressedOffset = 0; b.checkpoints[0]!.bits = 1; }, /checkpoint 0: bits 1 at compressed offset 0/],
    ['window > 32768 bytes', (b) => { b.checkpoints[1]!.windowDeflate = deflateRawSync(Buffer.alloc(32769)); }, /checkpoint 1: window inflates to more than 32768 bytes/],
    ['window shorter than 32768 bytes far into the stream', (b) => { b.checkpoints[1]!.windowDeflate = deflateRawSync(Buffer.alloc(100)); }, /checkpoint 1: window is 100 bytes, want 32768/],
    ['window at offset 0', (b) => { b.checkpoints[0]!.windowDeflate = deflateRawSync(Buffer.alloc(1)); }, /checkpoint 0: window is 1 bytes, want 0/],
    ['window not deflate', (b) => { b.checkpoints[1]!.windowDeflate = Buffer.from([0xff, 0xff]); }, /checkpoint 1: window does not inflate/],
    ['fewer span digests than checkpoints', (b) => { b.spanSha256.pop(); }, /2 span digests for 3 checkpoints/],
    ['more span digests than checkpoints', (b) => { b.spanSha256.push(Buffer.alloc(32)); }, /4 span digests for 3 checkpoints/],
    ['span digest of the wrong length', (b) => { b.spanSha256[1] = Buffer.alloc(31); }, /span 1 digest is 31 bytes, want 32/],
    ['bad layer digest', (b) => { b.layerDigest = 'sha256:abc'; }, /layer digest "sha256:abc" is not "sha256:" and 64 lowercase hex digits/],
    ['bad layer digest (upper case)', (b) => { b.layerDigest = b.layerDigest.toUpperCase(); }, /layer digest "SHA256:/],
    ['bad diff id', (b) => { b.diffId = `md5:${'0'.repeat(64)}`; }, /diff id "md5:0+" is not/],
    ['unknown compression', (b) => { b.compression = 4 as ArchiveBody['compression']; }, /unknown compression 4/],
    ['unspecified compression', (b) => { b.compression = 0; }, /unknown compression 0/],
    ['data range beyond the uncompressed size', (b) => { b.entries[2]!.size = 10_000_000; }, /entry 2 \("bin\/sh"\): data \[2048, 10002048\) ends beyond the uncompressed size 10000000/],
    ['unknown entry type', (b) => { b.entries[3]!.type = 9 as EntryBody['type']; }, /entry 3 \("bin\/ash"\): unknown entry type 9/],
    ['unspecified entry type', (b) => { b.entries[1]!.type = 0; }, /entry 1 \("bin"\): unknown entry type 0/],
    ['absolute path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('/bin/sh'); }, /entry 2 \("\/bin\/sh"\): path is absolute/],
    ['".." path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('..'); }, /entry 2 \(".."\): path has a '\.\.' component/],
    ['"../" path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('../etc/shadow'); }, /path has a '\.\.' component/],
    ['"a/../b" path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('bin/../../x'); }, /path has a '\.\.' component/],
    ['trailing ".." path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('bin/..'); }, /path has a '\.\.' component/],
    ['"./" path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('./bin/sh'); }, /path is not normalised/],
    ['"a/./b" path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('bin/./sh'); }, /path is not normalised/],
    ['"a//b" path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('bin//sh'); }, /path is not normalised/],
    ['trailing "/" path', (b) => { b.entries[1]!.pathSuffix = Buffer.from('bin/'); }, /path is not normalised/],
    ['empty path', (b) => { b.entries[1]!.pathSuffix = Buffer.alloc(0); }, /entry 1 \(""\): path is empty/],
    ['NUL in path', (b) => { b.entries[2]!.pathSuffix = Buffer.from('bin/s\0h'); }, /path contains a NUL byte/],
    ['path not UTF-8', (b) => { b.entries[2]!.pathSuffix = Buffer.from([0x62, 0xff]); }, /entry 2: path is not valid UTF-8/],
    ['path prefix longer than the previous path', (b) => { b.entries[2]!.pathPrefix = 4; }, /entry 2: path shares 4 bytes with the previous path, which has 3/],
    ['root that is not a directory', (b) => { b.entries[0]!.type = 1; }, /the layer root "\." must be a directory/],
    ['hardlink to a later entry', (b) => { b.entries[3]!.linkTarget = 'etc/null'; }, /entry 3 \("bin\/ash"\): hardlink target "etc\/null" is not an earlier entry/],
    ['hardlink to a missing entry', (b) => { b.entries[3]!.linkTarget = 'bin/bash'; }, /hardlink target "bin\/bash" is not an earlier entry/],
    ['hardlink to itself', (b) => { b.entries[3]!.linkTarget = 'bin/ash'; }, /entry 3 \("bin\/ash"\): hardlink to itself/],
    ['hardlink to a directory', (b) => { b.entries[3]!.linkTarget = 'bin'; }, /hardlink target "bin" is a directory/],
    ['hardlink escaping the layer', (b) => { b.entries[3]!.linkTarget = '../../etc/shadow'; }, /hardlink target "\.\.\/\.\.\/etc\/shadow" has a '\.\.' component/],
    ['empty symlink target', (b) => { b.entries[4]!.linkTarget = ''; }, /entry 4 \("bin\/ls"\): symlink target "" is empty/],
    ['link target on a directory', (b) => { b.entries[1]!.linkTarget = 'x'; }, /entry 1 \("bin"\): a dir has link target "x", want none/],
    ['size on a non-file', (b) => { b.entries[4]!.size = 3; }, /entry 4 \("bin\/ls"\): a symlink has size 3, want 0/],
    ['mode beyond 07777', (b) => { b.entries[2]!.mode = 0o100755; }, /entry 2 \("bin\/sh"\): mode 33261 is not within 0-07777/],
    ['negative data offset', (b) => { b.entries[0]!.dataOffsetDelta = -1; }, /entry 0 \("\."\): data offset -1 is not a non-negative integer/],
    ['xattr name without namespace', (b) => { b.entries[2]!.xattrs = { capability: Buffer.from('x') }; }, /xattr name "capability" is not "namespace\.name"/],
    ['xattr named __proto__', (b) => { b.entries[2]!.xattrs = JSON.parse('{"__proto__": ""}'); b.entries[2]!.xattrs['__proto__'] = Buffer.from('x'); }, /xattr name "__proto__"/],
    ['xattr value too large', (b) => { b.entries[2]!.xattrs = { 'user.x': Buffer.alloc(65537) }; }, /xattr user\.x value is 65537 bytes, at most 65536/],
    ['uncompressed layer with a window', (b) => { b.compression = 2; b.compressedSize = b.uncompressedSize; }, /checkpoint 0: in an uncompressed layer a checkpoint has equal offsets, bits 0 and no window/],
    ['uncompressed layer with different sizes', (b) => { b.compression = 2; }, /uncompressed layer has compressed size 3000000 != uncompressed size 10000000/],
    ['start-up span beyond the spans', (b) => { b.startupSpans = [0, 3]; }, /start-up span 3 is not one of the 3 spans/],
    ['start-up span listed twice', (b) => { b.startupSpans = [2, 0, 2]; }, /start-up span 2 is listed twice/],
    ['start-up ranges not in pairs', (b) => { b.startupRanges = [0, 1, 2]; }, /start-up ranges: 3 numbers, not pairs/],
    ['an empty start-up range', (b) => { b.startupRanges = [0, 0]; }, /start-up range 0 is empty/],
    ['touching start-up ranges', (b) => { b.startupRanges = [0, 1, 0, 1]; }, /start-up range 1 touches the range before it/],
    ['a start-up range past the stream', (b) => { b.startupRanges = [0, 1, 10_000, 1]; }, /start-up range 1 lies outside the stream \(10000000 bytes\)/],
    ['too many start-up ranges', (b) => { b.startupRanges = Array.from({ length: 8193 }, () => [1, 1]).flat(); }, /8193 start-up ranges, at most 8192/],
  ];

  it('accepts the unchanged archive', () => {
    assert.deepEqual(decodeArchive(frame(ArchiveBody.encode(plainBody(a)).finish())), a);
  });

  for (const [name, mutate, message] of cases) {
    it(`rejects ${name}`, () => rejectsBody(a, mutate, message));
  }

  it('rejects an mtime that overflows through deltas', () => {
    rejectsBody(a, (b) => {
      for (const e of b.entries) e.mtimeMsDelta = Number.MAX_SAFE_INTEGER;
    }, /entry 1 \("bin"\): mtime or data offset out of range/);
  });
});

describe('clip archive format: rules checked when encoding', () => {
  const cases: Array<[string, (a: ClipArchive) => void, RegExp]> = [
    ['a path escaping the layer', (a) => { a.entries[2]!.path = '../../etc/passwd'; }, /entry 2 \("\.\.\/\.\.\/etc\/passwd"\): path has a '\.\.' component/],
    ['an absolute path', (a) => { a.entries[2]!.path = '/etc/passwd'; }, /path is absolute/],
    ['a path with a lone surrogate', (a) => { a.entries[2]!.path = 'bin/\ud800'; }, /path is not valid Unicode/],
    ['an unknown entry type', (a) => { (a.entries[2] as { type: string }).type = 'socket'; }, /unknown entry type "socket"/],
    ['a fractional mtime', (a) => { a.entries[2]!.mtimeMs = 1.5; }, /mtime 1\.5 is not a whole number of ms/],
    ['a uid beyond 32 bits', (a) => { a.entries[2]!.uid = 2 ** 32; }, /uid 4294967296 is not a 32-bit unsigned integer/],
    ['a window over 32768 bytes', (a) => { a.checkpoints[1]!.window = Buffer.alloc(40000); }, /checkpoint 1: window is 40000 bytes, at most 32768/],
    ['a span digest in the wrong form', (a) => { a.spanDigests[0] = 'abc'; }, /span 0 digest "abc" is not/],
    ['mismatched span digests', (a) => { a.spanDigests.push(sha256('x')); }, /4 span digests for 3 checkpoints/],
    ['an unknown compression', (a) => { (a as { compression: string }).compression = 'brotli'; }, /unknown compression "brotli"/],
  ];
  for (const [name, mutate, message] of cases) {
    it(`refuses ${name}`, () => {
      const a = small();
      mutate(a);
      assert.throws(() => encodeArchive(a), (err: unknown) => err instanceof ArchiveFormatError && message.test(err.message));
    });
  }
});
