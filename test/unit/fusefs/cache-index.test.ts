import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CacheIndex, diskBytes, pickVictims, type CachedSpan } from '../../../src/fusefs/cache-index';
import { expiredLayers } from '../../../src/fusefs/cache-collector';

const span = (layer: string, name: string, lastRead: number, bytes = 4096): CachedSpan => ({ layer, span: name, bytes, lastRead });

describe('content cache eviction order', () => {
  const spans = [
    span('mounted', 'm-old', 1),
    span('idle', 'i-new', 50),
    span('mounted', 'm-new', 100),
    span('idle', 'i-old', 10),
  ];
  const isMounted = (layer: string): boolean => layer === 'mounted';

  it('evicts spans of unmounted layers first, least recently read first, then cold spans of mounted layers', () => {
    const names = (need: number): string[] => pickVictims(spans, need, isMounted).map((s) => s.span);
    assert.deepEqual(names(1), ['i-old']);
    assert.deepEqual(names(4096), ['i-old']);
    assert.deepEqual(names(4097), ['i-old', 'i-new']);
    assert.deepEqual(names(3 * 4096), ['i-old', 'i-new', 'm-old']);
    assert.deepEqual(names(100 * 4096), ['i-old', 'i-new', 'm-old', 'm-new'], 'everything when not enough');
    assert.deepEqual(names(0), []);
  });

  it('never picks spans of mounted layers for a background write', () => {
    const names = pickVictims(spans, 100 * 4096, isMounted, { unmountedOnly: true }).map((s) => s.span);
    assert.deepEqual(names, ['i-old', 'i-new']);
  });
});

describe('CacheIndex', () => {
  it('counts disk bytes in whole blocks per span and per layer, and keeps the latest read time', () => {
    assert.equal(diskBytes(0), 0);
    assert.equal(diskBytes(1), 4096);
    assert.equal(diskBytes(4096), 4096);
    assert.equal(diskBytes(4097), 8192);
    const index = new CacheIndex();
    index.add('a', 's1', 8192, 5);
    index.add('a', 's2', 4096, 7);
    index.add('b', 's3', 4096, 1);
    index.add('a', 's1', 8192, 3); // the same span again: counted once, read time kept at the later one
    assert.equal(index.totalBytes, 16384);
    assert.deepEqual(index.usage(), [
      { digest: 'a', bytes: 12288, spans: 2 },
      { digest: 'b', bytes: 4096, spans: 1 },
    ]);
    index.noteRead('b', 's3', 20);
    index.noteRead('b', 's3', 2); // older: ignored
    assert.equal([...index.spans()].find((s) => s.span === 's3')?.lastRead, 20);
    index.remove('a', 's2');
    index.remove('a', 'nope');
    assert.equal(index.totalBytes, 12288);
    index.removeLayer('a');
    assert.equal(index.totalBytes, 4096);
    assert.deepEqual(index.layerDigests(), ['b']);
  });
});

describe('cache collection', () => {
  it('expires layers unreferenced for at least the grace period', () => {
    const since = new Map([
      ['old', 1000],
      ['edge', 2000],
      ['new', 2500],
    ]);
    assert.deepEqual(expiredLayers(since, 3000, 1000), ['old', 'edge']);
    assert.deepEqual(expiredLayers(since, 3000, 0), ['old', 'edge', 'new']);
  });
});
