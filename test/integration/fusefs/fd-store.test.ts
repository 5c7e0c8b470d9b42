/**
 * The two places FUSE connections wait across restarts, for real: clip-fd-holder (started on demand,
 * keeps, lists and drops fds over SCM_RIGHTS, forgets one whose other end hung up, refuses a second
 * holder on its socket, closes everything once its clip has been gone for the orphan timeout) and systemd's notify protocol (a datagram with the fd, received here by a small
 * Python stand-in for systemd).
 */
import assert from 'node:assert/strict';
import { closeSync, constants, fstatSync, openSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import winston from 'winston';
import { FD_HOLDER_PROGRAM, handoffAddon } from '../../../src/fusefs/handoff-addon';
import { HolderFdStore, SystemdFdStore } from '../../../src/fusefs/fd-store';
import { REPO_ROOT, run, runOk, startProcess, stopProcess, tempDir, waitFor } from '../../helpers/processes';

const logger = winston.createLogger({ silent: true });

/** Receives datagrams on a unix socket like systemd's notify socket; prints each as JSON with its fds' inodes. */
const RECEIVER = `
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    msg, fds, _, _ = socket.recv_fds(s, 4096, 4)
    print(json.dumps({"text": msg.decode(), "inodes": [os.fstat(fd).st_ino for fd in fds]}), flush=True)
`;

describe('fd stores', () => {
  let root: string;
  let socket: string;

  before(async () => {
    root = await tempDir('fd-store');
    socket = path.join(root, 'holder.sock');
  });

  after(async () => {
    const pid = Number((await fsp.readFile(`${socket}.pid`, 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('clip-fd-holder keeps fds for the next process, hands out copies, and forgets a hung-up one', async () => {
    const fifo = path.join(root, 'fifo');
    await runOk('mkfifo', [fifo]);
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeEnd = openSync(fifo, constants.O_WRONLY);
    const file = openSync(path.join(root, 'kept-file'), 'w');
    const first = new HolderFdStore(socket, logger);
    assert.deepEqual(await first.inherited(), [], 'no holder yet: nothing kept');
    await first.keep('fuse/0_1/a', file);
    await first.keep('fuse/0_2/pipe', readEnd);
    closeSync(readEnd);
    closeSync(file);

    const next = new HolderFdStore(socket, logger);
    const held = await next.inherited();
    assert.deepEqual(held.map((h) => h.name).sort(), ['fuse/0_1/a', 'fuse/0_2/pipe']);
    const kept = held.find((h) => h.name === 'fuse/0_1/a')!;
    assert.equal(fstatSync(kept.fd).ino, (await fsp.stat(path.join(root, 'kept-file'))).ino, 'the same open file');
    for (const h of held) closeSync(h.fd);

    closeSync(writeEnd); // the pipe's reader now sees POLLHUP: the holder forgets it
    await waitFor('the holder to forget the hung-up fd', async () => {
      const left = await new HolderFdStore(socket, logger).inherited();
      for (const h of left) closeSync(h.fd);
      return left.length === 1;
    }, 10_000);

    await next.drop('fuse/0_1/a');
    assert.deepEqual(await new HolderFdStore(socket, logger).inherited(), []);

    const second = await run(FD_HOLDER_PROGRAM, [socket], { timeoutMs: 10_000 });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another holder serves/);
    assert.equal((await fsp.stat(socket)).mode & 0o777, 0o600);
  });

  it('clip-fd-holder closes what it keeps once the last clip that talked to it has been gone ORPHAN_SECONDS, not while one runs', async () => {
    const sock = path.join(root, 'orphan.sock');
    const marker = path.join(root, 'orphan-marker');
    await fsp.writeFile(marker, '');
    const addon = path.join(REPO_ROOT, 'dist', 'src', 'fusefs', 'handoff-addon.js');
    /** A short-lived process standing in for a clip that talks to the holder once and exits. */
    const clipThat = (call: string): Promise<string> =>
      runOk(process.execPath, ['-e', `const a = require(${JSON.stringify(addon)}).handoffAddon(); const s = ${JSON.stringify(sock)}; ${call}`], { timeoutMs: 30_000 });
    const holder = startProcess(FD_HOLDER_PROGRAM, [sock, '60', '1']);
    /** Whether the holder has the marker file open. */
    const keepsMarker = async (): Promise<boolean> => {
      const fds = await fsp.readdir(`/proc/${holder.child.pid}/fd`).catch(() => [] as string[]);
      const targets = await Promise.all(fds.map((fd) => fsp.readlink(`/proc/${holder.child.pid}/fd/${fd}`).catch(() => '')));
      return targets.includes(marker);
    };
    try {
      await waitFor('the holder socket', () => fsp.access(sock).then(() => true, () => false), 10_000);
      await clipThat(`a.holderPut(s, 'fuse/0_1/orphan', require('fs').openSync(${JSON.stringify(marker)}, 'r'));`);
      // This process lists at once, as a restarted clip does, and runs on: the holder waits for it.
      for (const h of handoffAddon().holderList(sock)) closeSync(h.fd);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.ok(await keepsMarker(), 'kept while the last clip that listed runs (2.5 s, beyond the 1 s timeout)');
      await clipThat(`for (const h of a.holderList(s)) require('fs').closeSync(h.fd);`);
      await waitFor('the holder to close what it keeps once that clip is gone', async () => !(await keepsMarker()), 15_000);
      assert.deepEqual(handoffAddon().holderList(sock), [], 'nothing is kept any more');
    } finally {
      await stopProcess(holder, 'SIGKILL');
    }
  });

  it('systemd: FDSTORE=1 with the fd and its name, FDSTOREREMOVE=1, and fds passed at start', async () => {
    const notify = path.join(root, 'notify.sock');
    const receiver = startProcess('/usr/bin/python3', ['-c', RECEIVER, notify, '2']);
    try {
      await waitFor('the notify socket', () => receiver.output().includes('ready') || receiver.child.exitCode !== null);
      const file = openSync(path.join(root, 'stored'), 'w');
      const passed = openSync(path.join(root, 'stored'), 'r');
      const store = new SystemdFdStore(notify, [{ name: 'fuse/0_3/x', fd: passed }]);
      assert.deepEqual(await store.inherited(), [{ name: 'fuse/0_3/x', fd: passed }]);
      assert.deepEqual(await store.inherited(), [], 'once');
      await store.keep('fuse/0_3/x', file);
      await store.drop('fuse/0_3/x');
      await waitFor('two datagrams', () => receiver.output().trim().split('\n').length >= 3 || receiver.child.exitCode !== null);
      const [, keep, drop] = receiver.output().trim().split('\n').map((l) => (l === 'ready' ? {} : JSON.parse(l)));
      assert.deepEqual(keep, { text: 'FDSTORE=1\nFDNAME=fuse/0_3/x', inodes: [fstatSync(file).ino] });
      assert.deepEqual(drop, { text: 'FDSTOREREMOVE=1\nFDNAME=fuse/0_3/x', inodes: [] });
      closeSync(file);
      closeSync(passed);
    } finally {
      await stopProcess(receiver, 'SIGKILL');
    }
  });
});
