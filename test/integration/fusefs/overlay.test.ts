/**
 * The real use of a layer mount: the kernel's overlayfs stacking two FUSE layers as lowerdirs with a
 * writable upper directory, as a container's root filesystem. The upper layer's whiteouts and opaque
 * directory must be honoured, and writes must copy up.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LayerFilesystem, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { mountAt } from '../../../src/fusefs/mounts';
import { run, runOk, tempDir } from '../../helpers/processes';
import { MemorySpanReader, buildLayer, memoryLogger, patternBytes } from './layer-fixture';
import { PYTHON, probe, probeOk } from './probe';

const S_IFCHR = 0o020000;

function hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('overlayfs over two FUSE layers', () => {
  let root: string;
  let merged: string;
  let upper: string;
  const layers: LayerFilesystem[] = [];
  const big = patternBytes(3 << 20, 11);

  const lowerLayer = buildLayer([
    { path: 'a.txt', type: 'file', data: Buffer.from('lower a\n') },
    { path: 'keep.txt', type: 'file', data: Buffer.from('lower keep\n') },
    { path: 'big.bin', type: 'file', data: big },
    { path: 'dir/x', type: 'file', data: Buffer.from('x') },
    { path: 'dir/y', type: 'file', data: Buffer.from('y') },
    { path: 'shared/one', type: 'file', data: Buffer.from('1') },
    { path: 'gone-dir/inside', type: 'file', data: Buffer.from('inside') },
  ]);
  const upperLayer = buildLayer([
    { path: '.wh.a.txt', type: 'file' },
    { path: '.wh.gone-dir', type: 'file' },
    { path: 'dir/', type: 'dir' },
    { path: 'dir/.wh..wh..opq', type: 'file' },
    { path: 'dir/z', type: 'file', data: Buffer.from('z') },
    { path: 'shared/two', type: 'file', data: Buffer.from('2') },
    { path: 'new.txt', type: 'file', data: Buffer.from('upper new\n') },
  ]);

  before(async () => {
    root = await tempDir('fusefs-overlay');
    const dir = (name: string): string => path.join(root, name);
    for (const name of ['lower', 'upper-layer', 'rw', 'work', 'merged']) await fsp.mkdir(dir(name));
    upper = dir('rw');
    merged = dir('merged');
    for (const [layer, mountpoint] of [
      [lowerLayer, dir('lower')],
      [upperLayer, dir('upper-layer')],
    ] as const) {
      const fs = new LayerFilesystem(layer.archive, new MemorySpanReader(layer), { logger: memoryLogger().logger });
      layers.push(fs);
      await fs.mount(mountpoint);
    }
    await runOk('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir('upper-layer')}:${dir('lower')},upperdir=${upper},workdir=${dir('work')}`, merged]);
  });

  after(async () => {
    const failures: unknown[] = [];
    // The overlay first: it holds the FUSE layers.
    if (merged && (await mountAt(merged))) {
      const r = await run('umount', [merged], { timeoutMs: 30_000 });
      if (r.code !== 0) await run('umount', ['-l', merged], { timeoutMs: 30_000 });
      if (await mountAt(merged)) failures.push(new Error(`overlay on ${merged} is still mounted`));
    }
    for (const fs of layers) await fs.unmount().catch((err: unknown) => failures.push(err));
    for (const m of await listFuseMounts(root)) await forceUnmount(m.mountPoint).catch((err: unknown) => failures.push(err));
    if ((await listFuseMounts(root)).length === 0 && !(await mountAt(merged))) await fsp.rm(root, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  it('shows the merged tree with the upper layer whiteouts and opaque directory applied', async () => {
    const [top, a, goneDir, dir, shared, keep, newFile, bigSum] = await probe([
      ['listdir', merged],
      ['lstat', `${merged}/a.txt`],
      ['lstat', `${merged}/gone-dir`],
      ['listdir', `${merged}/dir`],
      ['listdir', `${merged}/shared`],
      ['sha256', `${merged}/keep.txt`],
      ['sha256', `${merged}/new.txt`],
      ['sha256', `${merged}/big.bin`],
    ]);
    assert.deepEqual(top.ok, ['big.bin', 'dir', 'keep.txt', 'new.txt', 'shared']);
    assert.equal(a.errno, 'ENOENT', 'a file deleted by a whiteout in the upper layer');
    assert.equal(goneDir.errno, 'ENOENT', 'a directory deleted by a whiteout in the upper layer');
    assert.deepEqual(dir.ok, ['z'], 'an opaque directory hides the lower children');
    assert.deepEqual(shared.ok, ['one', 'two'], 'a plain directory merges');
    assert.equal(keep.ok, hex(Buffer.from('lower keep\n')));
    assert.equal(newFile.ok, hex(Buffer.from('upper new\n')));
    assert.equal(bigSum.ok, hex(big));
  });

  it('copies a lower file up on write and leaves the FUSE layer untouched', async () => {
    await runOk('sh', ['-c', `echo more >> ${merged}/keep.txt`]);
    const patch = Buffer.from('patched!');
    await runOk(PYTHON, ['-c', `import os\nfd = os.open(${JSON.stringify(`${merged}/big.bin`)}, os.O_WRONLY)\nos.pwrite(fd, b"patched!", 1 << 20)\nos.close(fd)`]);
    const expectedBig = Buffer.from(big);
    patch.copy(expectedBig, 1 << 20);
    const [keep, copied, lowerKeep, bigMerged, bigUpper, bigLower] = await probe([
      ['sha256', `${merged}/keep.txt`],
      ['sha256', `${upper}/keep.txt`],
      ['sha256', `${root}/lower/keep.txt`],
      ['sha256', `${merged}/big.bin`],
      ['sha256', `${upper}/big.bin`],
      ['sha256', `${root}/lower/big.bin`],
    ]);
    assert.equal(keep.ok, hex(Buffer.from('lower keep\nmore\n')));
    assert.equal(copied.ok, keep.ok);
    assert.equal(lowerKeep.ok, hex(Buffer.from('lower keep\n')));
    assert.equal(bigMerged.ok, hex(expectedBig));
    assert.equal(bigUpper.ok, hex(expectedBig));
    assert.equal(bigLower.ok, hex(big));
  });

  it('creates new files and records deletions of lower files as whiteouts in the upper directory', async () => {
    await runOk('sh', ['-c', `echo created > ${merged}/created.txt && rm ${merged}/shared/one`]);
    const [created, one, whiteout, lowerOne] = await probe([
      ['sha256', `${upper}/created.txt`],
      ['lstat', `${merged}/shared/one`],
      ['lstat', `${upper}/shared/one`],
      ['exists', `${root}/lower/shared/one`],
    ]);
    assert.equal(created.ok, hex(Buffer.from('created\n')));
    assert.equal(one.errno, 'ENOENT');
    assert.deepEqual([whiteout.ok.mode, whiteout.ok.major, whiteout.ok.minor], [S_IFCHR, 0, 0]);
    assert.equal(lowerOne.ok, true);
    assert.deepEqual(await probeOk('listdir', `${merged}/shared`), ['two']);
  });
});
