/**
 * Pushing blobs and manifests, and listing referrers through the API or the tag schema, against a real
 * HTTP registry on 127.0.0.1 (oci-registry.ts) with and without the referrers API and with token auth.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  RegistryClient,
  addToReferrersTag,
  computeDigest,
  listReferrers,
  pushBlob,
  pushManifest,
  referrersTag,
} from '../../../src/registry';
import { FAST_RETRY } from '../../integration/registry/test-servers';
import { OciRegistry } from './oci-registry';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function artifact(subject: { digest: string; size: number }, blob: { digest: string; size: number }, type = 'application/x-test'): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: type,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: computeDigest(Buffer.from('{}')), size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: blob.digest, size: blob.size }],
      subject: { mediaType: OCI_MANIFEST, ...subject },
    }),
  );
}

for (const referrersApi of [true, false]) {
  describe(`push and referrers (${referrersApi ? 'with' : 'without'} the referrers API)`, () => {
    let registry: OciRegistry;
    let client: RegistryClient;
    let subject: { digest: string; size: number };
    const ref = (): string => `${registry.host}/clip/test`;

    before(async () => {
      registry = await OciRegistry.start({ referrersApi, auth: true });
      client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
      const image = registry.repo.addImage(['layer one', 'layer two'], 'v1');
      subject = { digest: image.manifest.digest, size: image.manifest.size };
    });
    after(async () => {
      await client.close();
      await registry.close();
    });

    test('a blob is uploaded once (POST, PUT ?digest=) and skipped when present', async () => {
      const data = Buffer.from('an archive\n'.repeat(100));
      const first = await pushBlob(client, ref(), data);
      assert.deepEqual(first, { digest: computeDigest(data), size: data.length, existed: false });
      assert.deepEqual(registry.repo.blobs.get(first.digest), data);
      const second = await pushBlob(client, ref(), data);
      assert.equal(second.existed, true);
      assert.equal(registry.requests('POST', /\/blobs\/uploads\//).length, 1);
      assert.equal(registry.requests('PUT', /\/blobs\/uploads\//).length, 1);
      assert.ok(registry.grantedScopes.includes('repository:clip/test:pull,push'), `scopes: ${registry.grantedScopes.join(' ')}`);
    });

    test('a manifest is put by digest or tag; the OCI-Subject answer tells whether the registry indexed its subject', async () => {
      const blob = await pushBlob(client, ref(), Buffer.from('payload'));
      await pushBlob(client, ref(), Buffer.from('{}'));
      const body = artifact(subject, blob);
      const pushed = await pushManifest(client, ref(), body, OCI_MANIFEST);
      assert.equal(pushed.digest, computeDigest(body));
      assert.equal(pushed.subject, referrersApi ? subject.digest : undefined);
      const tagged = await pushManifest(client, ref(), body, OCI_MANIFEST, { tag: 'artifact' });
      assert.equal(tagged.digest, pushed.digest);
      assert.equal((await client.fetchManifest(`${ref()}:artifact`)).digest, pushed.digest);
    });

    test('a manifest naming a missing blob is refused with the registry error', async () => {
      const body = artifact(subject, { digest: computeDigest(Buffer.from('never pushed')), size: 12 });
      await assert.rejects(pushManifest(client, ref(), body, OCI_MANIFEST), /HTTP 400 \(MANIFEST_BLOB_UNKNOWN/);
    });

    test('referrers are listed through the API, or the tag schema kept up to date by the pusher', async () => {
      const found = await listReferrers(client, ref(), subject.digest, { artifactType: 'application/x-test' });
      assert.equal(found.via, referrersApi ? 'api' : 'tag');
      if (!referrersApi) {
        assert.deepEqual(found.referrers, [], 'no tag yet');
        const body = artifact(subject, await pushBlob(client, ref(), Buffer.from('payload')));
        const descriptor = { mediaType: OCI_MANIFEST, digest: computeDigest(body), size: body.length, artifactType: 'application/x-test' };
        assert.equal(await addToReferrersTag(client, ref(), subject.digest, descriptor), true);
        assert.equal(await addToReferrersTag(client, ref(), subject.digest, descriptor), false, 'listed once');
        const tag = await client.fetchManifest(`${ref()}:${referrersTag(subject.digest)}`);
        assert.equal(tag.parsed.kind, 'index');
      }
      const listed = await listReferrers(client, ref(), subject.digest, { artifactType: 'application/x-test' });
      assert.equal(listed.referrers.length, 1);
      assert.equal(listed.referrers[0]!.artifactType, 'application/x-test');
      assert.deepEqual((await listReferrers(client, ref(), subject.digest, { artifactType: 'application/x-other' })).referrers, []);
    });

    test('a registry is asked for the API and the tag at once, then only for what answered', async () => {
      const fresh = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
      try {
        const api = /\/referrers\//;
        const tag = new RegExp(`/manifests/${referrersTag(subject.digest)}$`);
        const counts = (): [number, number] => [registry.requests('GET', api).length, registry.requests('GET', tag).length];
        const [api0, tag0] = counts();
        assert.equal((await listReferrers(fresh, ref(), subject.digest)).via, referrersApi ? 'api' : 'tag');
        const [api1, tag1] = counts();
        assert.ok(api1 > api0, 'the API was asked');
        assert.ok(tag1 > tag0, 'the tag was asked at the same time');
        assert.equal((await listReferrers(fresh, ref(), subject.digest)).via, referrersApi ? 'api' : 'tag');
        const [api2, tag2] = counts();
        if (referrersApi) {
          assert.ok(api2 > api1, 'the API again');
          assert.equal(tag2, tag1, 'no tag once the API answered');
        } else {
          assert.equal(api2, api1, 'no API once it answered 404');
          assert.ok(tag2 > tag1, 'the tag again');
        }
      } finally {
        await fresh.close();
      }
    });
  });
}

test('referrersTag follows the tag schema', () => {
  const digest = `sha256:${'ab'.repeat(32)}`;
  assert.equal(referrersTag(digest), `sha256-${'ab'.repeat(32)}`);
  assert.throws(() => referrersTag('sha256:nothex'), /invalid/);
});
