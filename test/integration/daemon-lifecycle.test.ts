/**
 * The daemon as an operator meets it: command-line errors, the socket, clean stops, and crash
 * consistency (kill -9 between and during operations, then restart).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { startClip } from '../helpers/clip-daemon';
import { REPO_ROOT, exists, run, runOk, startProcess, stopProcess, tempDir } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';

const clipBin = path.join(REPO_ROOT, 'bin', 'clip');

async function snapshotDirs(root: string): Promise<string[]> {
  return (await fsp.readdir(path.join(root, 'snapshots'))).sort();
}

describe('clip command line', () => {
  it('prints help for the program and for serve', async () => {
    assert.match(await runOk(clipBin, ['--help']), /serve/);
    const serveHelp = await runOk(clipBin, ['serve', '--help']);
    for (const flag of ['--root', '--address', '--config', '--log-level']) assert.match(serveHelp, new RegExp(flag));
  });

  for (const [args, message] of [
    [['serve', '--bogus'], /unknown option '--bogus'/],
    [['serve', '--log-level', 'loud'], /argument 'loud' is invalid/],
    [['serve', '--root', 'relative'], /root must be an absolute path/],
    [['serve', '--config', '/nonexistent/clip.toml'], /config \/nonexistent\/clip.toml: ENOENT/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ] as const) {
    it(`rejects ${args.join(' ')} with one clear line`, async () => {
      const r = await run(clipBin, [...args], { timeoutMs: 20_000 });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line, got:\n${r.stderr}`);
    });
  }
});

describe('daemon lifecycle and crash consistency', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('life');
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('reads --config, replaces a stale socket, refuses a live one, and stops cleanly on SIGTERM', async () => {
    const address = path.join(dir, 'run', 'clip.sock');
    const root = path.join(dir, 'from-config');
    const configFile = path.join(dir, 'clip.toml');
    await fsp.writeFile(configFile, `root = "${root}"\nlog_level = "debug"\n`);
    await fsp.mkdir(path.dirname(address), { recursive: true });
    // A socket file nobody listens on, as a killed daemon leaves behind.
    await runOk('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(address)})`]);
    assert.ok((await fsp.stat(address)).isSocket());

    const clip = await startClip(root, address, ['--config', configFile]);
    try {
      assert.ok((await fsp.stat(path.join(root, 'metadata.db'))).isFile(), 'root taken from the config file');
      const second = await run(clipBin, ['serve', '--root', path.join(dir, 'other'), '--address', address], { timeoutMs: 20_000 });
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, /another process is serving/);
    } finally {
      assert.equal(await clip.stop(), 0, 'exit status 0 after SIGTERM');
    }
    await assert.rejects(fsp.access(address), 'socket removed on stop');
    assert.match(clip.process.output(), /received SIGTERM/);
  });

  it('stops cleanly on a SIGTERM that arrives while it starts, once its socket exists', async () => {
    const address = path.join(dir, 'early-stop.sock');
    const p = startProcess(clipBin, ['serve', '--root', path.join(dir, 'early-stop'), '--address', address, '--log-level', 'debug']);
    try {
      const deadline = Date.now() + 20_000;
      while (!(await exists(address))) {
        assert.equal(p.child.exitCode, null, `clip exited early:\n${p.output()}`);
        assert.ok(Date.now() < deadline, 'socket within 20 s');
        await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      assert.equal(await stopProcess(p, 'SIGTERM'), 0, `exit status 0, not killed by the signal:\n${p.output()}`);
    }
    await assert.rejects(fsp.access(address), 'socket removed on stop');
  });

  it('keeps committed work across kill -9 and restart', async () => {
    const root = path.join(dir, 'crash1');
    const address = path.join(dir, 'crash1.sock');
    let clip = await startClip(root, address);
    let client = new TestSnapshotsClient(address);
    const m = await client.prepare('ns/1/extract l1', '', { 'containerd.io/snapshot.ref': 'sha256:1' });
    await fsp.writeFile(path.join(m[0]!.source, 'data'), 'survives');
    await client.commit('ns/2/sha256:1', 'ns/1/extract l1', { keep: 'me' });
    await client.prepare('ns/3/container', 'ns/2/sha256:1');
    client.close();
    await clip.kill();

    // An orphan as if the daemon died between renaming a new directory into place and committing its
    // record: the next id's directory exists, but no record does.
    await fsp.mkdir(path.join(root, 'snapshots', '3', 'fs'), { recursive: true });
    await fsp.mkdir(path.join(root, 'snapshots', 'new-0123456789ab', 'fs'), { recursive: true });

    clip = await startClip(root, address);
    client = new TestSnapshotsClient(address);
    try {
      const committed = await client.stat('ns/2/sha256:1');
      assert.equal(committed.kind, Kind.COMMITTED);
      assert.deepEqual(committed.labels, { keep: 'me' });
      const active = await client.stat('ns/3/container');
      assert.equal(active.kind, Kind.ACTIVE);
      assert.equal(active.parent, 'ns/2/sha256:1');
      assert.deepEqual(await snapshotDirs(root), ['1', '2'], 'orphans removed at start-up');
      const mounts = await client.mounts('ns/3/container');
      const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length);
      assert.equal(await fsp.readFile(path.join(lower, 'data'), 'utf8'), 'survives');
      // The reused id gets a clean directory.
      const fresh = await client.prepare('ns/4/next', '');
      assert.deepEqual(await fsp.readdir(fresh[0]!.source), []);
    } finally {
      client.close();
      await clip.stop();
    }
  });

  it('is consistent after kill -9 in the middle of a burst of operations', async () => {
    const root = path.join(dir, 'crash2');
    const address = path.join(dir, 'crash2.sock');
    for (let round = 0; round < 3; round++) {
      const clip = await startClip(root, address);
      const client = new TestSnapshotsClient(address);
      const base = `r${round}`;
      await client.prepare(`${base}/base`, '');
      await client.commit(`${base}/base-c`, `${base}/base`);
      // Fire operations without waiting, and kill the daemon while they run.
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 40; i++) {
        ops.push(
          client
            .prepare(`${base}/a${i}`, `${base}/base-c`)
            .then(() => (i % 2 ? client.commit(`${base}/c${i}`, `${base}/a${i}`) : client.remove(`${base}/a${i}`)))
            .catch(() => 'interrupted'),
        );
      }
      await new Promise((r) => setTimeout(r, 30 + round * 40));
      await clip.kill();
      await Promise.all(ops);
      client.close();

      const again = await startClip(root, address);
      const check = new TestSnapshotsClient(address);
      try {
        const { infos } = await check.list();
        const dirs = (await snapshotDirs(root)).filter((d) => /^[0-9]+$/.test(d));
        assert.equal(dirs.length, infos.length, 'one directory per snapshot, no orphans');
        assert.deepEqual((await snapshotDirs(root)).filter((d) => !/^[0-9]+$/.test(d)), [], 'no temporary directories');
        for (const info of infos) {
          if (info.kind === Kind.COMMITTED) continue;
          for (const m of await check.mounts(info.name)) {
            const upper = m.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length) ?? m.source;
            assert.ok((await fsp.stat(upper)).isDirectory(), `${info.name}: ${upper} exists`);
          }
        }
        assert.ok(infos.some((i) => i.name === `${base}/base-c`), 'work committed before the kill is kept');
      } finally {
        check.close();
        await again.stop();
      }
    }
  });
});
