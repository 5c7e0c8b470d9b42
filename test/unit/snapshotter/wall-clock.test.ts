import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nowMicros, timestampOfMicros } from '../../../src/snapshotter/wall-clock';

describe('wall clock', () => {
  it('stays inside the millisecond Date.now() reports around it', () => {
    for (let i = 0; i < 1000; i++) {
      const before = Date.now();
      const us = nowMicros();
      const after = Date.now();
      assert.ok(Number.isSafeInteger(us));
      assert.ok(us >= before * 1000 && us < (after + 1) * 1000, `${us} outside [${before}, ${after}] ms`);
    }
  });

  it('keeps microseconds: successive readings are not all whole milliseconds', () => {
    const readings = Array.from({ length: 200 }, () => nowMicros());
    assert.ok(readings.some((us) => us % 1000 !== 0));
  });

  it('converts to a protobuf Timestamp without losing microseconds', () => {
    assert.deepEqual(timestampOfMicros(1_733_390_000_123_456), { seconds: 1_733_390_000, nanos: 123_456_000 });
    assert.deepEqual(timestampOfMicros(0), { seconds: 0, nanos: 0 });
    assert.deepEqual(timestampOfMicros(1_999_999), { seconds: 1, nanos: 999_999_000 });
  });
});
