import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentSpans } from '../../../src/fusefs/recent-spans';
import type { SpanReader } from '../../../src/fusefs/span-reader';

interface Call {
  index: number;
  signal: AbortSignal;
  resolve: (b: Buffer) => void;
  reject: (e: unknown) => void;
}

/** A SpanReader whose answers the test gives by hand. */
class ManualReader implements SpanReader {
  readonly calls: Call[] = [];
  readSpan(index: number, signal: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => this.calls.push({ index, signal, resolve, reject }));
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RecentSpans', () => {
  it('shares one fetch among concurrent requests and keeps the result', async () => {
    const reader = new ManualReader();
    const spans = new RecentSpans(reader, 100);
    const signal = new AbortController().signal;
    const requests = [spans.get(3, signal), spans.get(3, signal), spans.get(3, signal)];
    await tick();
    assert.equal(reader.calls.length, 1);
    reader.calls[0].resolve(Buffer.from('span three'));
    for (const r of await Promise.all(requests)) assert.equal(r.toString(), 'span three');
    assert.equal((await spans.get(3, signal)).toString(), 'span three');
    assert.equal(reader.calls.length, 1);
  });

  it('forgets the least recently used spans beyond its budget and never keeps an oversized span', async () => {
    const sizes: Record<number, number> = { 0: 40, 1: 40, 2: 40, 3: 500 };
    let calls = 0;
    const spans = new RecentSpans({ readSpan: async (i) => (calls++, Buffer.alloc(sizes[i])) }, 100);
    const signal = new AbortController().signal;
    await spans.get(0, signal);
    await spans.get(1, signal);
    await spans.get(0, signal); // 0 is now the most recent
    await spans.get(2, signal); // 120 bytes: 1 goes
    assert.equal(calls, 3);
    await spans.get(0, signal);
    await spans.get(2, signal);
    assert.equal(calls, 3);
    await spans.get(1, signal);
    assert.equal(calls, 4);
    await spans.get(3, signal);
    await spans.get(3, signal);
    assert.equal(calls, 6);
  });

  it('lets one request give up without disturbing the others, and aborts the fetch when all have', async () => {
    const reader = new ManualReader();
    const spans = new RecentSpans(reader, 100);
    const [a, b] = [new AbortController(), new AbortController()];
    const first = spans.get(1, a.signal);
    const second = spans.get(1, b.signal);
    await tick();
    a.abort(new Error('first gave up'));
    await assert.rejects(first, /first gave up/);
    assert.equal(reader.calls[0].signal.aborted, false);
    b.abort(new Error('second gave up'));
    await assert.rejects(second, /second gave up/);
    assert.equal(reader.calls[0].signal.aborted, true);
    // A late answer is ignored; the next request starts a new fetch.
    reader.calls[0].resolve(Buffer.from('late'));
    const third = spans.get(1, new AbortController().signal);
    await tick();
    assert.equal(reader.calls.length, 2);
    reader.calls[1].resolve(Buffer.from('fresh'));
    assert.equal((await third).toString(), 'fresh');
  });

  it('does not keep failures, and a failure nobody waits for is not an unhandled rejection', async () => {
    const reader = new ManualReader();
    const spans = new RecentSpans(reader, 100);
    const gaveUp = new AbortController();
    const abandoned = spans.get(0, gaveUp.signal);
    await tick();
    gaveUp.abort(new Error('gone'));
    await assert.rejects(abandoned);
    reader.calls[0].reject(new Error('failed after everyone left'));
    const failing = spans.get(5, new AbortController().signal);
    await tick();
    reader.calls[1].reject(new Error('registry unreachable'));
    await assert.rejects(failing, /registry unreachable/);
    const retry = spans.get(5, new AbortController().signal);
    await tick();
    assert.equal(reader.calls.length, 3);
    reader.calls[2].resolve(Buffer.from('ok'));
    assert.equal((await retry).toString(), 'ok');
  });

  it('turns a SpanReader that throws synchronously into a rejection, and refuses an already aborted request', async () => {
    const spans = new RecentSpans(
      {
        readSpan: () => {
          throw new Error('sync failure');
        },
      },
      100,
    );
    await assert.rejects(spans.get(0, new AbortController().signal), /sync failure/);
    await assert.rejects(spans.get(0, AbortSignal.abort(new Error('already'))), /already/);
  });
});
