/**
 * When a start-up profile is stored (ProfileRecorder), and how a profile is replayed, with mock timers and
 * an in-memory archive store: the settle rule, the window cap, stop() at unmount, and nothing for a layer
 * that was never read.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import winston from 'winston';
import type { ClipArchive } from '../../../src/archive';
import type { ArchiveStore, StoredArchive } from '../../../src/remote/archive-store';
import { MAX_PROFILE_SPANS, ProfileRecorder } from '../../../src/remote/startup-profile';

const logger = winston.createLogger({ silent: true });
/** A valid archive of an uncompressed 20 000-byte layer in 2000 spans of 10 bytes. */
const archive: ClipArchive = {
  layerDigest: `sha256:${'a'.repeat(64)}`,
  diffId: `sha256:${'a'.repeat(64)}`,
  mediaType: 'application/vnd.oci.image.layer.v1.tar',
  compression: 'none',
  compressedSize: 20_000,
  uncompressedSize: 20_000,
  entries: [{ path: '.', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeMs: 0, dataOffset: 0, linkTarget: '', devMajor: 0, devMinor: 0, xattrs: {} }],
  checkpoints: Array.from({ length: 2000 }, (_, i) => ({ compressedOffset: i * 10, uncompressedOffset: i * 10, bits: 0, window: Buffer.alloc(0) })),
  spanDigests: Array.from({ length: 2000 }, () => `sha256:${'b'.repeat(64)}`),
};
const recorded: StoredArchive = { archive, provenance: { source: 'local' }, digest: `sha256:${'c'.repeat(64)}` };
/** Lets the recorder's store calls (a get, the archive's new file, then a put) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}

function setup(current: string = recorded.digest) {
  const stored: ClipArchive[] = [];
  const store = {
    get: async () => ({ ...recorded, digest: current }),
    put: async (a: ClipArchive) => void stored.push(a),
  } as unknown as ArchiveStore;
  let touched: number[] = [];
  let readMap: Uint8Array = new Uint8Array(1);
  const source = { touchedSpans: () => touched, readMap: () => readMap };
  return { stored, store, source, touch: (spans: number[]) => (touched = spans), read: (map: Uint8Array) => (readMap = map) };
}

describe('start-up profile recording', () => {
  it('stores the spans once reads have settled for 10 s, in their order, and only once', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const { stored, store, source, touch, read } = setup();
    const recorder = new ProfileRecorder(recorded, source, store, logger);
    t.mock.timers.tick(20_000);
    assert.equal(stored.length, 0, 'nothing read, nothing stored');
    touch([5, 1]);
    t.mock.timers.tick(2_000); // a poll sees the first reads
    touch([5, 1, 9]);
    read(Uint8Array.of(0b0001_0011)); // blocks 0, 1 and 4 of the 20 000-byte stream (block 4 is its end)
    t.mock.timers.tick(2_000); // the next poll sees a new span
    t.mock.timers.tick(8_000);
    assert.equal(stored.length, 0, 'a new span 8 s ago');
    t.mock.timers.tick(2_000);
    await settle();
    assert.deepEqual(stored.map((a) => a.startupSpans), [[5, 1, 9]]);
    assert.deepEqual(stored[0]!.startupRanges, [[0, 8192], [16384, 20_000]]);
    touch([5, 1, 9, 3]);
    t.mock.timers.tick(60_000);
    await recorder.stop();
    assert.equal(stored.length, 1, 'a profile is stored once');
  });

  it('stores what it has 60 s after the first read even if reads go on', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const { stored, store, source, touch } = setup();
    new ProfileRecorder(recorded, source, store, logger);
    const spans: number[] = [];
    for (let s = 0; s < 31; s++) {
      spans.push(s);
      touch([...spans]);
      t.mock.timers.tick(2_000);
    }
    await settle();
    assert.equal(stored.length, 1);
    assert.ok(stored[0]!.startupSpans!.length >= 29 && stored[0]!.startupSpans!.length <= 31, String(stored[0]!.startupSpans!.length));
  });

  it('stores at stop() what was read so far, capped, and nothing for a layer never read', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
    const read = setup();
    const recorder = new ProfileRecorder(recorded, read.source, read.store, logger);
    read.touch(Array.from({ length: MAX_PROFILE_SPANS + 10 }, (_, i) => i));
    await recorder.stop();
    assert.equal(read.stored[0]!.startupSpans!.length, MAX_PROFILE_SPANS);

    const replaced = setup(`sha256:${'d'.repeat(64)}`);
    const other = new ProfileRecorder(recorded, replaced.source, replaced.store, logger);
    replaced.touch([1, 2]);
    await other.stop();
    assert.equal(replaced.stored.length, 0, 'nothing is stored over an archive the store has replaced since');

    const unread = setup();
    await new ProfileRecorder(recorded, unread.source, unread.store, logger).stop();
    assert.equal(unread.stored.length, 0);
  });

  it('tells onSaved once the profile is stored (auto_publish publishes it), and never when nothing is', async () => {
    const saved = setup();
    let told = 0;
    const recorder = new ProfileRecorder(recorded, saved.source, saved.store, logger, () => told++);
    saved.touch([3]);
    await recorder.stop();
    assert.equal(saved.stored.length, 1);
    assert.equal(told, 1);

    const replaced = setup(`sha256:${'d'.repeat(64)}`);
    let toldReplaced = 0;
    const other = new ProfileRecorder(recorded, replaced.source, replaced.store, logger, () => toldReplaced++);
    replaced.touch([1]);
    await other.stop();
    assert.equal(toldReplaced, 0, 'not stored, not told');
  });
});
