/**
 * The read timeout lives in the native FUSE server, not in a JS timer: while the serving process's JS
 * thread is blocked (here by a span reader that busy-loops), a read waiting for JS still answers EIO once
 * the timeout passes; JS's late answer is dropped (no second reply) and the server goes on serving.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { forceUnmount, listFuseMounts } from '../../../src/fusefs';
import { run, startProcess, Started, stopProcess, tempDir, waitFor } from '../../helpers/processes';

const SERVE_LAYER = path.join(__dirname, 'serve-layer.js');
const BLOCK_MS = 8000;

describe('read deadline kept by the native server', () => {
  let root: string;
  let child: Started | undefined;

  before(async () => {
    root = await tempDir('read-deadline');
  });

  after(async () => {
    if (child) await stopProcess(child, 'SIGKILL');
    for (const m of await listFuseMounts(root)) await forceUnmount(m.mountPoint, { abortConnection: true });
    if ((await listFuseMounts(root)).length === 0) await fsp.rm(root, { recursive: true, force: true });
  });

  it('answers EIO while the JS thread is blocked, then serves the next read', async () => {
    const dir = path.join(root, 'layer');
    await fsp.mkdir(dir);
    const server = startProcess(process.execPath, [SERVE_LAYER, dir, '--block-ms', String(BLOCK_MS)]);
    child = server;
    await waitFor('the layer to be mounted', () => server.output().includes('mounted') || server.child.exitCode !== null);
    assert.ok(server.output().includes('mounted'), server.output());

    const first = await run('cat', [`${dir}/file`], { timeoutMs: 60_000 });
    const stillBlocked = !server.output().includes('unblocked');
    assert.notEqual(first.code, 0);
    assert.match(first.stderr, /Input\/output error/);
    assert.ok(stillBlocked, 'the EIO came while the JS thread was still blocked');

    await waitFor('the JS thread to run again', () => server.output().includes('unblocked'), 60_000);
    const second = await run('cat', [`${dir}/file`], { timeoutMs: 60_000 });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'served by a child process\n');
    assert.equal(server.child.exitCode, null, 'the server is still running');
  });
});
