/**
 * The layer table built in C from an archive body (src/archive/entry-table.ts, native/layer_table.c): the
 * tree semantics (tar extraction order, hard links, OCI whiteouts as overlayfs ones), the table layout the
 * FUSE server reads (src/fusefs/native/clip_fuse.c), and the entry rules and limits it enforces on hostile
 * bodies. The server's behaviour on the table is tested through the kernel in test/integration/fusefs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArchiveFormatError, ArchiveLimitError, DEFAULT_ARCHIVE_LIMITS, buildLayerTable, decodeArchiveAsync, encodeArchive } from '../../../src/archive';
import { frameBody } from '../../../src/archive/header';
import type { ClipArchive } from '../../../src/archive/types';
import { Archive as ArchiveBody, Entry as EntryCodec, EntryType, type Entry as EntryBody } from '../../../src/generated/clip/archive/v1/archive';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { TableReader } from '../../helpers/layer-table-reader';
import { FixtureEntry, buildLayer } from '../../integration/fusefs/layer-fixture';

const OPAQUE = ['trusted.overlay.opaque'];

function boundsOf(a: ClipArchive): number[] {
  return [...a.checkpoints.map((c) => c.uncompressedOffset), a.uncompressedSize];
}

async function tableOf(archive: ClipArchive, opaqueXattrNames = OPAQUE) {
  const body = encodeArchive(archive).subarray(56);
  const table = await buildLayerTable(body, { limits: DEFAULT_ARCHIVE_LIMITS, uncompressedSize: archive.uncompressedSize, bounds: boundsOf(archive), opaqueXattrNames });
  return { ...table, t: new TableReader(table.bytes) };
}

async function tree(entries: FixtureEntry[]) {
  return tableOf(buildLayer(entries).archive);
}

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

describe('layer table: tree', () => {
  it('has a root without a "." entry, and takes its attributes from one', async () => {
    const { t: bare } = await tree([]);
    assert.deepEqual([bare.root.mode, bare.root.ino, bare.root.nlink], [0o40755, 1, 2]);
    assert.deepEqual(bare.names('/'), ['.', '..']);
    const { t: explicit } = await tree([{ path: './', type: 'dir', mode: 0o700, uid: 5 }]);
    assert.deepEqual([explicit.root.mode, explicit.root.uid], [0o40700, 5]);
  });

  it('creates missing parents as 0755 root directories with mtime 0', async () => {
    const { t } = await tree([{ path: 'a/b/c.txt', type: 'file', data: Buffer.from('c'), uid: 7 }]);
    for (const p of ['/a', '/a/b']) assert.deepEqual([t.lookup(p)!.mode, t.lookup(p)!.uid, t.lookup(p)!.mtimeNs], [0o40755, 0, 0n]);
    assert.equal(t.lookup('/a/b/c.txt')!.uid, 7);
    assert.equal(t.lookup('/a/b/c.txt')!.size, 1n);
  });

  it('lets a later entry replace an earlier one, a directory over a directory keeping its children', async () => {
    const { t, problems } = await tree([
      { path: 'f', type: 'file', data: Buffer.from('old') },
      { path: 'd', type: 'dir', mode: 0o700 },
      { path: 'd/child', type: 'file' },
      { path: 'f', type: 'symlink', linkTarget: 'elsewhere' },
      { path: 'd', type: 'dir', mode: 0o750 },
      { path: 'x/y', type: 'file' },
      { path: 'x', type: 'file', data: Buffer.from('x replaces a directory') },
      { path: 'f2', type: 'file' },
      { path: 'f2/z', type: 'file' },
    ]);
    assert.equal(t.lookup('/f')!.mode & 0o170000, S_IFLNK);
    assert.equal(t.lookup('/d')!.mode, 0o40750);
    assert.ok(t.lookup('/d/child'));
    assert.equal(t.lookup('/x')!.mode & 0o170000, S_IFREG);
    assert.equal(t.lookup('/x/y'), undefined);
    assert.equal(t.lookup('/f2')!.mode & 0o170000, S_IFDIR, 'a directory replaces the file in its way');
    assert.deepEqual(t.names('/'), ['.', '..', 'd', 'f', 'x', 'f2']);
    assert.deepEqual(problems, ['f2: file replaced by a directory']);
  });

  it('shares one inode among hard links and counts names, also when a name is replaced', async () => {
    const { t } = await tree([
      { path: 'bin/a', type: 'file', data: Buffer.from('a'), mode: 0o4755 },
      { path: 'bin/b', type: 'hardlink', linkTarget: 'bin/a' },
      { path: 'bin/c', type: 'hardlink', linkTarget: '/bin/a' },
      { path: 'bin/c', type: 'file', data: Buffer.from('new c') },
      { path: 'bin/a', type: 'file', data: Buffer.from('new a') },
      { path: 'bin/d', type: 'hardlink', linkTarget: 'bin/b' },
    ]);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => t.lookup(`/bin/${n}`)!);
    assert.equal(b.ino, d.ino, 'd links to what b names');
    assert.equal(b.nlink, 2, 'b and d: a and c were replaced');
    assert.equal(b.mode, 0o104755);
    assert.notEqual(a.ino, b.ino);
    assert.deepEqual([a.nlink, c.nlink], [1, 1]);
  });

  it('leaves out what cannot be applied and reports it', async () => {
    const { t, problems, problemCount } = await tree([
      { path: 'x/f', type: 'file' },
      { path: 'x', type: 'file' },
      { path: 'dangling', type: 'hardlink', linkTarget: 'x/f' },
      { path: 'a/.wh.b/c', type: 'file' },
      { path: '.wh.', type: 'file' },
    ]);
    assert.equal(problemCount, 3, problems.join('\n'));
    assert.deepEqual(problems, ['dangling: hard link to missing x/f', 'a/.wh.b/c: inside a whiteout', '.wh.: whiteout without a name']);
    assert.deepEqual(t.names('/'), ['.', '..', 'x']);
  });

  it('turns .wh.<name> into a 0/0 character device unless <name> is real, and marks opaque directories', async () => {
    const { t } = await tree([
      { path: 'd/.wh.gone', type: 'file', mtimeMs: 5000 },
      { path: 'd/.wh.real', type: 'file' },
      { path: 'd/real', type: 'file' },
      { path: 'd/.wh..wh..opq', type: 'file' },
      { path: 'd/.wh..wh.plnk/123', type: 'file' },
      { path: 'e/f', type: 'file' },
    ]);
    assert.deepEqual(t.names('/d').sort(), ['.', '..', 'gone', 'real']);
    const gone = t.lookup('/d/gone')!;
    assert.deepEqual([gone.mode, gone.rdevMajor, gone.rdevMinor, gone.size, gone.uid, gone.gid, gone.nlink, gone.mtimeNs], [S_IFCHR, 0, 0, 0n, 0, 0, 1, 5_000_000_000n]);
    assert.equal(t.lookup('/d/real')!.mode & 0o170000, S_IFREG);
    assert.equal(t.lookup('/d/.wh.gone'), undefined);
    assert.deepEqual(t.lookup('/d')!.xattrs, { 'trusted.overlay.opaque': 'y' });
    assert.deepEqual(t.lookup('/e')!.xattrs, {});
    assert.equal(t.lookup('/d')!.nlink, 2);
  });

  it('gives directories nlink 2 + subdirectories and keeps children in tar order under their parent', async () => {
    const { t } = await tree([{ path: 'a/b', type: 'dir' }, { path: 'a/c', type: 'dir' }, { path: 'a/f', type: 'file' }]);
    assert.equal(t.lookup('/a')!.nlink, 4);
    assert.equal(t.root.nlink, 3);
    assert.deepEqual(t.names('/a'), ['.', '..', 'b', 'c', 'f']);
  });

  it('computes sizes, device numbers, and statfs totals', async () => {
    const { t, entryCount } = await tree([
      { path: 'f', type: 'file', data: Buffer.alloc(1000) },
      { path: 'h', type: 'hardlink', linkTarget: 'f' },
      { path: 'l', type: 'symlink', linkTarget: 'héllo' },
      { path: 'null', type: 'char', devMajor: 1, devMinor: 3 },
    ]);
    assert.equal(entryCount, 4);
    assert.equal(t.lookup('/f')!.size, 1000n);
    assert.equal(t.lookup('/l')!.size, BigInt(Buffer.byteLength('héllo')));
    assert.deepEqual([t.lookup('/null')!.rdevMajor, t.lookup('/null')!.rdevMinor], [1, 3]);
    assert.equal(t.fileBytes, 1000n, 'hard-linked data counted once');
    assert.equal(t.header[1], 4, 'inodes');
  });
});

describe('layer table: layout', () => {
  const data = Buffer.from('hello, table\n');
  const layer = buildLayer(
    [
      { path: 'bin/', type: 'dir' },
      { path: 'bin/tool', type: 'file', data, mode: 0o4755, mtimeMs: 1_600_000_000_123, xattrs: { 'user.k': Buffer.from('v') } },
      { path: 'bin/again', type: 'hardlink', linkTarget: 'bin/tool' },
      { path: 'link', type: 'symlink', linkTarget: 'bin/tool' },
      { path: 'opq/.wh..wh..opq', type: 'file' },
      { path: 'tty', type: 'char', devMajor: 5, devMinor: 0 },
    ],
    4096,
  );

  it('has the magic, the counts, the xattr flag, the statfs byte total and the span bounds', async () => {
    const { t } = await tableOf(layer.archive);
    assert.equal(t.header[0], 0x31544c43);
    assert.equal(t.header[6], 1, 'some inode has xattrs');
    assert.equal(t.fileBytes, BigInt(data.length));
    assert.deepEqual(t.bounds, boundsOf(layer.archive).map(BigInt));
  });

  it('records each inode once at its number, hard links sharing it', async () => {
    const { t } = await tableOf(layer.archive);
    assert.deepEqual([...t.root.children.keys()], ['bin', 'link', 'opq', 'tty']);
    const bin = t.lookup('/bin')!.children;
    assert.equal(bin.get('tool'), bin.get('again'));
    const tool = t.lookup('/bin/tool')!;
    assert.equal(tool.mode, S_IFREG | 0o4755);
    assert.equal(tool.nlink, 2);
    assert.equal(tool.size, BigInt(data.length));
    assert.equal(tool.dataOffset, BigInt(layer.archive.entries[1].dataOffset));
    assert.equal(tool.mtimeNs, 1_600_000_000_123_000_000n);
    assert.deepEqual(new Set(t.inodes.map((n) => n.ino)).size, t.inodes.length);
  });

  it('keeps symlink targets NUL-terminated, device numbers, and xattrs with the opaque marker', async () => {
    const { t } = await tableOf(layer.archive, ['trusted.overlay.opaque', 'user.overlay.opaque']);
    const link = t.lookup('/link')!;
    assert.deepEqual([link.link, link.linkNul], ['bin/tool', true]);
    assert.deepEqual([t.lookup('/tty')!.rdevMajor, t.lookup('/tty')!.rdevMinor], [5, 0]);
    assert.deepEqual(t.lookup('/opq')!.xattrs, { 'trusted.overlay.opaque': 'y', 'user.overlay.opaque': 'y' });
    assert.deepEqual(t.lookup('/bin/tool')!.xattrs, { 'user.k': 'v' });
    assert.deepEqual(t.root.xattrs, {});
  });

  it('clears the xattr flag for a layer without any attribute', async () => {
    const { t } = await tableOf(buildLayer([{ path: 'f', type: 'file', data }]).archive, []);
    assert.equal(t.header[6], 0);
  });
});

/** A framed archive whose body is the fixture's with `entries` (wire form) instead of its own. */
function withEntries(archive: ClipArchive, entries: Partial<EntryBody>[], extra?: (w: BinaryWriter) => void): { body: Buffer; file: Buffer } {
  const base = ArchiveBody.decode(encodeArchive(archive).subarray(56));
  const w = new BinaryWriter();
  ArchiveBody.encode({ ...base, entries: [] }, w);
  for (const e of entries) {
    const full: EntryBody = { pathPrefix: 0, pathSuffix: Buffer.alloc(0), type: EntryType.ENTRY_TYPE_FILE, mode: 0o644, uid: 0, gid: 0, size: 0, mtimeMsDelta: 0, dataOffsetDelta: 0, linkTarget: '', devMajor: 0, devMinor: 0, xattrs: {}, ...e };
    const sub = new BinaryWriter();
    EntryCodec.encode(full, sub);
    w.uint32((7 << 3) | 2).bytes(sub.finish());
  }
  extra?.(w);
  const body = Buffer.from(w.finish());
  return { body, file: frameBody(body) };
}

describe('layer table: hostile bodies', () => {
  const archive = buildLayer([{ path: 'f', type: 'file', data: Buffer.from('abc') }]).archive;
  const path = (p: string): Partial<EntryBody> => ({ pathSuffix: Buffer.from(p) });

  async function refused(entries: Partial<EntryBody>[], want: RegExp, limits: Partial<typeof DEFAULT_ARCHIVE_LIMITS> = {}, kind: Function = ArchiveFormatError) {
    const { file } = withEntries(archive, entries);
    await assert.rejects(decodeArchiveAsync(file, limits), (err: Error) => {
      assert.ok(err instanceof kind, `${err.name}: ${err.message}`);
      assert.match(err.message, want);
      return true;
    });
  }

  it('skips unknown fields, at the top level and in entries, as the format requires of newer minor versions', async () => {
    const { file } = withEntries(archive, [{ ...path('a'), size: 0 }], (w) => {
      w.uint32((40 << 3) | 2).bytes(Buffer.from('a field of a later minor version'));
      w.uint32((99 << 3) | 0).uint64(7);
      w.uint32((13 << 3) | 5).fixed32(1);
    });
    const decoded = await decodeArchiveAsync(file);
    assert.deepEqual(decoded.entries.map((e) => e.path), ['a']);
    const entryWithUnknown = Buffer.concat([Buffer.from([0x12, 1, 0x62]), Buffer.from([(14 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]), Buffer.from([(15 << 3) | 3, 8, 1, (15 << 3) | 4])]);
    const w = new BinaryWriter();
    ArchiveBody.encode({ ...ArchiveBody.decode(encodeArchive(archive).subarray(56)), entries: [] }, w);
    w.uint32((7 << 3) | 2).bytes(Buffer.concat([entryWithUnknown, Buffer.from([0x18, 1])]));
    assert.deepEqual((await decodeArchiveAsync(frameBody(Buffer.from(w.finish())))).entries.map((e) => e.path), ['b']);
  });

  it('refuses paths that leave the layer or are not normalised, and unknown types', async () => {
    await refused([path('../escape')], /entry 0 \("\.\.\/escape"\): path has a '\.\.' component/);
    await refused([path('/abs')], /path is absolute/);
    await refused([path('a//b')], /is not normalised/);
    await refused([path('a/')], /is not normalised/);
    await refused([path('')], /path is empty/);
    await refused([path('a\0b')], /contains a NUL byte/);
    await refused([{ ...path('a'), type: 9 as EntryType }], /unknown entry type 9/);
    await refused([{ pathSuffix: Buffer.from([0x61, 0xc0, 0xaf]) }], /entry 0: path is not valid UTF-8/);
    await refused([{ pathSuffix: Buffer.from([0xed, 0xa0, 0x80]) }], /not valid UTF-8/, {}, ArchiveFormatError);
    await refused([{ ...path('.'), type: EntryType.ENTRY_TYPE_DIR }, { ...path('x'), pathPrefix: 2 }], /entry 1: path shares 2 bytes with the previous path, which has 1/);
  });

  it('refuses broken types, modes, data ranges, link targets, xattrs and hard links', async () => {
    await refused([{ ...path('a'), mode: 0o10000 }], /mode 4096 is not within 0-07777/);
    await refused([{ ...path('a'), type: EntryType.ENTRY_TYPE_DIR, size: 1 }], /a dir has size 1, want 0/);
    await refused([{ ...path('a'), size: 1, dataOffsetDelta: archive.uncompressedSize }], /ends beyond the uncompressed size/);
    await refused([{ ...path('a'), dataOffsetDelta: -1 }], /data offset -1 is not a non-negative integer/);
    await refused([{ ...path('a'), mtimeMsDelta: Number.MAX_SAFE_INTEGER }, { ...path('b'), mtimeMsDelta: 1 }], /entry 1 \("b"\): mtime or data offset out of range/);
    await refused([{ ...path('a'), type: EntryType.ENTRY_TYPE_SYMLINK }], /symlink target "" is empty/);
    await refused([{ ...path('a'), linkTarget: 'x' }], /a file has link target "x", want none/);
    await refused([{ ...path('.'), type: EntryType.ENTRY_TYPE_FILE }], /the layer root "\." must be a directory/);
    await refused([{ ...path('a'), xattrs: { nodot: Buffer.from('v') } }], /xattr name "nodot" is not "namespace.name"/);
    await refused([{ ...path('a'), xattrs: { 'user.big': Buffer.alloc(65537) } }], /xattr user.big value is 65537 bytes, at most 65536/);
    await refused([{ ...path('a'), type: EntryType.ENTRY_TYPE_HARDLINK, linkTarget: 'a' }], /hardlink to itself/);
    await refused([{ ...path('a'), type: EntryType.ENTRY_TYPE_HARDLINK, linkTarget: 'b' }], /hardlink target "b" is not an earlier entry/);
    await refused([{ ...path('d'), type: EntryType.ENTRY_TYPE_DIR }, { ...path('a'), type: EntryType.ENTRY_TYPE_HARDLINK, linkTarget: 'd' }], /hardlink target "d" is a directory/);
    await refused([{ ...path('a'), type: EntryType.ENTRY_TYPE_HARDLINK, linkTarget: '../x' }], /hardlink target "\.\.\/x" has a '\.\.' component/);
  });

  it('enforces every entry limit, naming the setting', async () => {
    await refused([path('a'), path('b'), path('c')], /more than 2 entries \(limit limits.max_entries = 2\)/, { maxEntries: 2 }, ArchiveLimitError);
    await refused([path('abcdef')], /entry 0: path is 6 bytes long \(limit limits.max_path_bytes = 5\)/, { maxPathBytes: 5 }, ArchiveLimitError);
    await refused([path('abc/defgh')], /entry 0: path has a 5-byte component \(limit limits.max_name_bytes = 4\)/, { maxNameBytes: 4 }, ArchiveLimitError);
    await refused(
      [{ ...path('a'), type: EntryType.ENTRY_TYPE_SYMLINK, linkTarget: 'x'.repeat(20) }],
      /entry 0: link target is 20 bytes long \(limit limits.max_path_bytes = 10\)/,
      { maxPathBytes: 10 },
      ArchiveLimitError,
    );
    await refused([path('abcd'), { ...path('e'), xattrs: { 'user.x': Buffer.alloc(10) } }], /entry 1: paths, link targets and xattrs take more than 16 bytes/, { maxMetadataBytes: 16 }, ArchiveLimitError);
    // Front coding: a few bytes on the wire that stand for a long path count as the whole path.
    const long = 'p'.repeat(100);
    const many = [path(long), ...Array.from({ length: 20 }, (_, i) => ({ pathPrefix: 99, pathSuffix: Buffer.from(String.fromCharCode(97 + i)) }))];
    await refused(many, /paths, link targets and xattrs take more than 1000 bytes/, { maxMetadataBytes: 1000 }, ArchiveLimitError);
  });

  it('refuses malformed wire data: cut fields, bad lengths, stray end-group tags', async () => {
    const { body } = withEntries(archive, [path('abc')]);
    for (const cut of [1, 2, 5, 9]) {
      await assert.rejects(decodeArchiveAsync(frameBody(body.subarray(0, body.length - cut))), ArchiveFormatError);
    }
    const stray = Buffer.concat([body, Buffer.from([(7 << 3) | 2, 2, (5 << 3) | 4, 0])]);
    await assert.rejects(decodeArchiveAsync(frameBody(stray)), /malformed body/);
    const huge = Buffer.concat([body, Buffer.from([(7 << 3) | 2, 0xff, 0xff, 0xff, 0xff, 0x0f])]);
    await assert.rejects(decodeArchiveAsync(frameBody(huge)), ArchiveFormatError);
  });
});
