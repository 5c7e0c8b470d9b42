/**
 * Mounting and unmounting for real: refusals, remounting a directory at once, unmounting while a read is
 * in flight, a killed server's mount going away by itself (auto_unmount), and the start-up helpers that
 * find and remove stale and hung mounts (listFuseMounts, forceUnmount).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FailedPreconditionError, UnavailableError } from '../../../src/errors';
import { LayerFilesystem, SpanReader, forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { mountAt } from '../../../src/fusefs/mounts';
import { run, runOk, startProcess, Started, stopProcess, tempDir, waitFor } from '../../helpers/processes';
import { MemorySpanReader, buildLayer, memoryLogger } from './layer-fixture';
import { probe, probeErrno, probeOk } from './probe';

const SERVE_LAYER = path.join(__dirname, 'serve-layer.js');

describe('LayerFilesystem mount lifecycle', () => {
  let root: string;
  const filesystems: LayerFilesystem[] = [];
  const children: Started[] = [];
  const layer = buildLayer([{ path: 'file', type: 'file', data: Buffer.from('hello\n') }]);

  function filesystem(reader: SpanReader = new MemorySpanReader(layer), readTimeoutMs?: number): LayerFilesystem {
    const fs = new LayerFilesystem(layer.archive, reader, { logger: memoryLogger().logger, readTimeoutMs });
    filesystems.push(fs);
    return fs;
  }

  async function directory(name: string): Promise<string> {
    const dir = path.join(root, name);
    await fsp.mkdir(dir);
    return dir;
  }

  async function serveInChild(dir: string, args: string[] = []): Promise<Started> {
    const child = startProcess(process.execPath, [SERVE_LAYER, dir, ...args]);
    children.push(child);
    await waitFor(`a layer served on ${dir}`, () => child.output().includes('mounted') || child.child.exitCode !== null);
    assert.ok(child.output().includes('mounted'), child.output());
    return child;
  }

  before(async () => {
    root = await tempDir('fusefs-life');
  });

  after(async () => {
    const failures: unknown[] = [];
    for (const fs of filesystems) await fs.unmount().catch((err: unknown) => failures.push(err));
    for (const child of children) await stopProcess(child, 'SIGKILL');
    for (const m of await listFuseMounts(root)) await forceUnmount(m.mountPoint, { abortConnection: true }).catch((err: unknown) => failures.push(err));
    if ((await listFuseMounts(root)).length === 0) await fsp.rm(root, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  it('refuses to mount twice or on a directory that is already a mount point', async () => {
    const dir = await directory('twice');
    const first = filesystem();
    await first.mount(dir);
    assert.equal(first.mountpoint, dir);
    await assert.rejects(first.mount(await directory('elsewhere')), FailedPreconditionError);
    await assert.rejects(filesystem().mount(dir), FailedPreconditionError);
    await first.unmount();
    assert.equal(first.mountpoint, undefined);
    const nowhere = filesystem();
    await assert.rejects(nowhere.mount(path.join(root, 'missing')), (err: unknown) => err instanceof UnavailableError && /does not exist/.test(err.message));
    assert.equal(nowhere.mountpoint, undefined);
    await nowhere.unmount(); // never mounted: nothing to do
  });

  it('unmounts idempotently and lets the directory be mounted again at once', async () => {
    const dir = await directory('again');
    const first = filesystem();
    await first.mount(dir);
    await Promise.all([first.unmount(), first.unmount()]);
    await first.unmount();
    assert.equal(await mountAt(dir), undefined);
    const second = filesystem();
    await second.mount(dir);
    // The first mount's auto_unmount helper must not take the new mount with it.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await mountAt(dir))?.fsType, 'fuse.clip');
    assert.equal(await probeOk('read_all', `${dir}/file`), 6);
    await second.unmount();
  });

  it('unmounts at once while a read waits for its spans; the read then fails with EIO', async () => {
    const dir = await directory('busy');
    let spanAsked = false;
    const fs = filesystem({ readSpan: () => ((spanAsked = true), new Promise<Buffer>(() => undefined)) }, 2_000);
    await fs.mount(dir);
    let readDone = false;
    const reading = probe([['read_all', `${dir}/file`]]).finally(() => (readDone = true));
    await waitFor('the read to wait for its span', () => spanAsked, 20_000);
    await fs.unmount();
    assert.equal(readDone, false, 'the unmount did not wait for the read (still waiting for its span)');
    assert.equal(await mountAt(dir), undefined);
    assert.deepEqual(await reading, [{ errno: 'EIO' }]);
  });

  it('lets the mount vanish when the serving process is killed (auto_unmount)', async () => {
    const dir = await directory('killed');
    const child = await serveInChild(dir);
    assert.equal(await probeOk('read_all', `${dir}/file`), 'served by a child process\n'.length);
    await stopProcess(child, 'SIGKILL');
    await waitFor('the mount to go away', async () => (await mountAt(dir)) === undefined, 5_000);
  });

  it('finds a stale mount (server and helper killed) and removes it with forceUnmount', async () => {
    const dir = await directory('stale');
    const child = await serveInChild(dir);
    // As when a service manager kills the daemon's whole cgroup: libfuse's auto_unmount helper (a
    // fusermount in its own session) dies too, and nothing cleans up.
    const helpers = (await runOk('pgrep', ['-P', String(child.pid), 'fusermount'])).trim().split('\n');
    assert.equal(helpers.length, 1);
    process.kill(Number(helpers[0]), 'SIGKILL');
    await stopProcess(child, 'SIGKILL');
    assert.equal(await probeErrno('lstat', `${dir}/file`), 'ENOTCONN');
    const found = await listFuseMounts(root);
    assert.deepEqual(
      found.map((m) => [m.mountPoint, m.fsType]),
      [[dir, 'fuse.clip']],
    );
    assert.match(found[0].source, /^clip:sha256:[0-9a-f]{64}$/, 'the source names the layer');
    await forceUnmount(dir);
    assert.equal(await mountAt(dir), undefined);
    assert.deepEqual(await listFuseMounts(root), []);
    await forceUnmount(dir); // nothing mounted: nothing to do
  });

  it('frees a mount whose server hangs with forceUnmount({ abortConnection })', async () => {
    const dir = await directory('hung');
    const child = await serveInChild(dir, ['--hang']);
    const reading = run('cat', [`${dir}/file`], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 500));
    await forceUnmount(dir, { abortConnection: true });
    const r = await reading;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Software caused connection abort|Transport endpoint is not connected/, 'the reader was freed by the abort, not by its own timeout');
    assert.equal(await mountAt(dir), undefined);
    await stopProcess(child, 'SIGKILL');
  });
});
