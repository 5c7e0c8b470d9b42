import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { DigestMismatchError, MediaTypes, UnsupportedManifestError, computeDigest, parseImageConfig, parseManifest, validateDigest, verifyDigest } from '../../../src/registry';

const D = (c: string) => `sha256:${c.repeat(64)}`;
const manifest = (extra: object = {}) => ({
  schemaVersion: 2,
  config: { mediaType: MediaTypes.ociConfig, digest: D('c'), size: 10 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D('1'), size: 100 }],
  ...extra,
});
const buf = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('manifests', () => {
  it('parses OCI and Docker manifests, taking the type from the body first', () => {
    const oci = parseManifest(buf(manifest({ mediaType: MediaTypes.ociManifest })), 'application/json', 'm');
    assert.equal(oci.kind, 'manifest');
    assert.equal(oci.mediaType, MediaTypes.ociManifest);
    const docker = parseManifest(buf(manifest({ mediaType: MediaTypes.dockerManifest })), MediaTypes.dockerManifest, 'm');
    assert.equal(docker.mediaType, MediaTypes.dockerManifest);
    const byHeader = parseManifest(buf(manifest()), `${MediaTypes.ociManifest}; charset=utf-8`, 'm');
    assert.equal(byHeader.mediaType, MediaTypes.ociManifest);
    const byShape = parseManifest(buf(manifest()), 'text/plain', 'm');
    assert.equal(byShape.mediaType, MediaTypes.ociManifest);
  });

  it('parses indexes and manifest lists', () => {
    const list = { schemaVersion: 2, mediaType: MediaTypes.dockerManifestList, manifests: [{ mediaType: MediaTypes.dockerManifest, digest: D('a'), size: 5, platform: { os: 'linux', architecture: 'amd64' } }] };
    const parsed = parseManifest(buf(list), MediaTypes.dockerManifestList, 'm');
    assert.equal(parsed.kind, 'index');
    assert.equal(parsed.kind === 'index' && parsed.index.manifests.length, 1);
    assert.equal(parseManifest(buf({ schemaVersion: 2, manifests: [] }), MediaTypes.ociIndex, 'm').kind, 'index');
  });

  it('rejects schema 1 clearly, by header or body', () => {
    for (const [body, type] of [
      [{ schemaVersion: 1, name: 'x', fsLayers: [] }, MediaTypes.dockerSchema1Signed],
      [{ schemaVersion: 1, name: 'x', fsLayers: [] }, 'application/json'],
      [{ schemaVersion: 1 }, MediaTypes.dockerSchema1],
    ] as const) {
      assert.throws(() => parseManifest(buf(body), type, 'img'), (err: Error) => err instanceof UnsupportedManifestError && /schema 1/.test(err.message) && err.message.startsWith('img: '));
    }
  });

  for (const [body, why] of [
    ['nope', /not a JSON object/],
    [{ schemaVersion: 2 }, /cannot tell its type/],
    [manifest({ schemaVersion: 3 }), /schemaVersion 3/],
    [manifest({ layers: {} }), /cannot tell|layers array/],
    [manifest({ config: { mediaType: 'x', digest: 'sha256:zz', size: 1 } }), /config\.digest/],
    [manifest({ layers: [{ mediaType: 'x', digest: D('1'), size: -1 }] }), /layers\[0\]\.size/],
    [{ schemaVersion: 2, mediaType: 'application/vnd.example+json' }, /unsupported manifest media type/],
  ] as const) {
    it(`rejects ${JSON.stringify(body).slice(0, 60)}`, () => {
      const data = typeof body === 'string' ? Buffer.from(body) : buf(body);
      assert.throws(() => parseManifest(data, 'application/json', 'm'), why);
    });
  }

  it('computes and verifies digests', () => {
    const data = Buffer.from('hello');
    const d = computeDigest(data);
    assert.equal(d, 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.doesNotThrow(() => verifyDigest(data, d, 'x'));
    assert.throws(() => verifyDigest(Buffer.from('hellO'), d, 'blob x'), (err: Error) => err instanceof DigestMismatchError && /blob x: digest mismatch/.test(err.message));
    assert.doesNotThrow(() => verifyDigest(data, computeDigest(data, 'sha512'), 'x'));
    assert.throws(() => validateDigest('sha256:ABC'), InvalidArgumentError);
  });

  it('reads diff_ids from an image config', () => {
    const cfg = parseImageConfig(buf({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D('e')] } }), D('c'), 'cfg');
    assert.deepEqual(cfg.diffIds, [D('e')]);
    assert.throws(() => parseImageConfig(buf({ rootfs: {} }), D('c'), 'cfg'), /rootfs\.diff_ids/);
    assert.throws(() => parseImageConfig(buf({ rootfs: { diff_ids: ['x'] } }), D('c'), 'cfg'), /invalid digest/);
  });
});
