import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { LayerTree, makedev } from '../../../src/fusefs/layer-tree';
import { FixtureEntry, buildLayer } from '../../integration/fusefs/layer-fixture';

function tree(entries: FixtureEntry[]): LayerTree {
  return LayerTree.build(buildLayer(entries).archive);
}

function names(t: LayerTree, dir: string): string[] {
  return ['.', '..', ...t.lookup(dir)!.children!.keys()];
}

describe('LayerTree', () => {
  it('has a root without a "./" entry, and takes its attributes from one', () => {
    const bare = tree([]);
    assert.deepEqual([bare.root.stat.mode, bare.root.stat.ino, bare.root.stat.nlink], [0o40755, 1, 2]);
    assert.deepEqual(names(bare, '/'), ['.', '..']);
    const explicit = tree([{ path: './', type: 'dir', mode: 0o700, uid: 5 }]);
    assert.deepEqual([explicit.lookup('/')!.stat.mode, explicit.lookup('/')!.stat.uid], [0o40700, 5]);
  });

  it('normalises paths and creates missing parents as 0755 root directories', () => {
    const t = tree([{ path: '/a//b/./c.txt', type: 'file', data: Buffer.from('c'), uid: 7 }]);
    for (const p of ['/a', '/a/b']) assert.deepEqual([t.lookup(p)!.stat.mode, t.lookup(p)!.stat.uid, t.lookup(p)!.stat.mtime.getTime()], [0o40755, 0, 0]);
    assert.equal(t.lookup('/a/b/c.txt')!.stat.uid, 7);
    assert.equal(t.lookup('/a/b/c.txt')!.stat.size, 1);
  });

  it('lets a later entry replace an earlier one, a directory over a directory keeping its children', () => {
    const t = tree([
      { path: 'f', type: 'file', data: Buffer.from('old') },
      { path: 'd/', type: 'dir', mode: 0o700 },
      { path: 'd/child', type: 'file' },
      { path: 'f', type: 'symlink', linkTarget: 'elsewhere' },
      { path: 'd/', type: 'dir', mode: 0o750 },
      { path: 'x/y', type: 'file' },
      { path: 'x', type: 'file', data: Buffer.from('x replaces a directory') },
    ]);
    assert.equal(t.lookup('/f')!.inode.kind, 'symlink');
    assert.equal(t.lookup('/d')!.stat.mode, 0o40750);
    assert.ok(t.lookup('/d/child'));
    assert.equal(t.lookup('/x')!.inode.kind, 'file');
    assert.equal(t.lookup('/x/y'), undefined);
    assert.deepEqual(names(t, '/'), ['.', '..', 'd', 'f', 'x']);
  });

  it('shares one inode among hard links and counts names, also when a name is replaced', () => {
    const t = tree([
      { path: 'bin/a', type: 'file', data: Buffer.from('a'), mode: 0o4755 },
      { path: 'bin/b', type: 'hardlink', linkTarget: 'bin/a' },
      { path: 'bin/c', type: 'hardlink', linkTarget: '/bin/a' },
      { path: 'bin/c', type: 'file', data: Buffer.from('new c') },
      { path: 'bin/a', type: 'file', data: Buffer.from('new a') },
      { path: 'bin/d', type: 'hardlink', linkTarget: 'bin/b' },
    ]);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => t.lookup(`/bin/${n}`)!.stat);
    assert.equal(b.ino, d.ino, 'd links to what b names');
    assert.equal(b.nlink, 2, 'b and d: a and c were replaced');
    assert.equal(b.mode, 0o104755);
    assert.notEqual(a.ino, b.ino);
    assert.deepEqual([a.nlink, c.nlink], [1, 1]);
  });

  it('leaves out what cannot be applied and reports it', () => {
    const t = tree([
      { path: '../escape', type: 'file' },
      { path: 'dangling', type: 'hardlink', linkTarget: 'missing' },
      { path: 'd/', type: 'dir' },
      { path: 'dirlink', type: 'hardlink', linkTarget: 'd' },
      { path: 'a/.wh.b/c', type: 'file' },
      { path: '.wh.', type: 'file' },
    ]);
    assert.equal(t.problems.length, 5, t.problems.join('\n'));
    assert.deepEqual(names(t, '/'), ['.', '..', 'd']);
  });

  it('turns .wh.<name> into a 0/0 character device unless <name> is real, and marks opaque directories', () => {
    const t = tree([
      { path: 'd/.wh.gone', type: 'file', mtimeMs: 5000 },
      { path: 'd/.wh.real', type: 'file' },
      { path: 'd/real', type: 'file' },
      { path: 'd/.wh..wh..opq', type: 'file' },
      { path: 'd/.wh..wh.plnk/123', type: 'file' },
      { path: 'e/f', type: 'file' },
    ]);
    assert.deepEqual(names(t, '/d').sort(), ['.', '..', 'gone', 'real']);
    const gone = t.lookup('/d/gone')!.stat;
    assert.deepEqual([gone.mode, gone.rdev, gone.size, gone.uid, gone.gid, gone.nlink], [0o20000, 0, 0, 0, 0, 1]);
    assert.equal(t.lookup('/d/real')!.inode.kind, 'file');
    assert.equal(t.lookup('/d/.wh.gone'), undefined);
    assert.equal(t.lookup('/d')!.opaque, true);
    assert.equal(t.lookup('/e')!.opaque, false);
    assert.equal(t.lookup('/d')!.stat.nlink, 2);
  });

  it('gives directories nlink 2 + subdirectories and keeps children in tar order under their parent', () => {
    const t = tree([{ path: 'a/b/', type: 'dir' }, { path: 'a/c/', type: 'dir' }, { path: 'a/f', type: 'file' }]);
    assert.equal(t.lookup('/a')!.stat.nlink, 4);
    assert.equal(t.root.stat.nlink, 3);
    assert.deepEqual(names(t, '/a'), ['.', '..', 'b', 'c', 'f']);
    assert.equal(t.lookup('/a/b')!.parent, t.lookup('/a'));
    assert.equal(t.lookup('/a')!.parent, t.root);
  });

  it('computes sizes, blocks, device numbers, and statfs totals', () => {
    const t = tree([
      { path: 'f', type: 'file', data: Buffer.alloc(1000) },
      { path: 'h', type: 'hardlink', linkTarget: 'f' },
      { path: 'l', type: 'symlink', linkTarget: 'héllo' },
      { path: 'null', type: 'char', devMajor: 1, devMinor: 3 },
    ]);
    assert.deepEqual([t.lookup('/f')!.stat.size, t.lookup('/f')!.stat.blocks], [1000, 2]);
    assert.equal(t.lookup('/l')!.stat.size, Buffer.byteLength('héllo'));
    assert.equal(t.lookup('/null')!.stat.rdev, makedev(1, 3));
    assert.equal(t.fileBytes, 1000, 'hard-linked data counted once');
    assert.equal(t.inodeCount, 4);
  });

  it('encodes device numbers the way the kernel decodes st_rdev', () => {
    assert.equal(makedev(1, 3), 0x103);
    assert.equal(makedev(8, 0), 0x800);
    assert.equal(makedev(511, 70_000), ((70_000 & 0xff) | (511 << 8) | ((70_000 & ~0xff) << 12)) >>> 0);
  });

  it('rejects file data that lies outside the uncompressed stream', () => {
    const layer = buildLayer([{ path: 'f', type: 'file', data: Buffer.from('abc') }]);
    layer.archive.entries[0].dataOffset = layer.archive.uncompressedSize - 1;
    assert.throws(() => LayerTree.build(layer.archive), InvalidArgumentError);
  });
});
