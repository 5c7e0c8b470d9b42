/**
 * The table the native FUSE server answers from, decoded here field by field (the layout documented at
 * the top of src/fusefs/native/clip_fuse.c). The server's behaviour on it is tested through the kernel in
 * test/integration/fusefs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LayerTree } from '../../../src/fusefs/layer-tree';
import { encodeLayerTable } from '../../../src/fusefs/native-table';
import { buildLayer } from '../../integration/fusefs/layer-fixture';

interface Decoded {
  header: number[];
  fileBytes: bigint;
  inodes: Array<{ fields: number[]; size: bigint; dataOffset: bigint; mtimeNs: bigint }>;
  dirents: number[][];
  xattrs: number[][];
  bounds: bigint[];
  pool: Buffer;
}

function decode(b: Buffer): Decoded {
  const header = [0, 4, 8, 12, 16, 20, 24, 28].map((o) => b.readUInt32LE(o));
  const [, inodeCount, direntCount, xattrCount, spanCount, poolLen] = header;
  let at = 40;
  const inodes = Array.from({ length: inodeCount }, () => {
    const fields = Array.from({ length: 12 }, (_, k) => b.readUInt32LE(at + 4 * k));
    const rec = { fields, size: b.readBigUInt64LE(at + 48), dataOffset: b.readBigUInt64LE(at + 56), mtimeNs: b.readBigUInt64LE(at + 64) };
    at += 72;
    return rec;
  });
  const rows = (n: number, width: number): number[][] =>
    Array.from({ length: n }, () => {
      const row = Array.from({ length: width }, (_, k) => b.readUInt32LE(at + 4 * k));
      at += 4 * width;
      return row;
    });
  const dirents = rows(direntCount, 3);
  const xattrs = rows(xattrCount, 4);
  const bounds = Array.from({ length: spanCount + 1 }, () => {
    const v = b.readBigUInt64LE(at);
    at += 8;
    return v;
  });
  const pool = b.subarray(at);
  assert.equal(pool.length, poolLen, 'the pool fills the rest of the table');
  return { header, fileBytes: b.readBigUInt64LE(32), inodes, dirents, xattrs, bounds, pool };
}

describe('native layer table', () => {
  const data = Buffer.from('hello, table\n');
  const layer = buildLayer(
    [
      { path: 'bin/', type: 'dir' },
      { path: 'bin/tool', type: 'file', data, mode: 0o4755, mtimeMs: 1_600_000_000_123.5, xattrs: { 'user.k': Buffer.from('v') } },
      { path: 'bin/again', type: 'hardlink', linkTarget: 'bin/tool' },
      { path: 'link', type: 'symlink', linkTarget: 'bin/tool' },
      { path: 'opq/.wh..wh..opq', type: 'file' },
      { path: 'tty', type: 'char', devMajor: 5, devMinor: 0 },
    ],
    4096,
  );
  const tree = LayerTree.build(layer.archive);
  const bounds = [...layer.archive.checkpoints.map((c) => c.uncompressedOffset), layer.archive.uncompressedSize];
  const { bytes, nodes } = encodeLayerTable({ tree, bounds, opaqueXattrNames: ['trusted.overlay.opaque'] });
  const t = decode(bytes);
  const name = (off: number, len: number): string => t.pool.subarray(off, off + len).toString();
  const childrenOf = (ino: number): Map<string, number> => {
    const f = t.inodes[ino - 1].fields;
    return new Map(t.dirents.slice(f[8], f[8] + f[9]).map(([child, off, len]) => [name(off, len), child]));
  };

  it('has the magic, the counts, the xattr flag and the statfs byte total', () => {
    assert.equal(t.header[0], 0x31544c43);
    assert.equal(t.header[1], tree.inodeCount);
    assert.equal(t.header[6], 1, 'some inode has xattrs');
    assert.equal(t.fileBytes, BigInt(tree.fileBytes));
    assert.deepEqual(t.bounds, bounds.map(BigInt));
  });

  it('records each inode once at its number, hard links sharing it, with the node list to match', () => {
    const root = childrenOf(1);
    assert.deepEqual([...root.keys()], ['bin', 'link', 'opq', 'tty']);
    const bin = childrenOf(root.get('bin')!);
    assert.equal(bin.get('tool'), bin.get('again'));
    const tool = t.inodes[bin.get('tool')! - 1];
    assert.equal(tool.fields[0], 0o100000 | 0o4755);
    assert.equal(tool.fields[3], 2, 'nlink');
    assert.equal(tool.size, BigInt(data.length));
    assert.equal(tool.dataOffset, BigInt(tree.lookup('/bin/tool')!.inode.dataOffset));
    assert.equal(tool.mtimeNs, 1_600_000_000_123_500_000n);
    assert.equal(nodes[bin.get('tool')! - 1].inode, tree.lookup('/bin/again')!.inode);
    assert.equal(nodes.length, t.inodes.length);
  });

  it('keeps symlink targets NUL-terminated, device numbers, and xattrs with the opaque marker', () => {
    const root = childrenOf(1);
    const link = t.inodes[root.get('link')! - 1].fields;
    assert.equal(name(link[6], link[7]), 'bin/tool');
    assert.equal(t.pool[link[6] + link[7]], 0);
    const tty = t.inodes[root.get('tty')! - 1].fields;
    assert.deepEqual([tty[4], tty[5]], [5, 0]);
    const xattrsOf = (ino: number): Record<string, string> => {
      const f = t.inodes[ino - 1].fields;
      return Object.fromEntries(t.xattrs.slice(f[10], f[10] + f[11]).map(([no, nl, vo, vl]) => [name(no, nl), name(vo, vl)]));
    };
    assert.deepEqual(xattrsOf(root.get('opq')!), { 'trusted.overlay.opaque': 'y' });
    assert.deepEqual(xattrsOf(childrenOf(root.get('bin')!).get('tool')!), { 'user.k': 'v' });
    assert.deepEqual(xattrsOf(1), {});
  });

  it('clears the xattr flag for a layer without any attribute', () => {
    const plain = buildLayer([{ path: 'f', type: 'file', data }]);
    const table = encodeLayerTable({ tree: LayerTree.build(plain.archive), bounds: [0, plain.archive.uncompressedSize], opaqueXattrNames: [] });
    assert.equal(table.bytes.readUInt32LE(24), 0);
  });
});
