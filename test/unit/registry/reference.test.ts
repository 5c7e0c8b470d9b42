import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { parseReference } from '../../../src/registry';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  for (const [input, domain, path, tag, digest] of [
    ['busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
    ['library/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['index.docker.io/library/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
    ['user/app:v1', 'docker.io', 'user/app', 'v1', undefined],
    ['ghcr.io/org/sub/app:2.0-rc.1', 'ghcr.io', 'org/sub/app', '2.0-rc.1', undefined],
    ['localhost/app', 'localhost', 'app', 'latest', undefined],
    ['localhost:5000/app', 'localhost:5000', 'app', 'latest', undefined],
    ['127.0.0.1:41234/clip/test:multilayer', '127.0.0.1:41234', 'clip/test', 'multilayer', undefined],
    ['[::1]:5000/app', '[::1]:5000', 'app', 'latest', undefined],
    [`busybox@${DIGEST}`, 'docker.io', 'library/busybox', undefined, DIGEST],
    [`quay.io/a/b:tag@${DIGEST}`, 'quay.io', 'a/b', 'tag', DIGEST],
    ['org/a.b-c__d--e', 'docker.io', 'org/a.b-c__d--e', 'latest', undefined],
    ['a.b/c', 'a.b', 'c', 'latest', undefined],
    ['Registry/app', 'Registry', 'app', 'latest', undefined],
  ] as const) {
    it(`parses ${input}`, () => {
      const ref = parseReference(input);
      assert.deepEqual([ref.domain, ref.path, ref.tag, ref.digest], [domain, path, tag, digest]);
    });
  }

  it('formats the normalised form and derives the manifest object and scope', () => {
    const ref = parseReference('busybox');
    assert.equal(ref.toString(), 'docker.io/library/busybox:latest');
    assert.equal(ref.name, 'docker.io/library/busybox');
    assert.equal(ref.object, 'latest');
    assert.equal(ref.scope(), 'repository:library/busybox:pull');
    const pinned = parseReference(`example.com/a:t@${DIGEST}`);
    assert.equal(pinned.object, DIGEST, 'a digest wins over the tag');
    assert.equal(pinned.toString(), `example.com/a:t@${DIGEST}`);
    assert.equal(ref.withDigest(DIGEST).toString(), `docker.io/library/busybox@${DIGEST}`);
  });

  for (const [input, why] of [
    ['', /empty/],
    ['Busybox', /lowercase/],
    ['example.com/App', /lowercase/],
    ['busybox:', /invalid tag/],
    ['busybox:-x', /invalid tag/],
    [`busybox:${'x'.repeat(129)}`, /invalid tag/],
    ['busybox@sha256:abc', /64 lowercase hex/],
    ['busybox@md5:d41d8cd98f00b204e9800998ecf8427e', /unsupported digest algorithm/],
    ['busybox@', /invalid digest/],
    ['a//b', /path component ""/],
    ['a/b_/c', /path component "b_"/],
    ['a/-b', /path component/],
    ['a/b___c', /path component/],
    ['exa_mple.com:5000/app', /registry domain/],
    ['example.com:port/app', /registry domain|invalid tag/],
    [':tag', /missing repository/],
    ['a'.repeat(64), /image ID/],
    [`example.com/${'a'.repeat(250)}`, /longer than 255/],
  ] as const) {
    it(`rejects ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '…' : input)}`, () => {
      assert.throws(() => parseReference(input), (err: Error) => {
        assert.ok(err instanceof InvalidArgumentError, `got ${err.name}`);
        assert.match(err.message, why);
        assert.match(err.message, /^invalid reference/);
        return true;
      });
    });
  }
});
