import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { InvalidArgumentError } from '../../../src/errors';
import { detectCompression, layerCompression, UnsupportedCompressionError } from '../../../src/indexer';

const GZIP_HEAD = zlib.gzipSync(Buffer.from('x')).subarray(0, 4);
const ZSTD_HEAD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const TAR_HEAD = Buffer.from('etc/');

describe('detectCompression', () => {
  it('recognises gzip and zstd by their magic numbers, anything else as uncompressed', () => {
    assert.equal(detectCompression(GZIP_HEAD), 'gzip');
    assert.equal(detectCompression(ZSTD_HEAD), 'zstd');
    assert.equal(detectCompression(TAR_HEAD), 'none');
    assert.equal(detectCompression(Buffer.alloc(0)), 'none');
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b])), 'none', 'too short to tell');
  });
});

describe('layerCompression', () => {
  it('follows an explicit media type', () => {
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip'), 'gzip');
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar'), 'none');
  });

  it('sniffs the first bytes when the media type does not say', () => {
    const docker = 'application/vnd.docker.image.rootfs.diff.tar';
    assert.equal(layerCompression(docker, GZIP_HEAD), 'gzip');
    assert.equal(layerCompression(docker, TAR_HEAD), 'none');
    assert.throws(() => layerCompression(docker), InvalidArgumentError);
  });

  it('takes zstd layers, by media type or by their first bytes', () => {
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar.zstd'), 'zstd');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar', ZSTD_HEAD), 'zstd');
  });

  it('answers encrypted layers with UnsupportedCompressionError, so the caller can unpack normally', () => {
    for (const [mediaType, head] of [
      ['application/vnd.oci.image.layer.v1.tar+gzip+encrypted', GZIP_HEAD],
      ['application/vnd.oci.image.layer.v1.tar+zstd+encrypted', ZSTD_HEAD],
    ] as const) {
      assert.throws(
        () => layerCompression(mediaType, head),
        (err: unknown) =>
          err instanceof UnsupportedCompressionError &&
          err.code === 'NOT_IMPLEMENTED' &&
          /not supported for lazy loading/.test(err.message),
        mediaType,
      );
    }
  });
});
