import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { tempDir } from '../../helpers/processes';

const LAYER = `sha256:${'ab'.repeat(32)}`;

describe('ContentCache span writers', () => {
  let dir: string;
  let cache: ContentCache;
  before(async () => {
    dir = await tempDir('content-cache');
    cache = new ContentCache(dir);
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  const files = () => fsp.readdir(cache.spanDir(LAYER)).then((names) => names.sort());

  it('shows a span only once committed, then counts it as verified', async () => {
    const verified: number[] = [];
    const stop = cache.watchVerified(LAYER, (i) => verified.push(i));
    const writer = await cache.openSpanWriter(LAYER, 3);
    await writer.write(Buffer.from('hello, '));
    await writer.write(Buffer.from('world'));
    assert.equal(await cache.get(LAYER, 3), undefined, 'not visible while written');
    assert.equal(cache.isVerified(LAYER, 3), false);
    await writer.commit();
    assert.equal((await cache.get(LAYER, 3))?.toString(), 'hello, world');
    assert.equal(cache.isVerified(LAYER, 3), true);
    assert.deepEqual(verified, [3]);
    assert.deepEqual(await files(), ['3'], 'no temporary file is left');
    await assert.rejects(writer.write(Buffer.from('late')), /after commit or abort/);
    stop();
  });

  it('leaves nothing behind when a span is aborted', async () => {
    const writer = await cache.openSpanWriter(LAYER, 4);
    await writer.write(Buffer.alloc(1000, 7));
    await writer.abort();
    assert.equal(await cache.get(LAYER, 4), undefined);
    assert.equal(cache.isVerified(LAYER, 4), false);
    assert.deepEqual(await files(), ['3']);
  });

  it('put writes a whole span the same way', async () => {
    await cache.put(LAYER, 5, Buffer.from('five'));
    assert.equal((await cache.get(LAYER, 5))?.toString(), 'five');
    assert.deepEqual(await files(), ['3', '5']);
  });
});
