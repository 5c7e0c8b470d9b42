/**
 * Drives the real `clip serve` over its gRPC unix socket: every RPC, the status codes containerd reacts
 * to (containerd's errgrpc mapping and snapshots/proxy client), and the socket's permissions.
 */
import { status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { ClipDaemon, startClip } from '../helpers/clip-daemon';
import { tempDir } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';

async function rejectsWith(p: Promise<unknown>, code: status, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: { code?: number; details?: string }) => {
    assert.equal(err.code, code, `expected ${status[code]}, got ${String(err.code)}: ${err.details}`);
    if (message) assert.match(err.details ?? '', message);
    return true;
  });
}

describe('Snapshots gRPC service', () => {
  let dir: string;
  let clip: ClipDaemon;
  let client: TestSnapshotsClient;

  before(async () => {
    dir = await tempDir('grpc');
    clip = await startClip(path.join(dir, 'root'), path.join(dir, 'clip.sock'));
    client = new TestSnapshotsClient(clip.address);
  });
  after(async () => {
    client?.close();
    await clip?.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('listens on a socket only root can use', async () => {
    const st = await fsp.stat(clip.address);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  it('prepares, commits and stacks layers like overlayfs', async () => {
    const key = 'default/1/extract-1 sha256:l1';
    const labels = { 'containerd.io/snapshot.ref': 'sha256:l1' };
    const m1 = await client.prepare(key, '', labels);
    assert.deepEqual(m1.map((m) => [m.type, m.options]), [['bind', ['rw', 'rbind']]]);
    await fsp.writeFile(path.join(m1[0]!.source, 'file'), 'layer one');

    const active = await client.stat(key);
    assert.equal(active.kind, Kind.ACTIVE);
    assert.deepEqual(active.labels, labels);
    assert.ok((active.createdAt?.seconds ?? 0) > 1_700_000_000, 'real timestamps');

    await client.commit('default/2/sha256:l1', key, { 'containerd.io/snapshot.ref': 'sha256:l1', x: 'y' });
    const committed = await client.stat('default/2/sha256:l1');
    assert.equal(committed.kind, Kind.COMMITTED);
    assert.equal(committed.labels['x'], 'y');
    const usage = await client.usage('default/2/sha256:l1');
    assert.equal(usage.inodes, 2);
    assert.ok(usage.size > 0);

    const m2 = await client.prepare('default/3/extract-2 sha256:l2', 'default/2/sha256:l1');
    assert.equal(m2[0]!.type, 'overlay');
    assert.equal(m2[0]!.source, 'overlay');
    const opts = m2[0]!.options;
    assert.ok(opts.some((o) => o.startsWith('workdir=')) && opts.some((o) => o.startsWith('upperdir=')));
    assert.ok(opts.includes(`lowerdir=${m1[0]!.source}`));
    assert.deepEqual(await client.mounts('default/3/extract-2 sha256:l2'), m2);
    await client.commit('default/4/sha256:l2', 'default/3/extract-2 sha256:l2');

    const view = await client.view('default/5/view', 'default/4/sha256:l2');
    assert.equal(view[0]!.type, 'overlay');
    assert.equal((await client.stat('default/5/view')).kind, Kind.VIEW);
    const view1 = await client.view('default/6/view1', 'default/2/sha256:l1');
    assert.deepEqual(view1.map((m) => [m.type, m.source, m.options]), [['bind', m1[0]!.source, ['ro', 'rbind']]]);
  });

  it('answers each error case with the code containerd expects', async () => {
    await rejectsWith(client.prepare('default/5/view', ''), status.ALREADY_EXISTS, /already exists/);
    await rejectsWith(client.prepare('k', 'missing parent'), status.NOT_FOUND, /not found/);
    await rejectsWith(client.prepare('k', 'default/5/view'), status.INVALID_ARGUMENT);
    await rejectsWith(client.view('k', 'missing parent'), status.NOT_FOUND);
    await rejectsWith(client.mounts('default/4/sha256:l2'), status.FAILED_PRECONDITION, /not active or view/);
    await rejectsWith(client.mounts('missing'), status.NOT_FOUND);
    await rejectsWith(client.commit('c', 'default/5/view'), status.FAILED_PRECONDITION);
    await rejectsWith(client.commit('c', 'missing'), status.NOT_FOUND);
    const key = 'default/7/extract dup';
    await client.prepare(key, 'default/4/sha256:l2');
    await rejectsWith(client.commit('default/2/sha256:l1', key), status.ALREADY_EXISTS);
    await client.remove(key);
    await rejectsWith(client.remove('default/2/sha256:l1'), status.FAILED_PRECONDITION, /child/);
    await rejectsWith(client.remove('missing'), status.NOT_FOUND);
    await rejectsWith(client.stat('missing'), status.NOT_FOUND);
    await rejectsWith(client.usage('missing'), status.NOT_FOUND);
    await rejectsWith(client.update({ name: 'missing' }), status.NOT_FOUND);
    await rejectsWith(client.update({ name: 'default/2/sha256:l1' }, ['kind']), status.INVALID_ARGUMENT);
    await rejectsWith(client.list(['labels."unterminated']), status.INVALID_ARGUMENT);
    await rejectsWith(client.prepare('big', '', { k: 'v'.repeat(4096) }), status.INVALID_ARGUMENT);
    await rejectsWith(client.prepare('', ''), status.INVALID_ARGUMENT);
  });

  it('updates labels by field mask and always returns info', async () => {
    const name = 'default/4/sha256:l2';
    let info = await client.update({ name, labels: { a: '1', b: '2' } }, ['labels']);
    assert.deepEqual(info.labels, { a: '1', b: '2' });
    assert.equal(info.kind, Kind.COMMITTED);
    info = await client.update({ name, labels: { b: '' } }, ['labels.b', 'labels.containerd.io/gc.root']);
    assert.deepEqual(info.labels, { a: '1' });
    info = await client.update({ name, labels: { c: '3' } });
    assert.deepEqual(info.labels, { c: '3' });
    assert.deepEqual((await client.stat(name)).labels, { c: '3' });
  });

  it('lists everything, or what any filter matches, in batches of 100', async () => {
    const { infos } = await client.list();
    assert.deepEqual(
      infos.map((i) => i.name).sort(),
      ['default/2/sha256:l1', 'default/4/sha256:l2', 'default/5/view', 'default/6/view1'].sort(),
    );
    const remote = await client.list(['labels."containerd.io/snapshot.ref"==sha256:l1,parent==""']);
    assert.deepEqual(remote.infos.map((i) => i.name), ['default/2/sha256:l1']);
    const either = await client.list(['kind==view', 'name=="default/4/sha256:l2"']);
    assert.equal(either.infos.length, 3);

    for (let i = 0; i < 150; i++) await client.view(`bulk/${i}`, '');
    const bulk = await client.list(['name~=^bulk/']);
    assert.equal(bulk.infos.length, 150);
    const everything = await client.list();
    assert.equal(everything.messages, Math.ceil(everything.infos.length / 100));
    for (let i = 0; i < 150; i++) await client.remove(`bulk/${i}`);
  });

  it('removes leaf-first and cleans up orphaned directories', async () => {
    const snapshots = path.join(clip.root, 'snapshots');
    await fsp.mkdir(path.join(snapshots, '4242', 'fs'), { recursive: true });
    await client.cleanup();
    assert.equal(await fsp.access(path.join(snapshots, '4242')).then(() => true, () => false), false);

    for (const key of ['default/5/view', 'default/6/view1', 'default/4/sha256:l2', 'default/2/sha256:l1']) {
      await client.remove(key);
    }
    assert.deepEqual((await client.list()).infos, []);
    await client.cleanup();
    assert.deepEqual(await fsp.readdir(snapshots), []);
  });
});
