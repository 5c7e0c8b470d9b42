/**
 * The handlers called directly, without a kernel: the parts of their contract a mount cannot show (the
 * kernel answers EROFS itself on a read-only mount, and only asks for what it needs).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EINVAL, EIO, EISDIR, ENODATA, ENOENT, ENOSYS, ENOTDIR, ERANGE, EROFS, FuseErrorReporter } from '../../../src/fusefs/errno';
import type { LayerOperations } from '../../../src/fusefs/fuse-binding';
import { layerOperations } from '../../../src/fusefs/layer-operations';
import { LayerStream } from '../../../src/fusefs/layer-stream';
import { LayerTree } from '../../../src/fusefs/layer-tree';
import type { SpanReader } from '../../../src/fusefs/span-reader';
import { FixtureEntry, MemorySpanReader, buildLayer, memoryLogger } from '../../integration/fusefs/layer-fixture';

function operations(entries: FixtureEntry[], reader?: (memory: MemorySpanReader) => SpanReader, readTimeoutMs = 1000) {
  const layer = buildLayer(entries, 1024);
  const memory = new MemorySpanReader(layer);
  const { logger, lines } = memoryLogger();
  const ops = layerOperations(
    LayerTree.build(layer.archive),
    new LayerStream(layer.archive, reader ? reader(memory) : memory, 1 << 20),
    new FuseErrorReporter(logger, 'layer test'),
    { readTimeoutMs, opaqueXattrNames: ['trusted.overlay.opaque'] },
  );
  return { ops, lines, memory };
}

/** Calls a callback-style handler and returns the callback's arguments. */
function call(fn: (...args: any[]) => void, ...args: unknown[]): Promise<unknown[]> {
  return new Promise((resolve) => fn(...args, (...result: unknown[]) => resolve(result)));
}

async function read(ops: LayerOperations, path: string, length: number, position: number): Promise<[number, Buffer]> {
  const buffer = Buffer.alloc(length);
  const [result] = (await call(ops.read, path, 0, buffer, length, position)) as [number];
  return [result, buffer.subarray(0, Math.max(result, 0))];
}

describe('layer operations', () => {
  const data = Buffer.from('0123456789'.repeat(500));
  const entries: FixtureEntry[] = [
    { path: 'f', type: 'file', data, xattrs: { 'user.k': Buffer.from('value') } },
    { path: 'd/.wh..wh..opq', type: 'file' },
    { path: 'l', type: 'symlink', linkTarget: 'f' },
  ];

  it('answers the xattr size protocol: length for size 0, ERANGE when too small, the value otherwise', async () => {
    const { ops } = operations(entries);
    assert.deepEqual(await call(ops.getxattr, '/f', 'user.k', 0), [5]);
    assert.deepEqual(await call(ops.getxattr, '/f', 'user.k', 4), [ERANGE]);
    assert.deepEqual(await call(ops.getxattr, '/f', 'user.k', 5), [5, Buffer.from('value')]);
    assert.deepEqual(await call(ops.getxattr, '/f', 'user.nope', 64), [ENODATA]);
    assert.deepEqual(await call(ops.getxattr, '/nope', 'user.k', 64), [ENOENT]);
    assert.deepEqual(await call(ops.getxattr, '/d', 'trusted.overlay.opaque', 64), [1, Buffer.from('y')]);
    assert.deepEqual(await call(ops.listxattr, '/d', 0), [23]);
    assert.deepEqual(await call(ops.listxattr, '/d', 22), [ERANGE]);
    assert.deepEqual(await call(ops.listxattr, '/d', 100), [23, Buffer.from('trusted.overlay.opaque\0')]);
    assert.deepEqual(await call(ops.listxattr, '/', 100), [0, Buffer.alloc(0)]);
  });

  it('switches getxattr off (ENOSYS) on a layer without any attribute, and still lists none', async () => {
    const { ops } = operations([{ path: 'f', type: 'file', data }, { path: 'd/g', type: 'file' }]);
    assert.deepEqual(await call(ops.getxattr, '/f', 'trusted.overlay.metacopy', 64), [ENOSYS]);
    assert.deepEqual(await call(ops.getxattr, '/d', 'trusted.overlay.opaque', 64), [ENOSYS]);
    assert.deepEqual(await call(ops.listxattr, '/f', 100), [0, Buffer.alloc(0)]);
    const opaqueOnly = operations([{ path: 'd/.wh..wh..opq', type: 'file' }]);
    assert.deepEqual(await call(opaqueOnly.ops.getxattr, '/d', 'trusted.overlay.opaque', 64), [1, Buffer.from('y')], 'an opaque directory keeps it on');
  });

  it('answers EROFS to every write', async () => {
    const { ops } = operations(entries);
    const writes: [keyof LayerOperations, unknown[]][] = [
      ['create', ['/n', 0o644]],
      ['write', ['/f', 0, Buffer.alloc(1), 1, 0]],
      ['truncate', ['/f', 0]],
      ['ftruncate', ['/f', 0, 0]],
      ['mkdir', ['/n', 0o755]],
      ['mknod', ['/n', 0o644, 0]],
      ['unlink', ['/f']],
      ['rmdir', ['/d']],
      ['rename', ['/f', '/g']],
      ['link', ['/f', '/g']],
      ['symlink', ['/f', '/g']],
      ['chmod', ['/f', 0o600]],
      ['chown', ['/f', 1, 1]],
      ['utimens', ['/f', new Date(), new Date()]],
      ['setxattr', ['/f', 'user.k', Buffer.from('v'), 1, 0]],
      ['removexattr', ['/f', 'user.k']],
    ];
    for (const [op, args] of writes) assert.deepEqual(await call(ops[op] as (...a: unknown[]) => void, ...args), [EROFS], op);
  });

  it('answers ENOENT, ENOTDIR, EINVAL and EISDIR where they belong', async () => {
    const { ops } = operations(entries);
    assert.deepEqual(await call(ops.getattr!, '/nope'), [ENOENT]);
    assert.deepEqual(await call(ops.readdir!, '/f'), [ENOTDIR]);
    assert.deepEqual(await call(ops.readlink!, '/f'), [EINVAL]);
    assert.deepEqual(await call(ops.readlink!, '/l'), [0, 'f']);
    assert.deepEqual((await read(ops, '/d', 10, 0))[0], EISDIR);
  });

  it('reads across spans, short at the end of the file, nothing beyond it', async () => {
    const { ops } = operations(entries);
    assert.deepEqual(await read(ops, '/f', 3000, 900), [3000, data.subarray(900, 3900)]);
    assert.deepEqual(await read(ops, '/f', 3000, 4000), [1000, data.subarray(4000)]);
    assert.deepEqual(await read(ops, '/f', 10, 5000), [0, Buffer.alloc(0)]);
    assert.deepEqual(await read(ops, '/f', 10, 99_999), [0, Buffer.alloc(0)]);
  });

  it('answers EIO once, logged once, when a span fails, and never touches the buffer afterwards', async () => {
    let release: (b: Buffer) => void = () => undefined;
    const { ops, lines } = operations(entries, (memory) => ({
      readSpan: (i) => (i === 0 ? memory.readSpan(i) : new Promise<Buffer>((resolve) => (release = resolve))),
    }), 50);
    const buffer = Buffer.alloc(4000, 0xee);
    const results: unknown[][] = [];
    await new Promise<void>((resolve) =>
      ops.read('/f', 0, buffer, 4000, 0, (...r) => {
        results.push(r);
        resolve();
      }),
    );
    assert.deepEqual(results, [[EIO]]);
    release(Buffer.alloc(1024));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(results, [[EIO]], 'one answer only');
    assert.ok(buffer.every((b) => b === 0xee), 'a late span is not copied into the kernel buffer');
    const errors = lines.filter((l) => l.startsWith('error'));
    assert.equal(errors.length, 1, lines.join('\n'));
    assert.match(errors[0], /^error layer test: read \/f: \[0, 4000\): no data within 50 ms \(errno 5\)$/);
  });
});
