import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attemptDeadlineMs, formatBytes } from '../../../src/registry/attempt-deadline';
import { ProgressRule } from '../../../src/registry/progress-rule';

describe('minimum-progress rule', () => {
  it('is broken when a window of waiting brings fewer than minBytes', () => {
    const rule = new ProgressRule(100, 1000);
    rule.waitStarted(0);
    assert.equal(rule.remainingMs(400), 600);
    rule.received(1, 400); // a trickle: the window goes on
    rule.waitStarted(400);
    assert.equal(rule.remainingMs(900), 100);
    rule.received(1, 900);
    rule.waitStarted(900);
    assert.equal(rule.remainingMs(1000), 0);
    assert.equal(rule.bytesInWindow, 2);
  });

  it('starts a new window once minBytes have arrived', () => {
    const rule = new ProgressRule(100, 1000);
    rule.waitStarted(0);
    rule.received(60, 700);
    rule.waitStarted(700);
    rule.received(40, 990);
    assert.equal(rule.bytesInWindow, 0);
    rule.waitStarted(990);
    assert.equal(rule.remainingMs(1990), 0);
    assert.ok(rule.remainingMs(1500) > 0);
  });

  it('does not count time the reader spends not waiting (backpressure)', () => {
    const rule = new ProgressRule(100, 1000);
    rule.waitStarted(0);
    rule.received(10, 500);
    assert.equal(rule.remainingMs(60_000), Number.POSITIVE_INFINITY); // the consumer is busy for a minute
    rule.waitStarted(60_000);
    assert.equal(rule.remainingMs(60_200), 300);
  });

  it('waitStarted twice keeps the first start', () => {
    const rule = new ProgressRule(100, 1000);
    rule.waitStarted(0);
    rule.waitStarted(500);
    assert.equal(rule.remainingMs(600), 400);
  });
});

describe('attempt deadline', () => {
  const limits = { requestMs: 30_000, minBytesPerSecond: 32 * 1024, progressWindowMs: 30_000 };

  it('is the request timeout for small responses', () => {
    assert.equal(attemptDeadlineMs(limits), 30_000);
  });

  it('grows with the expected size at the minimum rate', () => {
    assert.equal(attemptDeadlineMs(limits, 0), 30_000);
    assert.equal(attemptDeadlineMs(limits, 4 * 1024 * 1024), 30_000 + 128_000);
    assert.equal(attemptDeadlineMs(limits, 1), 30_001);
  });

  it('formats sizes for messages', () => {
    assert.equal(formatBytes(512), '512 bytes');
    assert.equal(formatBytes(32 * 1024), '32 KiB');
    assert.equal(formatBytes(983_040), '960 KiB');
    assert.equal(formatBytes(1536 * 1024), '1.5 MiB');
  });
});
