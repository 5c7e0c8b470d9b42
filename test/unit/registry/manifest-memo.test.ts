/** ManifestMemo: manifests fetched by digest are fetched once per repository, within its bounds. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManifestMemo } from '../../../src/registry/manifest-memo';
import type { FetchedManifest } from '../../../src/registry/registry-client';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const fetched = (size: number): FetchedManifest => ({ digest: DIGEST, size, bytes: Buffer.alloc(size) }) as unknown as FetchedManifest;

function counting(size = 100): { fetch: () => Promise<FetchedManifest>; calls: () => number } {
  let calls = 0;
  return { fetch: async () => (calls++, fetched(size)), calls: () => calls };
}

describe('ManifestMemo', () => {
  it('fetches a manifest once for concurrent and later callers of one repository, again for another repository', async () => {
    const memo = new ManifestMemo();
    const f = counting();
    const [a, b] = await Promise.all([memo.get('r/one', DIGEST, f.fetch), memo.get('r/one', DIGEST, f.fetch)]);
    assert.equal(a, b);
    await memo.get('r/one', DIGEST, f.fetch);
    assert.equal(f.calls(), 1);
    await memo.get('r/two', DIGEST, f.fetch);
    assert.equal(f.calls(), 2, 'another repository asks its registry itself');
  });

  it('forgets a failed fetch, an old entry, and keeps within its entry and byte bounds', async () => {
    let t = 0;
    const memo = new ManifestMemo({ maxEntries: 2, maxEntryBytes: 1000, maxBytes: 1500, maxAgeMs: 10 }, () => t);
    await assert.rejects(memo.get('r', DIGEST, async () => Promise.reject(new Error('503'))), /503/);
    const f = counting(800);
    await memo.get('r', DIGEST, f.fetch);
    assert.equal(f.calls(), 1, 'the failure was not remembered');
    t = 11;
    await memo.get('r', DIGEST, f.fetch);
    assert.equal(f.calls(), 2, 'older than maxAgeMs: fetched again');

    await memo.get('s', DIGEST, counting(800).fetch);
    assert.equal(memo.size, 1, '1600 bytes is over maxBytes: the oldest went');
    await memo.get('t', DIGEST, counting(2000).fetch);
    assert.equal(memo.size, 1, 'a manifest over maxEntryBytes is not kept');
    await memo.get('u', DIGEST, counting(10).fetch);
    await memo.get('v', DIGEST, counting(10).fetch);
    assert.equal(memo.size, 2, 'at most maxEntries');
  });
});
