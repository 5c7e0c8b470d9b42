/**
 * `clip mount IMAGE DIR` + `runc run` on a bundle whose rootfs is DIR + `clip umount DIR`, with the real
 * registry, FUSE, overlayfs and runc: the container sees the image (three layers with whiteouts and an
 * opaque directory), writes go to the upper directory, and the unmount leaves no mount (per
 * /proc/self/mountinfo) and no file behind, also when the serving process was killed.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { scanCache } from '../../../src/fusefs/cache-scan';
import type { MountState } from '../../../src/remote/image-mount';
import { run, runOk, startProcess, stopProcess, waitFor } from '../../helpers/processes';
import { mountsUnder } from '../../helpers/stack';
import { CLIP, CliFixture } from './cli-fixture';

const TIMEOUT = 180_000;

describe('clip mount, runc run, clip umount', () => {
  const fx = new CliFixture();
  let runs: string;

  before(async () => {
    await fx.start(['multilayer']);
    runs = path.join(fx.dir, 'runs');
    await fsp.mkdir(runs);
  }, { timeout: 300_000 });

  after(async () => {
    // Whatever a failed test left mounted, before the fixture removes its directory.
    for (const dir of await fsp.readdir(runs).catch(() => [] as string[])) {
      await fx.clip(['umount', path.join(runs, dir, 'rootfs')]).catch(() => undefined);
    }
    const left = await mountsUnder(fx.dir);
    if (left.length > 0) throw new Error(`mounts left under ${fx.dir}: ${left.join(', ')}`);
    await fx.stop();
  });

  /** A runc bundle in `dir/bundle` whose rootfs is `rootfs`, running `sh -c script`. */
  async function bundle(dir: string, rootfs: string, script: string): Promise<string> {
    const b = path.join(dir, 'bundle');
    await fsp.mkdir(b, { recursive: true });
    await runOk('runc', ['spec'], { cwd: b });
    const file = path.join(b, 'config.json');
    const config = JSON.parse(await fsp.readFile(file, 'utf8')) as { root: object; process: { args: string[]; terminal: boolean } };
    config.root = { path: rootfs, readonly: false };
    config.process.args = ['/bin/sh', '-c', script];
    config.process.terminal = false;
    await fsp.writeFile(file, JSON.stringify(config, null, 2));
    return b;
  }

  async function runc(dir: string, b: string, id: string): Promise<string> {
    const r = await run('runc', ['--root', path.join(dir, 'runc-state'), 'run', '--bundle', b, id], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `runc run: ${r.stdout}${r.stderr}`);
    await fsp.rm(path.join(dir, 'runc-state'), { recursive: true, force: true });
    return r.stdout;
  }

  const readState = async (rootfs: string): Promise<MountState> =>
    JSON.parse(await fsp.readFile(path.join(path.dirname(rootfs), `.${path.basename(rootfs)}.clip`, 'mount.json'), 'utf8')) as MountState;

  const alive = (pid: number): Promise<boolean> => fsp.access(`/proc/${pid}`).then(() => true, () => false);

  test('the mounted image runs as a runc rootfs; clip umount leaves no mount and no file', { timeout: TIMEOUT }, async () => {
    const dir = path.join(runs, 'one');
    const rootfs = path.join(dir, 'rootfs');
    const stdout = await fx.clipOk(['mount', fx.ref('multilayer'), rootfs, '--plain-http']);
    assert.match(stdout, /^mounted .*:multilayer on .*rootfs \(state .*\.rootfs\.clip, served by pid \d+ until clip umount .*\)\n$/);
    const state = await readState(rootfs);
    assert.equal(state.layers.length, 3);
    assert.ok(await alive(state.pid), 'the serving process runs in the background');
    const mounted = await mountsUnder(dir);
    assert.deepEqual(mounted.sort(), [rootfs, ...state.layers.map((l) => l.mountPoint)].sort());

    const b = await bundle(dir, rootfs, 'cat /etc/clip-test/message; ls /data/opaque; test -e /data/gone || echo gone; echo made > /made');
    assert.equal(await runc(dir, b, 'clip-mount-1'), 'hello from clip, layer 3\nc\ngone\n');
    assert.equal(await fsp.readFile(path.join(state.stateDir, 'upper', 'made'), 'utf8'), 'made\n', 'writes land in the upper dir');

    await fx.clipOk(['umount', rootfs]);
    assert.deepEqual(await mountsUnder(dir), []);
    assert.deepEqual(await fsp.readdir(dir), ['bundle'], 'rootfs and state dir are gone');
    assert.equal(await alive(state.pid), false, 'the serving process has exited');
  });

  test('clip umount cleans up after a serving process killed with SIGKILL', { timeout: TIMEOUT }, async () => {
    const dir = path.join(runs, 'killed');
    const rootfs = path.join(dir, 'rootfs');
    await fsp.mkdir(rootfs, { recursive: true });
    await fx.clipOk(['mount', fx.ref('multilayer'), rootfs, '--plain-http']);
    const state = await readState(rootfs);
    process.kill(state.pid, 'SIGKILL');
    await waitFor('the serving process to die', async () => !(await alive(state.pid)));
    await fx.clipOk(['umount', rootfs]);
    assert.deepEqual(await mountsUnder(dir), []);
    assert.deepEqual(await fsp.readdir(dir), ['rootfs'], 'the state dir is gone; rootfs existed before and stays');
    assert.deepEqual(await fsp.readdir(rootfs), []);
  });

  test('--foreground serves in the command itself until SIGTERM', { timeout: TIMEOUT }, async () => {
    const dir = path.join(runs, 'foreground');
    const rootfs = path.join(dir, 'rootfs');
    const state = path.join(dir, 'state');
    const p = startProcess(CLIP, ['mount', fx.ref('multilayer'), rootfs, '--plain-http', '--foreground', '--state', state]);
    try {
      await waitFor('the mount', () => p.output().includes('serving until'), 60_000);
      assert.equal(await fsp.readFile(path.join(rootfs, 'etc/clip-test/message'), 'utf8'), 'hello from clip, layer 3\n');
      assert.equal((await fsp.readdir(state)).includes('mount.json'), true);
    } finally {
      assert.equal(await stopProcess(p, 'SIGTERM', 30_000), 0, p.output());
    }
    assert.deepEqual(await mountsUnder(dir), []);
    assert.deepEqual(await fsp.readdir(dir).catch(() => []), [], p.output());
  });

  test('--cache-max-size bounds what the mount keeps: with 0 nothing is cached and reads are still served', { timeout: TIMEOUT }, async () => {
    const dir = path.join(runs, 'bounded');
    const rootfs = path.join(dir, 'rootfs');
    const root = path.join(dir, 'store');
    const r = await fx.clip(['mount', fx.ref('multilayer'), rootfs, '--plain-http', '--cache-max-size', 'lots']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'clip: --cache-max-size: invalid size "lots": use a size such as "10GiB" or a share of the filesystem such as "20%"\n');
    await fx.clipOk(['mount', fx.ref('multilayer'), rootfs, '--plain-http', '--root', root, '--cache-max-size', '0', '--cache-min-free', '1%']);
    try {
      assert.equal(await fsp.readFile(path.join(rootfs, 'etc/clip-test/message'), 'utf8'), 'hello from clip, layer 3\n');
      const cached = await scanCache(path.join(root, 'cache'));
      assert.deepEqual(cached.spans, [], 'no span was written to the cache');
    } finally {
      await fx.clipOk(['umount', rootfs]);
    }
    const log = await fsp.readFile(path.join(root, '..', '.rootfs.clip', 'mount.log'), 'utf8').catch(() => '');
    assert.doesNotMatch(log, /error/i, log);
  });

  test('a mount that fails says why in one line and leaves nothing behind', { timeout: TIMEOUT }, async () => {
    const dir = path.join(runs, 'failing');
    await fsp.mkdir(dir);
    const r = await fx.clip(['mount', `${fx.addr}/clip/test:missing`, path.join(dir, 'rootfs'), '--plain-http']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^clip: mount .*:missing on .*rootfs: GET .*manifests\/missing: HTTP 404/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.deepEqual(await fsp.readdir(dir), []);
    const notEmpty = path.join(dir, 'full');
    await fsp.mkdir(notEmpty);
    await fsp.writeFile(path.join(notEmpty, 'file'), 'x');
    const r2 = await fx.clip(['mount', fx.ref('multilayer'), notEmpty, '--plain-http']);
    assert.match(r2.stderr, /^clip: mount .* on .*full: .*full is not empty\n$/);
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['full']);
  });
});
