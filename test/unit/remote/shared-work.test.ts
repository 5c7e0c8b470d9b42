/**
 * Cancellation of shared work: a build shared by several Prepares is aborted only when all of them gave
 * up, and a limiter slot is released however its task ends, also for waiters that give up in the queue.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Limiter } from '../../../src/remote/limiter';
import { SharedTasks } from '../../../src/remote/shared-task';

/** Work that runs until its signal aborts, and says so. */
function untilAborted(log: string[]): (signal: AbortSignal) => Promise<string> {
  return (signal) =>
    new Promise((_, reject) => {
      signal.addEventListener('abort', () => {
        log.push('aborted');
        reject(signal.reason);
      });
    });
}

describe('SharedTasks', () => {
  it('runs the work once for every caller, and aborts it only when the last caller gives up', async () => {
    const tasks = new SharedTasks<string>();
    const log: string[] = [];
    const a = new AbortController();
    const b = new AbortController();
    const first = tasks.run('k', untilAborted(log), a.signal);
    const second = tasks.run('k', () => Promise.reject(new Error('not run: the work is shared')), b.signal);
    a.abort(new Error('a gave up'));
    await assert.rejects(first, /a gave up/);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log, [], 'b still waits, so the work goes on');
    b.abort(new Error('b gave up'));
    await assert.rejects(second, /b gave up/);
    assert.deepEqual(log, ['aborted']);
    assert.equal(await tasks.run('k', async () => 'fresh'), 'fresh', 'the next caller starts new work');
  });

  it('a caller without a signal keeps the work alive', async () => {
    const tasks = new SharedTasks<string>();
    let finish: (v: string) => void = () => undefined;
    const a = new AbortController();
    const kept = tasks.run('k', () => new Promise((resolve) => (finish = resolve)));
    const cancelled = tasks.run('k', async () => 'unused', a.signal);
    a.abort(new Error('gone'));
    await assert.rejects(cancelled, /gone/);
    finish('done');
    assert.equal(await kept, 'done');
  });
});

describe('Limiter', () => {
  it('releases the slot of a failed task, and drops a waiter whose signal aborts', async () => {
    const limiter = new Limiter(1);
    let release: () => void = () => undefined;
    const holder = limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
    const gaveUp = new AbortController();
    const waiting = limiter.run(async () => assert.fail('an aborted waiter never runs'), gaveUp.signal);
    const next = limiter.run(async () => 'ran');
    gaveUp.abort(new Error('cancelled Prepare'));
    await assert.rejects(waiting, /cancelled Prepare/);
    release();
    await holder;
    assert.equal(await next, 'ran');
    await assert.rejects(limiter.run(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(limiter.running, 0);
    assert.equal(await limiter.run(async () => 'still works'), 'still works');
  });
});
