/**
 * Live restart of a layer server, for real (kernel FUSE, clip-fd-holder, separate processes): the mount's
 * connection is kept by the holder when the serving process is killed with SIGKILL, a new process takes it
 * over and serves the same node IDs, a read that was in flight when the server died is answered by the
 * next one (FUSE_NOTIFY_RESEND), and a kept connection that is given up frees its waiting readers and
 * leaves no mount.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { mountAt } from '../../../src/fusefs/mounts';
import { run, startProcess, Started, stopProcess, tempDir, waitFor } from '../../helpers/processes';
import { probe, probeOk } from './probe';

const SERVE_LAYER = path.join(__dirname, 'serve-layer.js');
const TEXT = 'served by a child process\n';

describe('live restart of a layer mount', () => {
  let root: string;
  let socket: string;
  const children: Started[] = [];

  async function serve(dir: string, ...flags: string[]): Promise<Started> {
    const child = startProcess(process.execPath, [SERVE_LAYER, dir, '--handoff', socket, ...flags]);
    children.push(child);
    const done = flags.includes('--abandon') ? 'abandoned' : 'mounted';
    await waitFor(`serve-layer ${flags.join(' ')} on ${dir}`, () => child.output().includes(done) || child.child.exitCode !== null);
    assert.ok(child.output().includes(done), child.output());
    return child;
  }

  async function holderPid(): Promise<number | undefined> {
    const text = await fsp.readFile(`${socket}.pid`, 'utf8').catch(() => '');
    return Number(text.trim()) || undefined;
  }

  before(async () => {
    root = await tempDir('live-restart');
    socket = path.join(root, 'fd-holder.sock');
  });

  after(async () => {
    const failures: unknown[] = [];
    for (const child of children) await stopProcess(child, 'SIGKILL');
    for (const m of await listFuseMounts(root)) await forceUnmount(m.mountPoint, { abortConnection: true }).catch((err: unknown) => failures.push(err));
    const pid = await holderPid();
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if ((await listFuseMounts(root)).length === 0) await fsp.rm(root, { recursive: true, force: true });
    if (failures.length > 0) throw new AggregateError(failures, 'cleanup failed');
  });

  it('keeps the mount across kill -9: the next process serves it, same inode numbers, and a read in flight completes', async () => {
    const dir = path.join(root, 'layer');
    await fsp.mkdir(dir);
    // The first server never answers reads of file bytes (metadata is answered in C).
    const first = await serve(dir, '--hang');
    const mount = await mountAt(dir);
    assert.ok(mount, 'mounted');
    const before = await probeOk<{ ino: number }>('lstat', `${dir}/file`);
    const reading = run('cat', [`${dir}/file`], { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 500));
    await stopProcess(first, 'SIGKILL');
    assert.equal((await mountAt(dir))?.device, mount.device, 'the mount outlives its server');

    await serve(dir);
    const r = await reading;
    assert.equal(r.code, 0, `the read in flight at the kill completes: ${r.stderr}`);
    assert.equal(r.stdout, TEXT);
    const after = await probeOk<{ ino: number }>('lstat', `${dir}/file`);
    assert.equal(after.ino, before.ino, 'same node ID');

    for (let i = 0; i < 2; i++) {
      await stopProcess(children[children.length - 1]!, 'SIGKILL');
      const [listing, read] = await Promise.all([probe([['listdir', dir]]), run('cat', [`${dir}/file`], { timeoutMs: 60_000 }), serve(dir)]);
      assert.deepEqual(listing[0]?.ok, ['file']);
      assert.equal(read.stdout, TEXT);
      assert.equal((await mountAt(dir))?.device, mount.device, 'still the first mount');
    }
  });

  it('a kept connection that is given up frees its waiting readers and leaves no mount', async () => {
    const dir = path.join(root, 'given-up');
    await fsp.mkdir(dir);
    const server = await serve(dir);
    await stopProcess(server, 'SIGKILL');
    const reading = run('cat', [`${dir}/file`], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300));
    await serve(dir, '--abandon');
    const r = await reading;
    assert.notEqual(r.code, 0, 'the waiting read fails instead of hanging');
    assert.match(r.stderr, /Software caused connection abort|Transport endpoint is not connected|Input\/output error/);
    assert.equal(await mountAt(dir), undefined, 'unmounted');
  });
});
