/**
 * The native servers' operation statistics (native/fuse_stats.c) on real FUSE mounts: requests answered in
 * C and reads answered by JavaScript are counted with their latency, error replies by errno (including the
 * EIO the read deadline gives), reads waiting on JavaScript are seen while they wait, and nothing is counted
 * while statistics are off. Requests come from child processes (probe.ts).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LayerFilesystem, SpanReader, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { readsWaitingLongerThan } from '../../../src/fusefs/layer-filesystem';
import { FuseStats, fuseStats, setFuseStats } from '../../../src/fusefs/layer-server';
import { tempDir, waitFor } from '../../helpers/processes';
import { FixtureLayer, MemorySpanReader, buildLayer, memoryLogger, patternBytes } from './layer-fixture';
import { probeErrno, probeOk } from './probe';

function op(stats: FuseStats, name: string): { count: number; buckets: number; errors: Record<string, number> } {
  const i = stats.operations.indexOf(name);
  assert.ok(i >= 0, `operation ${name}`);
  const errors: Record<string, number> = {};
  stats.errnos.forEach((errno, e) => (errors[errno] = stats.errors[i]![e]!));
  return { count: stats.count[i]!, buckets: stats.buckets[i]!.reduce((a, b) => a + b, 0), errors };
}

describe('FUSE operation statistics', () => {
  let dir = '';
  const filesystems: LayerFilesystem[] = [];
  let layer: FixtureLayer;

  async function mount(name: string, reader: SpanReader, readTimeoutMs?: number): Promise<string> {
    const mnt = path.join(dir, name);
    await fsp.mkdir(mnt);
    const fs = new LayerFilesystem(layer.archive, reader, { logger: memoryLogger().logger, readTimeoutMs });
    filesystems.push(fs);
    await fs.mount(mnt);
    return mnt;
  }

  before(async () => {
    dir = await tempDir('fuse-stats');
    layer = buildLayer([
      { path: 'd/', type: 'dir' },
      { path: 'd/f', type: 'file', data: patternBytes(100_000, 3) },
    ]);
    setFuseStats(true);
  });

  after(async () => {
    setFuseStats(false);
    for (const fs of filesystems) await fs.unmount().catch(() => undefined);
    for (const m of await listFuseMounts(dir)) await forceUnmount(m.mountPoint, { abortConnection: true }).catch(() => undefined);
    if ((await listFuseMounts(dir)).length === 0) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('counts lookups answered in C and reads answered by JavaScript, each in one latency bucket', async () => {
    const mnt = await mount('ok', new MemorySpanReader(layer));
    const before = fuseStats();
    await probeOk('sha256', `${mnt}/d/f`);
    assert.equal(await probeErrno('lstat', `${mnt}/d/missing`), 'ENOENT');
    const now = fuseStats();
    assert.ok(op(now, 'lookup').count >= op(before, 'lookup').count + 3, 'lookups of d, f and missing');
    assert.ok(op(now, 'read').count > op(before, 'read').count, 'reads');
    for (const name of now.operations) assert.equal(op(now, name).buckets, op(now, name).count, `${name}: every request in one bucket`);
    assert.equal(op(now, 'lookup').errors.ENOENT, op(before, 'lookup').errors.ENOENT, 'a missing name is a negative entry, not an error');
    assert.equal(op(now, 'read').errors.EIO, op(before, 'read').errors.EIO);
    const r = now.operations.indexOf('read');
    assert.ok(now.sumSeconds[r]! > before.sumSeconds[now.operations.indexOf('read')]!, 'read latency summed');
  });

  it('counts a failed read as EIO, and a read past its deadline too, while telling how many reads wait', async () => {
    const failing = await mount('failing', { readSpan: () => Promise.reject(new Error('registry unreachable')) });
    const before = op(fuseStats(), 'read').errors.EIO!;
    assert.equal(await probeErrno('read_all', `${failing}/d/f`), 'EIO');
    const afterFailure = op(fuseStats(), 'read').errors.EIO!;
    assert.ok(afterFailure > before, 'failed read counted');

    const hanging = await mount('hanging', { readSpan: () => new Promise<Buffer>(() => undefined) }, 3000);
    const read = probeErrno('pread', `${hanging}/d/f`, 0, 4096);
    await waitFor('a read to wait on JavaScript', () => readsWaitingLongerThan(100) >= 1, 10_000);
    assert.equal(await read, 'EIO');
    assert.equal(readsWaitingLongerThan(0), 0, 'answered by the deadline: nothing waits any more');
    assert.ok(op(fuseStats(), 'read').errors.EIO! > afterFailure, 'the deadline EIO counted');
  });

  it('counts nothing while statistics are off', async () => {
    const mnt = await mount('off', new MemorySpanReader(layer));
    setFuseStats(false);
    try {
      const before = fuseStats();
      await probeOk('sha256', `${mnt}/d/f`);
      assert.deepEqual(fuseStats(), before);
    } finally {
      setFuseStats(true);
    }
  });
});
