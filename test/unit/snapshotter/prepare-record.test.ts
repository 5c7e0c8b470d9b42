import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrepareRecord } from '../../../src/snapshotter/prepare-record';

test('outcomes are counted; the latest fallback per layer is kept, bounded, and forgotten once the layer is served lazily', () => {
  const counted: string[] = [];
  const record = new PrepareRecord({ prepared: (outcome, reason) => counted.push(`${outcome}/${reason}`) });
  record.local();
  record.fallback({ layerDigest: 'sha256:1', imageRef: 'r/a', reason: 'tls', at: 1 });
  record.fallback({ layerDigest: 'sha256:1', imageRef: 'r/a', reason: 'auth', hint: 'creds', at: 2 });
  assert.deepEqual(record.recentFallbacks().map((f) => f.reason), ['auth']);
  record.remote('sha256:1');
  assert.deepEqual(record.recentFallbacks(), []);
  assert.deepEqual(counted, ['local/', 'fallback/tls', 'fallback/auth', 'remote/']);
  for (let i = 0; i < 600; i++) record.fallback({ layerDigest: `sha256:${i}`, imageRef: '', reason: 'other', at: i });
  const kept = record.recentFallbacks();
  assert.equal(kept.length, 512);
  assert.equal(kept[kept.length - 1]!.layerDigest, 'sha256:599');
});
