/**
 * MountPriority: start-up bundle work waits while a layer is being mounted, goes on when the mount is done,
 * and is never held longer than the hold limit. Asserts on the order of events, not on times.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MountPriority } from '../../../src/remote/mount-priority';

async function* chunks(events: string[], n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    events.push(`arrived ${i}`);
    yield i;
  }
}

/** Lets every pending promise callback and timer of at most `ms` run. */
const settle = (ms = 20): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('with no mount under way, chunks pass straight through', async () => {
  const priority = new MountPriority();
  const events: string[] = [];
  for await (const i of priority.yielding(chunks(events, 3))) events.push(`used ${i}`);
  assert.deepEqual(events, ['arrived 0', 'used 0', 'arrived 1', 'used 1', 'arrived 2', 'used 2']);
  assert.equal(priority.busy, false);
});

test('a chunk that arrives during a mount is used only once the mount is done', async () => {
  const priority = new MountPriority(60_000);
  const events: string[] = [];
  const done = priority.begin();
  assert.equal(priority.busy, true);
  const consumed = (async () => {
    for await (const i of priority.yielding(chunks(events, 2))) events.push(`used ${i}`);
  })();
  await settle();
  assert.deepEqual(events, ['arrived 0'], 'the source was started, its first chunk waits');
  events.push('mounted');
  done();
  done(); // twice is harmless
  await consumed;
  assert.deepEqual(events, ['arrived 0', 'mounted', 'used 0', 'arrived 1', 'used 1']);
  assert.equal(priority.busy, false);
});

test('work waits until every mount under way is done', async () => {
  const priority = new MountPriority(60_000);
  const first = priority.begin();
  const second = priority.begin();
  let idle = false;
  const waiting = priority.idle().then(() => (idle = true));
  first();
  await settle();
  assert.equal(idle, false, 'one mount is still under way');
  second();
  await waiting;
  assert.equal(idle, true);
});

test('a mount holds work back at most maxHoldMs (a layer indexed on Prepare does not stall bundles)', async () => {
  const priority = new MountPriority(30);
  const done = priority.begin();
  await priority.idle(); // resolves although the mount is not done
  assert.equal(priority.busy, false);
  done();
});
