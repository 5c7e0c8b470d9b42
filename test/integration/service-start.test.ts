/**
 * `clip serve` under a service manager and next to another daemon: READY=1 to $NOTIFY_SOCKET (systemd's
 * Type=notify) once the socket is bound, STOPPING=1 on SIGTERM; and a second daemon on the same root stops
 * at the root's lock with one line, before touching anything.
 */
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startClip } from '../helpers/clip-daemon';
import { REPO_ROOT, run, startProcess, stopProcess, tempDir, waitFor } from '../helpers/processes';

const clipBin = path.join(REPO_ROOT, 'bin', 'clip');

/** Prints each datagram received on a unix socket, and whether the given path existed at that moment. */
const RECEIVER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
for _ in range(2):
    msg = s.recv(4096)
    print(json.dumps({"text": msg.decode(), "socket_there": os.path.exists(sys.argv[2])}), flush=True)
`;

describe('clip serve start-up', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('service');
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('tells $NOTIFY_SOCKET READY=1 after binding its socket, and STOPPING=1 on SIGTERM', async () => {
    const notify = path.join(dir, 'notify.sock');
    const address = path.join(dir, 'clip.sock');
    const receiver = startProcess('/usr/bin/python3', ['-c', RECEIVER, notify, address]);
    try {
      await waitFor('the notify socket', () => receiver.output().includes('ready') || receiver.child.exitCode !== null);
      const clip = startProcess(clipBin, ['serve', '--root', path.join(dir, 'root'), '--address', address], { env: { ...process.env, NOTIFY_SOCKET: notify } });
      try {
        await waitFor('READY=1', () => receiver.output().includes('READY=1') || clip.child.exitCode !== null, 30_000);
        const ready = JSON.parse(receiver.output().split('\n')[1]!) as { text: string; socket_there: boolean };
        assert.match(ready.text, /^READY=1\nMAINPID=\d+/);
        assert.equal(ready.socket_there, true, 'the socket was bound before READY=1');
      } finally {
        assert.equal(await stopProcess(clip, 'SIGTERM'), 0, clip.output());
      }
      await waitFor('STOPPING=1', () => receiver.output().includes('STOPPING=1'), 10_000);
    } finally {
      await stopProcess(receiver, 'SIGKILL');
    }
  });

  it('a second clip serve on the same root exits with one line and leaves the first serving', async () => {
    const root = path.join(dir, 'shared');
    const first = await startClip(root, path.join(dir, 'first.sock'));
    try {
      const second = await run(clipBin, ['serve', '--root', root, '--address', path.join(dir, 'second.sock')], { timeoutMs: 30_000 });
      assert.equal(second.code, 1);
      assert.equal(second.stderr, `clip: another clip serve is running on ${root} (${root}/clip.lock is locked); leaving it and its mounts alone\n`);
      assert.equal(existsSync(path.join(dir, 'second.sock')), false, 'no socket of its own');
      assert.equal(first.process.child.exitCode, null, 'the first daemon still runs');
      assert.ok(existsSync(path.join(dir, 'first.sock')));
    } finally {
      await first.stop();
    }
  });
});
