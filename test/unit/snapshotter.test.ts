import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import winston from 'winston';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../src/errors';
import { Snapshotter } from '../../src/snapshotter/snapshotter';
import { Kind } from '../../src/snapshotter/types';
import { tempDir } from '../helpers/processes';

const logger = winston.createLogger({ silent: true });

describe('Snapshotter model', () => {
  let root: string;
  let sn: Snapshotter;

  before(async () => {
    root = await tempDir('unit');
    sn = await Snapshotter.open({ root, logger });
  });
  after(async () => {
    sn.close();
    await fsp.rm(root, { recursive: true, force: true });
  });

  const fsOf = (mounts: { source: string; options: string[] }[]): string => {
    const m = mounts[0]!;
    if (m.source !== 'overlay') return m.source;
    return m.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
  };

  it('builds a chain with namespaced keys that never become paths', async () => {
    const key = 'ns/1/extract-123 sha256:aaa';
    const m1 = await sn.prepare(key, '', { 'containerd.io/snapshot.ref': 'sha256:aaa' });
    assert.equal(m1.length, 1);
    assert.equal(m1[0]!.type, 'bind');
    assert.deepEqual(m1[0]!.options, ['rw', 'rbind']);
    assert.match(m1[0]!.source, /\/snapshots\/[0-9]+\/fs$/);
    await fsp.writeFile(path.join(m1[0]!.source, 'hello'), 'world');
    await sn.commit('ns/2/sha256:aaa', key, { a: '1' });

    await assert.rejects(sn.stat(key), NotFoundError);
    const base = await sn.stat('ns/2/sha256:aaa');
    assert.equal(base.kind, Kind.COMMITTED);
    assert.deepEqual(base.labels, { a: '1' }, 'commit replaces labels');
    assert.equal(base.parent, '');

    const m2 = await sn.prepare('ns/3/extract-456 sha256:bbb', 'ns/2/sha256:aaa');
    assert.equal(m2[0]!.type, 'overlay');
    assert.ok(m2[0]!.options.includes(`lowerdir=${m1[0]!.source}`));
    await sn.commit('ns/4/sha256:bbb', 'ns/3/extract-456 sha256:bbb');
    const top = await sn.stat('ns/4/sha256:bbb');
    assert.equal(top.parent, 'ns/2/sha256:aaa');

    const container = await sn.prepare('ns/5/container one', 'ns/4/sha256:bbb');
    const lower = container[0]!.options.find((o) => o.startsWith('lowerdir='))!;
    assert.equal(lower.split(':').length, 2, 'two lower layers');
    assert.ok(lower.startsWith(`lowerdir=${fsOf(m2)}:`), 'nearest parent first');
    assert.deepEqual(await sn.mounts('ns/5/container one'), container, 'Mounts recomputes the same mounts');

    for (const entry of await fsp.readdir(path.join(root, 'snapshots'))) {
      assert.match(entry, /^[0-9]+$/, 'only numeric directories');
    }
  });

  it('stores usage at commit time and computes it live for active snapshots', async () => {
    const mounts = await sn.prepare('u/1', '');
    await fsp.writeFile(path.join(mounts[0]!.source, 'f'), Buffer.alloc(64 * 1024, 1));
    await fsp.link(path.join(mounts[0]!.source, 'f'), path.join(mounts[0]!.source, 'g'));
    const live = await sn.usage('u/1');
    assert.equal(live.inodes, 2, 'the directory and one file (hard link counted once)');
    assert.ok(live.size >= 64 * 1024);
    await sn.commit('u/c', 'u/1');
    assert.deepEqual(await sn.usage('u/c'), live);
    await sn.remove('u/c');
  });

  it('makes views: bind for none or one parent, overlay for more', async () => {
    const v0 = await sn.view('v/0', '');
    assert.deepEqual(v0[0]!.options, ['ro', 'rbind']);
    const v1 = await sn.view('v/1', 'ns/2/sha256:aaa');
    assert.equal(v1[0]!.type, 'bind');
    assert.deepEqual(v1[0]!.options, ['ro', 'rbind']);
    const v2 = await sn.view('v/2', 'ns/4/sha256:bbb');
    assert.equal(v2[0]!.type, 'overlay');
    assert.ok(!v2[0]!.options.some((o) => o.startsWith('upperdir=')));
    assert.equal((await sn.stat('v/2')).kind, Kind.VIEW);
    await assert.rejects(sn.commit('v/c', 'v/2'), FailedPreconditionError, 'a view cannot be committed');
    for (const k of ['v/0', 'v/1', 'v/2']) await sn.remove(k);
  });

  it('returns the error codes containerd expects', async () => {
    await assert.rejects(sn.prepare('ns/5/container one', ''), AlreadyExistsError);
    await assert.rejects(sn.prepare('x', 'no-such-parent'), NotFoundError);
    await assert.rejects(sn.prepare('x', 'ns/5/container one'), InvalidArgumentError, 'parent must be committed');
    await assert.rejects(sn.prepare('', ''), InvalidArgumentError);
    await assert.rejects(sn.mounts('ns/4/sha256:bbb'), FailedPreconditionError);
    await assert.rejects(sn.mounts('nope'), NotFoundError);
    await assert.rejects(sn.commit('ns/4/sha256:bbb', 'ns/5/container one'), AlreadyExistsError);
    await assert.rejects(sn.commit('new', 'nope'), NotFoundError);
    await assert.rejects(sn.remove('ns/2/sha256:aaa'), FailedPreconditionError, 'has children');
    await assert.rejects(sn.remove('nope'), NotFoundError);
    await assert.rejects(sn.stat('nope'), NotFoundError);
    await assert.rejects(sn.usage('nope'), NotFoundError);
    await assert.rejects(sn.update('nope', {}, []), NotFoundError);
    await assert.rejects(sn.prepare('big', '', { k: 'x'.repeat(5000) }), InvalidArgumentError);
    await assert.rejects(sn.list(['name==']), InvalidArgumentError);
    assert.ok(!(await sn.list([])).some((i) => i.name === 'x'), 'failed prepares leave nothing');
  });

  it('updates labels with field masks', async () => {
    const key = 'ns/4/sha256:bbb';
    let info = await sn.update(key, { a: '1', b: '2' }, []);
    assert.deepEqual(info.labels, { a: '1', b: '2' }, 'no paths: replace all');
    info = await sn.update(key, { b: '3', c: '4' }, ['labels.b']);
    assert.deepEqual(info.labels, { a: '1', b: '3' }, 'labels.b: only b');
    info = await sn.update(key, {}, ['labels.a']);
    assert.deepEqual(info.labels, { b: '3' }, 'labels.a without a value: deleted');
    info = await sn.update(key, { z: '9' }, ['labels']);
    assert.deepEqual(info.labels, { z: '9' }, 'labels: replace all');
    await assert.rejects(sn.update(key, {}, ['parent']), InvalidArgumentError);
    assert.ok(info.updated >= info.created);
  });

  it('lists with filters', async () => {
    const all = await sn.list([]);
    assert.deepEqual(all.map((i) => i.name).sort(), ['ns/2/sha256:aaa', 'ns/4/sha256:bbb', 'ns/5/container one'].sort());
    const active = await sn.list(['kind==active']);
    assert.deepEqual(active.map((i) => i.name), ['ns/5/container one']);
    const byParent = await sn.list(['parent=="ns/2/sha256:aaa"', 'labels.z==9']);
    assert.deepEqual(byParent.map((i) => i.name), ['ns/4/sha256:bbb']);
  });

  it('cleanup removes orphaned directories only', async () => {
    const orphanDir = path.join(root, 'snapshots', '999');
    await fsp.mkdir(path.join(orphanDir, 'fs'), { recursive: true });
    await fsp.mkdir(path.join(root, 'snapshots', 'new-deadbeef'));
    const before = (await fsp.readdir(path.join(root, 'snapshots'))).length;
    assert.equal(await sn.cleanup(), 2);
    assert.equal((await fsp.readdir(path.join(root, 'snapshots'))).length, before - 2);
    assert.equal(await sn.cleanup(), 0);
  });

  it('one of two concurrent prepares of a key wins', async () => {
    const results = await Promise.allSettled([sn.prepare('race', ''), sn.prepare('race', '')]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(rejected.reason instanceof AlreadyExistsError);
    await sn.remove('race');
    assert.equal(await sn.cleanup(), 0, 'the loser left no directory behind');
  });

  it('rebases on commit like containerd 2.2 (CommitSnapshotRequest.parent)', async () => {
    await sn.prepare('rebase/a', '');
    await sn.commit('rebase/a-c', 'rebase/a', {}, 'ns/2/sha256:aaa');
    assert.equal((await sn.stat('rebase/a-c')).parent, 'ns/2/sha256:aaa', 'a parentless snapshot takes the given parent');
    await sn.prepare('rebase/b', 'ns/2/sha256:aaa');
    await assert.rejects(sn.commit('rebase/b-c', 'rebase/b', {}, 'ns/4/sha256:bbb'), InvalidArgumentError, 'a different parent');
    await sn.prepare('rebase/c', '');
    await assert.rejects(sn.commit('rebase/c-c', 'rebase/c', {}, 'ns/5/container one'), FailedPreconditionError, 'parent not committed');
    await assert.rejects(sn.commit('rebase/c-c', 'rebase/c', {}, 'no/such/parent'), NotFoundError);
    await sn.remove('rebase/c');
    await sn.commit('rebase/b-c', 'rebase/b', {}, 'ns/2/sha256:aaa');
    for (const k of ['rebase/a-c', 'rebase/b-c']) await sn.remove(k);
  });

  it('removes a snapshot and its directory', async () => {
    const mounts = await sn.prepare('gone', '');
    const dir = path.dirname(mounts[0]!.source);
    await sn.remove('gone');
    await assert.rejects(fsp.access(dir));
  });
});
