/**
 * Measurements, reported and not asserted (they depend on the machine): sequential reads of a 256 MiB
 * file cold and from the page cache, with small and large spans, and metadata costs over 10,000 files.
 * The SpanReader serves from memory, so these are the costs of FUSE and this filesystem alone.
 */
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LayerFilesystem, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { run, tempDir } from '../../helpers/processes';
import { FixtureEntry, FixtureLayer, MemorySpanReader, buildLayer, memoryLogger } from './layer-fixture';
import { probeOk } from './probe';

const MiB = 1 << 20;
const BIG = 256 * MiB;
const FILES = 10_000;

/** The same stream cut into spans of another size. */
function withSpanSize(layer: FixtureLayer, spanSize: number): FixtureLayer {
  const checkpoints = [];
  for (let at = 0; at < layer.stream.length; at += spanSize) checkpoints.push({ compressedOffset: at, bits: 0, uncompressedOffset: at, window: Buffer.alloc(0) });
  // MemorySpanReader does not verify spans: any well-formed digest will do.
  return { stream: layer.stream, archive: { ...layer.archive, checkpoints, spanDigests: checkpoints.map(() => `sha256:${'0'.repeat(64)}`) } };
}

/** Reads a file sequentially with dd in 1 MiB blocks; MB/s (10^6 bytes) as measured around the child. */
async function ddRead(file: string): Promise<number> {
  const started = process.hrtime.bigint();
  const r = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 300_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  assert.equal(r.code, 0, r.stderr);
  return BIG / 1e6 / seconds;
}

describe('LayerFilesystem performance (measured, not asserted)', () => {
  let root: string;
  let layer: FixtureLayer;
  const filesystems: LayerFilesystem[] = [];

  before(async () => {
    root = await tempDir('fusefs-perf');
    const entries: FixtureEntry[] = [{ path: 'big.bin', type: 'file', data: randomFillSync(Buffer.alloc(BIG)) }];
    for (let i = 0; i < FILES; i++) entries.push({ path: `many/file-${i}`, type: 'file', data: Buffer.from(`file ${i}\n`) });
    layer = buildLayer(entries, 64 * 1024);
  });

  after(async () => {
    const failures: unknown[] = [];
    for (const fs of filesystems) await fs.unmount().catch((err: unknown) => failures.push(err));
    for (const m of await listFuseMounts(root)) await forceUnmount(m.mountPoint).catch((err: unknown) => failures.push(err));
    if ((await listFuseMounts(root)).length === 0) await fsp.rm(root, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  async function mount(name: string, l: FixtureLayer): Promise<{ mnt: string; reader: MemorySpanReader }> {
    const mnt = path.join(root, name);
    await fsp.mkdir(mnt);
    const reader = new MemorySpanReader(l);
    const fs = new LayerFilesystem(l.archive, reader, { logger: memoryLogger().logger });
    filesystems.push(fs);
    await fs.mount(mnt);
    return { mnt, reader };
  }

  for (const spanSize of [64 * 1024, 4 * MiB]) {
    it(`sequential read of a 256 MiB file, ${spanSize / 1024} KiB spans`, async (t) => {
      const { mnt, reader } = await mount(`seq-${spanSize}`, withSpanSize(layer, spanSize));
      const cold = await ddRead(`${mnt}/big.bin`);
      const spanCalls = reader.calls;
      const hot = await ddRead(`${mnt}/big.bin`);
      const report = `256 MiB sequential read, ${spanSize / 1024} KiB spans: cold ${cold.toFixed(0)} MB/s, hot ${hot.toFixed(0)} MB/s; SpanReader calls: ${spanCalls} cold (${Math.ceil(BIG / spanSize)} spans), ${reader.calls - spanCalls} hot`;
      t.diagnostic(report);
      console.log(`# ${report}`);
    });
  }

  it('stat, list and read 10,000 files', async (t) => {
    const { mnt } = await mount('meta', layer);
    const dir = `${mnt}/many`;
    const cold = await probeOk<{ count: number; seconds: number }>('lstat_all', dir);
    const hot = await probeOk<{ count: number; seconds: number }>('lstat_all', dir);
    let started = Date.now();
    const ls = await run('ls', ['-l', dir], { timeoutMs: 120_000 });
    const lsMs = Date.now() - started;
    assert.equal(ls.code, 0);
    const reads = await probeOk<{ count: number; seconds: number }>('read_files', dir);
    const readsAgain = await probeOk<{ count: number; seconds: number }>('read_files', dir);
    const { mnt: fresh } = await mount('meta-cold-ls', layer);
    started = Date.now();
    const lsCold = await run('ls', ['-l', `${fresh}/many`], { timeoutMs: 120_000 });
    const lsColdMs = Date.now() - started;
    assert.equal(lsCold.code, 0);
    assert.equal(cold.count, FILES);
    const report =
      `10,000 files: lstat each cold ${(cold.seconds * 1000).toFixed(0)} ms, hot ${(hot.seconds * 1000).toFixed(0)} ms; ` +
      `ls -l cold ${lsColdMs} ms, hot ${lsMs} ms; open+read each ${(reads.seconds * 1000).toFixed(0)} ms, again ${(readsAgain.seconds * 1000).toFixed(0)} ms`;
    t.diagnostic(report);
    console.log(`# ${report}`);
  });
});
