/**
 * The package's entry point (src/index.ts) as an embedder uses it: index a layer blob from a file, mount
 * the archive on a directory with the bytes read from that file through FUSE, unmount it. This test process
 * serves the mount, so it only touches it with asynchronous fs calls.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { scanCache } from '../../../src/fusefs/cache-scan';
import * as clip from '../../../src/index';
import { mountsUnder } from '../../helpers/stack';
import { pythonTars, randomBytes } from '../../unit/indexer/fixtures';

let dir: string;
let layerFile: string;
const big = randomBytes(3 << 20, 11);

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'clip-api-'));
  const { layer } = pythonTars({
    layer: `tf = tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT)
add(tf, 'etc', tarfile.DIRTYPE, mode=0o755)
add(tf, 'etc/hello', data=b'hello from the library\\n')
add(tf, 'etc/.wh.gone')
add(tf, 'data', tarfile.DIRTYPE, mode=0o755)
add(tf, 'data/big.bin', data=base64.b64decode('${big.toString('base64')}'))
tf.close()`,
  });
  layerFile = path.join(dir, 'layer.tar.gz');
  await fsp.writeFile(layerFile, gzipSync(layer));
});

after(async () => {
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new Error(`mounts left under ${dir}: ${left.join(', ')}`);
  await fsp.rm(dir, { recursive: true, force: true });
});

test('index a layer file, mount its archive, read through it, unmount', { timeout: 120_000 }, async () => {
  const archive = await clip.indexLayerFile(layerFile, { spanSize: 1 << 20 });
  assert.equal(archive.compression, 'gzip');
  assert.equal(archive.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.ok(archive.checkpoints.length >= 3);
  const [file] = await clip.writeArchives(path.join(dir, 'archives'), [archive]);
  assert.equal(path.basename(file!), clip.archiveFileName(archive.layerDigest));
  assert.deepEqual(await clip.readArchiveFile(file!), archive);
  assert.equal(clip.summarizeArchive(await fsp.readFile(file!)).entries.whiteouts, 1);

  const target = path.join(dir, 'mnt');
  await fsp.mkdir(target);
  const mounted = await clip.mountArchive(archive, target, { source: { layerFile } });
  try {
    assert.deepEqual(await mountsUnder(target), [target]);
    assert.equal(await fsp.readFile(path.join(target, 'etc/hello'), 'utf8'), 'hello from the library\n');
    assert.ok((await fsp.readFile(path.join(target, 'data/big.bin'))).equals(big));
    assert.ok((await fsp.stat(path.join(target, 'etc/gone'))).isCharacterDevice(), 'a whiteout, in overlayfs form');
    await assert.rejects(fsp.writeFile(path.join(target, 'etc/new'), 'x'), { code: 'EROFS' });
  } finally {
    await mounted.unmount();
  }
  assert.deepEqual(await mountsUnder(dir), []);
  await mounted.unmount(); // twice is harmless

  // With bounds, the cache keeps no more than them: reads are still served (from memory past the bound).
  const cacheDir = path.join(dir, 'bounded-cache');
  const bounded = await clip.mountArchive(archive, target, { source: { layerFile }, cacheDir, cacheBounds: { maxBytes: 1 << 20 } });
  try {
    assert.ok((await fsp.readFile(path.join(target, 'data/big.bin'))).equals(big));
  } finally {
    await bounded.unmount();
  }
  const cached = (await scanCache(cacheDir)).spans.reduce((n, s) => n + s.bytes, 0);
  assert.ok(cached > 0 && cached <= 1 << 20, `${cached} bytes cached, bound 1 MiB`);
});

test('the entry point exports the documented API with its errors', () => {
  for (const name of ['indexImage', 'indexLayerFile', 'writeArchives', 'mountArchive', 'unmountImage', 'publishArchives', 'summarizeArchive', 'decodeArchive']) {
    assert.equal(typeof (clip as Record<string, unknown>)[name], 'function', name);
  }
  assert.equal(typeof clip.ImageMount.mount, 'function');
  assert.equal(clip.ARCHIVE_ARTIFACT_TYPE, 'application/vnd.clip.archive.v1');
  assert.ok(new clip.NotFoundError('x') instanceof clip.ClipError);
});
