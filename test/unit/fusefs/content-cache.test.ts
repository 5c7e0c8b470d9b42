import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ContentCache, spanFileName } from '../../../src/fusefs/content-cache';
import { tempDir } from '../../helpers/processes';

const LAYER = `sha256:${'ab'.repeat(32)}`;
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('ContentCache span writers', () => {
  let dir: string;
  let cache: ContentCache;
  before(async () => {
    dir = await tempDir('content-cache');
    cache = new ContentCache(dir);
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  const files = () => fsp.readdir(cache.spanDir(LAYER)).then((names) => names.sort());
  const HELLO = sha('hello, world');

  it('shows a span only once committed, under its digest, then counts it as verified', async () => {
    const verified: string[] = [];
    const stop = cache.watchVerified(LAYER, (d) => verified.push(d));
    const writer = await cache.openSpanWriter(LAYER);
    await writer.write(Buffer.from('hello, '));
    await writer.write(Buffer.from('world'));
    assert.equal(await cache.get(LAYER, HELLO), undefined, 'not visible while written');
    assert.equal(cache.isVerified(LAYER, HELLO), false);
    await writer.commit(HELLO);
    assert.equal((await cache.get(LAYER, HELLO))?.toString(), 'hello, world');
    assert.equal(cache.isVerified(LAYER, HELLO), true);
    assert.deepEqual(verified, [HELLO]);
    assert.deepEqual(await files(), [spanFileName(HELLO)], 'no temporary file is left');
    assert.deepEqual([...(await cache.cachedSpans(LAYER))], [HELLO]);
    await assert.rejects(writer.write(Buffer.from('late')), /after commit or abort/);
    stop();
  });

  it('leaves nothing behind when a span is aborted', async () => {
    const writer = await cache.openSpanWriter(LAYER);
    await writer.write(Buffer.alloc(1000, 7));
    await writer.abort();
    assert.equal(await cache.get(LAYER, sha(Buffer.alloc(1000, 7))), undefined);
    assert.deepEqual(await files(), [spanFileName(HELLO)]);
  });

  it('put writes a whole span the same way; removeSpans drops only the spans named', async () => {
    await cache.put(LAYER, sha('five'), Buffer.from('five'));
    assert.equal((await cache.get(LAYER, sha('five')))?.toString(), 'five');
    assert.deepEqual(await files(), [spanFileName(HELLO), spanFileName(sha('five'))].sort());
    await cache.removeSpans(LAYER, [sha('five')]);
    assert.deepEqual(await files(), [spanFileName(HELLO)]);
    assert.equal(cache.isVerified(LAYER, sha('five')), false);
  });

  it('removes span files named by index, as an older clip wrote them, and nothing else', async () => {
    await fsp.writeFile(`${cache.spanDir(LAYER)}/0`, 'old');
    await fsp.writeFile(`${cache.spanDir(LAYER)}/17`, 'old');
    assert.equal(await cache.removeIndexNamedSpans(), 2);
    assert.deepEqual(await files(), [spanFileName(HELLO)]);
  });

  it('never counts a temporary file left by a process killed mid-write as a span', async () => {
    const writer = await cache.openSpanWriter(LAYER);
    await writer.write(Buffer.from('hello, wor')); // the process dies here: no commit, no abort
    const fresh = new ContentCache(dir); // the next process
    assert.deepEqual([...(await fresh.cachedSpans(LAYER))], [HELLO], 'only the committed span');
    assert.equal(fresh.isVerified(LAYER, HELLO), false, 'and even that is checked before it is served');
    assert.equal(await fresh.readSlice(LAYER, HELLO, 0, 5), undefined);
    await writer.abort();
  });

  it('refuses span keys that are not sha256 digests (no path tricks)', async () => {
    await assert.rejects(cache.get(LAYER, '../../etc/passwd'), /invalid span digest/);
    await assert.rejects(cache.put(LAYER, 'sha256:../x', Buffer.from('x')), /invalid span digest/);
  });
});
