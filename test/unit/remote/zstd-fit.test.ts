/**
 * A zstd layer is served only from the content cache as a whole (it has no random access), so a cache
 * whose max_size cannot hold it all makes LazyLayers refuse the layer (containerd unpacks it) instead of
 * mounting one whose reads would fail with EIO.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClipArchive } from '../../../src/archive';
import { NotImplementedError } from '../../../src/errors';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { RegistryClient } from '../../../src/registry';
import { ArchiveStore } from '../../../src/remote/archive-store';
import { LazyLayers } from '../../../src/remote/lazy-layers';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST } from '../../../src/snapshotter/labels';
import { tempDir } from '../../helpers/processes';
import { recordingLogger } from '../published/fixtures';

const SPAN = 1 << 20;
const LAYER = `sha256:${'5'.repeat(64)}`;

/** A valid archive of a zstd layer of three 1 MiB spans. */
const archive: ClipArchive = {
  layerDigest: LAYER,
  diffId: `sha256:${'6'.repeat(64)}`,
  mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
  compression: 'zstd',
  compressedSize: 4096,
  uncompressedSize: 3 * SPAN,
  entries: [{ path: '.', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeMs: 0, dataOffset: 0, linkTarget: '', devMajor: 0, devMinor: 0, xattrs: {} }],
  checkpoints: [0, 1, 2].map((i) => ({ compressedOffset: 0, uncompressedOffset: i * SPAN, bits: 0, window: Buffer.alloc(0) })),
  spanDigests: [0, 1, 2].map((i) => `sha256:${String(i).repeat(64)}`),
};

describe('a zstd layer and the content cache bound', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('zstd-fit');
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('is refused, before anything is mounted or fetched, when the cache cannot hold all of it; its archive stays', async () => {
    const archives = new ArchiveStore(path.join(dir, 'archives'), 1 << 30, recordingLogger());
    await archives.put(archive, { source: 'local' });
    const cache = new ContentCache(path.join(dir, 'cache'), { maxBytes: 3 * SPAN - 4096 });
    // Nothing listens there: any registry request would fail with another error.
    const registry = new RegistryClient({ retry: { maxAttempts: 1 } });
    const layers = new LazyLayers({
      registry,
      archives,
      cache,
      logger: recordingLogger(),
      spanSize: SPAN,
      cacheWhileIndexing: false,
      backgroundFetch: false,
      prefetchImageLayers: false,
      indexConcurrency: 1,
      readTimeoutMs: 1000,
    });
    const target = path.join(dir, 'mnt');
    await fsp.mkdir(target);
    const labels = { [LABEL_CRI_IMAGE_REF]: '127.0.0.1:1/zstd/image:1', [LABEL_CRI_LAYER_DIGEST]: LAYER };
    await assert.rejects(
      layers.mount(target, labels),
      (err: unknown) => err instanceof NotImplementedError && /is zstd, .* its 3145728 bytes do not fit in \[cache\] max_size \(3141632 bytes\)/.test((err as Error).message),
    );
    assert.equal(layers.mountedCount, 0);
    assert.ok(await archives.get(LAYER), 'the archive is kept');
    assert.equal(cache.canHoldAtOnce([SPAN, SPAN, SPAN]), false);
    assert.equal(new ContentCache(path.join(dir, 'cache'), { maxBytes: 3 * SPAN }).canHoldAtOnce([SPAN, SPAN, SPAN]), true);
    await registry.close();
  });
});
