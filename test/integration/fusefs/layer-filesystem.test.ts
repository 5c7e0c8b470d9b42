/**
 * LayerFilesystem on real kernel FUSE mounts: contents, attributes, directory listings, whiteouts, xattrs,
 * read-only behaviour and read failures, all observed from child processes (see probe.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STARTUP_RANGE_BLOCK, startupRangesFromBlockMap } from '../../../src/archive';
import { LayerFilesystem, OpaqueXattr, SpanReader, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { tempDir, waitFor } from '../../helpers/processes';
import { DEFAULT_MTIME_MS, FixtureEntry, FixtureLayer, MemorySpanReader, buildLayer, memoryLogger, patternBytes } from './layer-fixture';
import { probe, probeErrno, probeOk } from './probe';

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const SPAN = 64 * 1024;

function hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Mounts made by a test file; after() unmounts them all even when a test failed. */
class Mounts {
  readonly filesystems: LayerFilesystem[] = [];
  dir = '';

  async mount(name: string, fs: LayerFilesystem): Promise<string> {
    const mnt = path.join(this.dir, name);
    await fsp.mkdir(mnt, { recursive: true });
    this.filesystems.push(fs);
    await fs.mount(mnt);
    return mnt;
  }

  async cleanup(): Promise<void> {
    const failures: unknown[] = [];
    for (const fs of this.filesystems) await fs.unmount().catch((err: unknown) => failures.push(err));
    for (const m of await listFuseMounts(this.dir)) await forceUnmount(m.mountPoint).catch((err: unknown) => failures.push(err));
    if ((await listFuseMounts(this.dir)).length === 0) await fsp.rm(this.dir, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  }
}

const big = patternBytes(20 * SPAN + 12_345, 7);
const entries: FixtureEntry[] = [
  { path: 'etc/', type: 'dir' },
  { path: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
  { path: 'usr/', type: 'dir' },
  { path: 'usr/bin/', type: 'dir' },
  { path: 'usr/bin/su', type: 'file', mode: 0o4755, data: Buffer.from('#!/bin/sh\necho su\n') },
  { path: 'usr/bin/su-hard', type: 'hardlink', linkTarget: 'usr/bin/su' },
  { path: 'usr/bin/su-hard2', type: 'hardlink', linkTarget: './usr/bin/su' },
  { path: 'usr/bin/sudo', type: 'file', mode: 0o2711, uid: 0, gid: 27, data: Buffer.from('sudo') },
  { path: 'usr/lib/', type: 'dir' },
  { path: 'lib', type: 'symlink', linkTarget: 'usr/lib' },
  { path: 'usr/bin/sh', type: 'symlink', linkTarget: '/usr/bin/su' },
  { path: 'home/user/', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
  { path: 'home/user/notes.txt', type: 'file', mode: 0o640, uid: 100_000, gid: 1001, mtimeMs: 1_234_567_890_123, data: Buffer.from('notes') },
  { path: 'tmp/', type: 'dir', mode: 0o1777 },
  { path: 'data/big.bin', type: 'file', data: big },
  { path: 'data/empty', type: 'file' },
  { path: 'devices/null', type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 },
  { path: 'devices/sda', type: 'block', mode: 0o660, gid: 6, devMajor: 8, devMinor: 0 },
  { path: 'devices/big-minor', type: 'char', devMajor: 511, devMinor: 70_000 },
  { path: 'devices/pipe', type: 'fifo', mode: 0o600 },
  { path: 'gone/', type: 'dir' },
  { path: 'gone/.wh.victim', type: 'file' },
  { path: 'gone/.wh.kept', type: 'file' },
  { path: 'gone/kept', type: 'file', data: Buffer.from('kept') },
  { path: 'gone/.wh..wh.plnk', type: 'dir' },
  { path: 'opaque/inside.txt', type: 'file', data: Buffer.from('inside') },
  { path: 'opaque/.wh..wh..opq', type: 'file' },
  { path: 'implicit/deep/file.txt', type: 'file', data: Buffer.from('deep') },
  { path: 'xattrs.txt', type: 'file', data: Buffer.from('x'), xattrs: { 'user.comment': Buffer.from('hello world'), 'user.empty': Buffer.alloc(0) } },
  { path: 'replaced.txt', type: 'file', data: Buffer.from('old') },
  { path: 'replaced.txt', type: 'file', data: Buffer.from('new content') },
  { path: 'keepdir/', type: 'dir', mode: 0o700 },
  { path: 'keepdir/child', type: 'file', data: Buffer.from('child') },
  { path: 'keepdir/', type: 'dir', mode: 0o750 },
];

describe('LayerFilesystem on a FUSE mount', () => {
  const mounts = new Mounts();
  let layer: FixtureLayer;
  let mnt: string;
  let bigOffset: number;

  before(async () => {
    mounts.dir = await tempDir('fusefs');
    layer = buildLayer(entries, SPAN);
    bigOffset = layer.archive.entries.find((e) => e.path === 'data/big.bin')!.dataOffset;
    assert.ok(bigOffset % SPAN !== 0, 'the big file must not start on a span boundary');
    const { logger } = memoryLogger();
    mnt = await mounts.mount('layer', new LayerFilesystem(layer.archive, new MemorySpanReader(layer), { logger }));
  });

  after(() => mounts.cleanup());

  it('serves a multi-span file byte for byte', async () => {
    assert.equal(await probeOk('sha256', `${mnt}/data/big.bin`), hex(big));
  });

  it('serves reads that start, end and straddle at span boundaries', async () => {
    const ops: unknown[][] = [];
    const expected: Buffer[] = [];
    for (const k of [1, 2, 7, 20]) {
      const boundary = k * SPAN - bigOffset; // file offset where span k starts
      for (const [from, length] of [
        [boundary - 50, 100],
        [boundary, SPAN],
        [boundary - 1, 1],
        [boundary - SPAN - 10, 2 * SPAN + 20],
      ]) {
        const start = Math.max(0, from);
        ops.push(['pread', `${mnt}/data/big.bin`, start, length]);
        expected.push(big.subarray(start, start + length));
      }
    }
    const results = await probe(ops);
    results.forEach((r, i) => assert.deepEqual(r.ok, { len: expected[i].length, sha256: hex(expected[i]) }, `read ${JSON.stringify(ops[i])}`));
  });

  it('serves random preads, including ones past the end', async () => {
    const reads = await probeOk<[number, number, number, string][]>('random_preads', `${mnt}/data/big.bin`, 300, 42, 300_000);
    for (const [offset, requested, got, digest] of reads) {
      const want = big.subarray(offset, offset + requested);
      assert.equal(got, want.length, `pread of ${requested} at ${offset}`);
      assert.equal(digest, hex(want), `pread of ${requested} at ${offset}`);
    }
  });

  it('answers 0 bytes beyond the end of a file and for an empty file', async () => {
    const [past, empty, small] = await probe([
      ['pread', `${mnt}/data/big.bin`, big.length, 4096],
      ['pread', `${mnt}/data/empty`, 0, 4096],
      ['pread', `${mnt}/etc/passwd`, 5, 1 << 20],
    ]);
    assert.equal(past.ok.len, 0);
    assert.equal(empty.ok.len, 0);
    assert.equal(small.ok.len, 'root:x:0:0:root:/root:/bin/sh\n'.length - 5);
  });

  it('reports mode (with setuid, setgid, sticky), owner, size, mtime, blocks and blksize', async () => {
    const [su, sudo, notes, home, tmp, big1, root] = (
      await probe([
        ['lstat', `${mnt}/usr/bin/su`],
        ['lstat', `${mnt}/usr/bin/sudo`],
        ['lstat', `${mnt}/home/user/notes.txt`],
        ['lstat', `${mnt}/home/user`],
        ['lstat', `${mnt}/tmp`],
        ['lstat', `${mnt}/data/big.bin`],
        ['lstat', mnt],
      ])
    ).map((r) => r.ok);
    assert.equal(su.mode, S_IFREG | 0o4755);
    assert.equal(sudo.mode, S_IFREG | 0o2711);
    assert.equal(sudo.gid, 27);
    assert.deepEqual([notes.mode, notes.uid, notes.gid, notes.size], [S_IFREG | 0o640, 100_000, 1001, 5]);
    assert.equal(notes.mtime_ns, 1_234_567_890_123 * 1e6);
    assert.deepEqual([home.mode, home.uid, home.gid], [S_IFDIR | 0o700, 1000, 1000]);
    assert.equal(tmp.mode, S_IFDIR | 0o1777);
    assert.equal(big1.size, big.length);
    assert.equal(big1.blocks, Math.ceil(big.length / 512));
    assert.equal(big1.blksize, 4096);
    assert.equal(big1.mtime_ns, DEFAULT_MTIME_MS * 1e6);
    assert.equal(root.mode, S_IFDIR | 0o755, 'the root exists without a "./" entry');
    assert.equal(root.ino, 1);
  });

  it('gives hard links one inode number and nlink = number of names', async () => {
    const stats = (await probe(['su', 'su-hard', 'su-hard2', 'sudo'].map((n) => ['lstat', `${mnt}/usr/bin/${n}`]))).map((r) => r.ok);
    assert.deepEqual(
      stats.slice(0, 3).map((s) => s.nlink),
      [3, 3, 3],
    );
    assert.equal(new Set(stats.slice(0, 3).map((s) => s.ino)).size, 1);
    assert.notEqual(stats[3].ino, stats[0].ino);
    assert.equal(stats[3].nlink, 1);
    assert.equal(await probeOk('sha256', `${mnt}/usr/bin/su-hard2`), hex(Buffer.from('#!/bin/sh\necho su\n')));
  });

  it('gives directories nlink = 2 + subdirectories', async () => {
    const [root, usr, bin, gone] = (await probe([['lstat', mnt], ['lstat', `${mnt}/usr`], ['lstat', `${mnt}/usr/bin`], ['lstat', `${mnt}/gone`]])).map((r) => r.ok);
    // etc usr home tmp data devices gone opaque implicit keepdir
    assert.equal(root.nlink, 2 + 10);
    assert.equal(usr.nlink, 2 + 2);
    assert.equal(bin.nlink, 2);
    assert.equal(gone.nlink, 2, 'whiteouts and .wh..wh. entries are not subdirectories');
  });

  it('serves symlinks', async () => {
    const [lib, libStat, sh] = await probe([['readlink', `${mnt}/lib`], ['lstat', `${mnt}/lib`], ['readlink', `${mnt}/usr/bin/sh`]]);
    assert.equal(lib.ok, 'usr/lib');
    assert.deepEqual([libStat.ok.mode, libStat.ok.size], [S_IFLNK | 0o777, 'usr/lib'.length]);
    assert.equal(sh.ok, '/usr/bin/su');
    assert.equal(await probeOk('sha256', `${mnt}/lib/../../etc/passwd`), hex(Buffer.from('root:x:0:0:root:/root:/bin/sh\n')));
  });

  it('serves device nodes with their numbers and fifos', async () => {
    const [nul, sda, bigMinor, pipe] = (await probe(['null', 'sda', 'big-minor', 'pipe'].map((n) => ['lstat', `${mnt}/devices/${n}`]))).map((r) => r.ok);
    assert.deepEqual([nul.mode, nul.major, nul.minor], [S_IFCHR | 0o666, 1, 3]);
    assert.deepEqual([sda.mode, sda.major, sda.minor, sda.gid], [S_IFBLK | 0o660, 8, 0, 6]);
    assert.deepEqual([bigMinor.major, bigMinor.minor], [511, 70_000]);
    assert.equal(pipe.mode, S_IFIFO | 0o600);
  });

  it('lists directories with ".", "..", the right types, implicit parents and the last of repeated entries', async () => {
    const [root, bin, implicit, deep, replaced, keepdir, keepChild] = await probe([
      ['readdir', mnt],
      ['scandir', `${mnt}/usr/bin`],
      ['lstat', `${mnt}/implicit`],
      ['lstat', `${mnt}/implicit/deep`],
      ['sha256', `${mnt}/replaced.txt`],
      ['lstat', `${mnt}/keepdir`],
      ['sha256', `${mnt}/keepdir/child`],
    ]);
    assert.deepEqual(root.ok, ['.', '..', 'data', 'devices', 'etc', 'gone', 'home', 'implicit', 'keepdir', 'lib', 'opaque', 'replaced.txt', 'tmp', 'usr', 'xattrs.txt']);
    assert.deepEqual(bin.ok, { su: 'file', 'su-hard': 'file', 'su-hard2': 'file', sudo: 'file', sh: 'symlink' });
    for (const d of [implicit.ok, deep.ok]) assert.deepEqual([d.mode, d.uid, d.gid], [S_IFDIR | 0o755, 0, 0]);
    assert.equal(replaced.ok, hex(Buffer.from('new content')));
    assert.equal(keepdir.ok.mode, S_IFDIR | 0o750, 'a repeated directory entry updates the attributes');
    assert.equal(keepChild.ok, hex(Buffer.from('child')), 'and keeps the children');
  });

  it('shows whiteouts in overlayfs form: <name> as a 0/0 character device, no .wh.* names', async () => {
    const [list, types, victim, kept, marker, opqMarker, opaqueList] = await probe([
      ['readdir', `${mnt}/gone`],
      ['scandir', `${mnt}/gone`],
      ['lstat', `${mnt}/gone/victim`],
      ['lstat', `${mnt}/gone/kept`],
      ['lstat', `${mnt}/gone/.wh.victim`],
      ['lstat', `${mnt}/opaque/.wh..wh..opq`],
      ['readdir', `${mnt}/opaque`],
    ]);
    assert.deepEqual(list.ok, ['.', '..', 'kept', 'victim']);
    assert.deepEqual(types.ok, { kept: 'file', victim: 'other' });
    const v = victim.ok;
    assert.deepEqual([v.mode, v.major, v.minor, v.size, v.uid, v.gid, v.nlink], [S_IFCHR, 0, 0, 0, 0, 0, 1]);
    assert.equal(kept.ok.mode, S_IFREG | 0o644, 'a real entry wins over its whiteout in the same layer');
    assert.equal(marker.errno, 'ENOENT');
    assert.equal(opqMarker.errno, 'ENOENT');
    assert.deepEqual(opaqueList.ok, ['.', '..', 'inside.txt']);
  });

  it('reports trusted.overlay.opaque=y on opaque directories only', async () => {
    const [value, list, plain, plainList] = await probe([
      ['getxattr', `${mnt}/opaque`, 'trusted.overlay.opaque'],
      ['listxattr', `${mnt}/opaque`],
      ['getxattr', `${mnt}/gone`, 'trusted.overlay.opaque'],
      ['listxattr', `${mnt}/gone`],
    ]);
    assert.equal(value.ok, 'y');
    assert.deepEqual(list.ok, ['trusted.overlay.opaque']);
    assert.equal(plain.errno, 'ENODATA');
    assert.deepEqual(plainList.ok, []);
  });

  it('serves archive xattrs with the xattr size protocol (size query, ERANGE)', async () => {
    const f = `${mnt}/xattrs.txt`;
    const [query, tooSmall, exact, empty, missing, listQuery, listSmall, list] = await probe([
      ['getxattr_sized', f, 'user.comment', 0],
      ['getxattr_sized', f, 'user.comment', 4],
      ['getxattr_sized', f, 'user.comment', 11],
      ['getxattr_sized', f, 'user.empty', 16],
      ['getxattr_sized', f, 'user.missing', 16],
      ['listxattr_sized', f, 0],
      ['listxattr_sized', f, 5],
      ['listxattr_sized', f, 1024],
    ]);
    assert.deepEqual(query.ok, { len: 11, value: null });
    assert.deepEqual(tooSmall.ok, { errno: 'ERANGE' });
    assert.deepEqual(exact.ok, { len: 11, value: 'hello world' });
    assert.deepEqual(empty.ok, { len: 0, value: '' });
    assert.deepEqual(missing.ok, { errno: 'ENODATA' });
    assert.deepEqual(listQuery.ok, { len: 'user.comment\0user.empty\0'.length, names: null });
    assert.deepEqual(listSmall.ok, { errno: 'ERANGE' });
    assert.deepEqual(list.ok, { len: 24, names: ['user.comment', 'user.empty'] });
    const [opaqueSmall] = await probe([['getxattr_sized', `${mnt}/opaque`, 'trusted.overlay.opaque', 1]]);
    assert.deepEqual(opaqueSmall.ok, { len: 1, value: 'y' });
  });

  it('refuses every write with EROFS', async () => {
    const results = await probeOk<Record<string, string>>('write_attempts', `${mnt}/etc/passwd`);
    for (const [attempt, errno] of Object.entries(results)) assert.equal(errno, 'EROFS', attempt);
    assert.equal(await probeOk('sha256', `${mnt}/etc/passwd`), hex(Buffer.from('root:x:0:0:root:/root:/bin/sh\n')));
  });

  it('answers statfs', async () => {
    const s = await probeOk('statvfs', mnt);
    assert.equal(s.bsize, 4096);
    assert.ok(s.blocks >= Math.ceil(big.length / 4096) && s.blocks < Math.ceil(big.length / 4096) + 5, `blocks ${s.blocks}`);
    assert.ok(s.files > 30 && s.files < entries.length + 10, `files ${s.files}`);
    assert.equal(s.namemax, 255);
    assert.equal(s.flag & 1, 1, 'ST_RDONLY');
  });

  it('answers ENOENT for missing names and ENOTDIR below files', async () => {
    assert.equal(await probeErrno('lstat', `${mnt}/nope`), 'ENOENT');
    assert.equal(await probeErrno('lstat', `${mnt}/etc/passwd/x`), 'ENOTDIR');
    assert.equal(await probeErrno('listdir', `${mnt}/etc/passwd`), 'ENOTDIR');
  });
});

describe('LayerFilesystem read failures', () => {
  const mounts = new Mounts();
  const data = patternBytes(5 * SPAN, 3);
  let layer: FixtureLayer;

  before(async () => {
    mounts.dir = await tempDir('fusefs-fail');
    layer = buildLayer([{ path: 'f', type: 'file', data }], SPAN);
  });
  after(() => mounts.cleanup());

  it('answers EIO when the SpanReader fails, logs it, and serves the file once the reader recovers', async () => {
    const memory = new MemorySpanReader(layer);
    let failing = true;
    const reader: SpanReader = {
      readSpan: (i) => (failing ? Promise.reject(new Error('registry unreachable')) : memory.readSpan(i)),
    };
    const { logger, lines } = memoryLogger();
    const mnt = await mounts.mount('failing', new LayerFilesystem(layer.archive, reader, { logger }));
    assert.equal(await probeErrno('read_all', `${mnt}/f`), 'EIO');
    const errors = lines.filter((l) => l.startsWith('error'));
    assert.ok(errors.length >= 1, lines.join('\n'));
    for (const line of errors) assert.match(line, /read \/f: \[\d+, \d+\): registry unreachable \(errno 5\)/);
    failing = false;
    assert.equal(await probeOk('sha256', `${mnt}/f`), hex(data));
  });

  it('answers EIO, not a hang and not ETIMEDOUT, when the SpanReader never answers', async () => {
    const signals: AbortSignal[] = [];
    const reader: SpanReader = {
      readSpan: (_i, signal) => {
        signals.push(signal);
        return new Promise<Buffer>(() => undefined);
      },
    };
    const { logger, lines } = memoryLogger();
    const mnt = await mounts.mount('hanging', new LayerFilesystem(layer.archive, reader, { logger, readTimeoutMs: 300 }));
    const started = Date.now();
    assert.equal(await probeErrno('pread', `${mnt}/f`, 0, 4096), 'EIO');
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 5_000, `took ${elapsed} ms`);
    assert.ok(signals.length >= 1);
    await waitFor('the SpanReader to be told to give up', () => signals.every((s) => s.aborted), 5_000);
    assert.ok(lines.some((l) => /^error .*read \/f: \[0, \d+\): no data within 300 ms \(errno 5\)/.test(l)), lines.join('\n'));
  });

  it('refuses to mount an archive whose file data lies outside the stream, mounting nothing', async () => {
    const broken = buildLayer([{ path: 'f', type: 'file', data: Buffer.from('abc') }]);
    broken.archive.entries[0].size = broken.archive.uncompressedSize;
    const fs = new LayerFilesystem(broken.archive, new MemorySpanReader(broken), { logger: memoryLogger().logger });
    await assert.rejects(mounts.mount('broken', fs), /ends beyond the uncompressed size/);
    assert.equal(fs.mountpoint, undefined);
    assert.deepEqual((await listFuseMounts(mounts.dir)).filter((m) => m.mountPoint.endsWith('/broken')), []);
  });
});

describe('LayerFilesystem opaque xattr names', () => {
  const mounts = new Mounts();
  let layer: FixtureLayer;

  before(async () => {
    mounts.dir = await tempDir('fusefs-opaque');
    layer = buildLayer([{ path: 'd/.wh..wh..opq', type: 'file' }]);
  });
  after(() => mounts.cleanup());

  for (const [mode, names] of [
    ['user', ['user.overlay.opaque']],
    ['both', ['trusted.overlay.opaque', 'user.overlay.opaque']],
  ] as [OpaqueXattr, string[]][]) {
    it(`reports ${names.join(' and ')} with opaqueXattr "${mode}"`, async () => {
      const { logger } = memoryLogger();
      const mnt = await mounts.mount(mode, new LayerFilesystem(layer.archive, new MemorySpanReader(layer), { logger, opaqueXattr: mode }));
      const [list, trusted, user] = await probe([
        ['listxattr', `${mnt}/d`],
        ['getxattr', `${mnt}/d`, 'trusted.overlay.opaque'],
        ['getxattr', `${mnt}/d`, 'user.overlay.opaque'],
      ]);
      assert.deepEqual(list.ok, names);
      assert.deepEqual(trusted, names.includes('trusted.overlay.opaque') ? { ok: 'y' } : { errno: 'ENODATA' });
      assert.deepEqual(user, { ok: 'y' });
    });
  }
});

describe('LayerFilesystem read map (start-up read ranges)', () => {
  const mounts = new Mounts();
  let layer: FixtureLayer;
  let fs: LayerFilesystem;
  let mnt: string;

  before(async () => {
    mounts.dir = await tempDir('fusefs-readmap');
    layer = buildLayer(entries, SPAN);
    fs = new LayerFilesystem(layer.archive, new MemorySpanReader(layer), { logger: memoryLogger().logger });
    mnt = await mounts.mount('layer', fs);
  });

  after(() => mounts.cleanup());

  it('records the 4096-byte blocks of the stream that reads asked for, and nothing else', async () => {
    assert.deepEqual(startupRangesFromBlockMap(fs.readMap(), layer.archive.uncompressedSize), [], 'nothing read yet');
    const passwd = layer.archive.entries.find((e) => e.path === 'etc/passwd')!;
    const bigFile = layer.archive.entries.find((e) => e.path === 'data/big.bin')!;
    await probeOk('sha256', `${mnt}/etc/passwd`);
    await probe([['pread', `${mnt}/data/big.bin`, 3 * SPAN, 100]]);
    const block = (offset: number): number => Math.floor(offset / STARTUP_RANGE_BLOCK) * STARTUP_RANGE_BLOCK;
    const ranges = startupRangesFromBlockMap(fs.readMap(), layer.archive.uncompressedSize);
    const covered = (offset: number): boolean => ranges.some(([start, end]) => start <= offset && offset < end);
    assert.ok(covered(passwd.dataOffset) && covered(passwd.dataOffset + passwd.size - 1), `etc/passwd's data in ${JSON.stringify(ranges)}`);
    assert.ok(covered(bigFile.dataOffset + 3 * SPAN), `the pread's block in ${JSON.stringify(ranges)}`);
    assert.ok(!covered(bigFile.dataOffset + 10 * SPAN), 'a part of big.bin never read is not recorded');
    assert.equal(ranges[0]![0], block(passwd.dataOffset));
  });
});
