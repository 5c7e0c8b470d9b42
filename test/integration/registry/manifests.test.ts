/**
 * Resolving references against local servers: indexes and platform selection, digest verification,
 * schema 1 refusal, and mirrors from a hosts.toml directory (order, capabilities, ns=, headers).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  DigestMismatchError,
  MediaTypes,
  NoMatchingPlatformError,
  RegistryClient,
  RegistryNotFoundError,
  UnsupportedManifestError,
  hostPlatform,
} from '../../../src/registry';
import { tempDir } from '../../helpers/processes';
import { FAST_RETRY, TestRepository, TestServer, serveRegistry, sha256 } from './test-servers';

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64', variant: 'v8' },
  { os: 'linux', architecture: 'arm', variant: 'v7' },
];

describe('manifests', () => {
  let server: TestServer;
  let repo: TestRepository;
  let images: Array<ReturnType<TestRepository['addImage']>>;
  let list: ReturnType<TestRepository['addManifest']>;
  let single: ReturnType<TestRepository['addImage']>;
  let wrongHeaderDigest = false;
  let client: RegistryClient;

  before(async () => {
    repo = new TestRepository();
    images = PLATFORMS.map((p) => repo.addImage([`layer for ${p.architecture}`], undefined, p));
    list = repo.addManifest(
      {
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifestList,
        manifests: images.map((img, i) => ({ mediaType: MediaTypes.ociManifest, digest: img.manifest.digest, size: img.manifest.size, platform: PLATFORMS[i] })),
      },
      MediaTypes.dockerManifestList,
      'multi',
    );
    single = repo.addImage(['only layer'], 'single');
    repo.manifests.set('old', { body: Buffer.from('{"schemaVersion":1,"name":"x","fsLayers":[]}'), mediaType: MediaTypes.dockerSchema1Signed });
    server = await TestServer.start((req, res) => {
      if (wrongHeaderDigest && req.url?.endsWith('/manifests/single')) {
        const entry = repo.manifests.get('single')!;
        return void res.writeHead(200, { 'content-type': entry.mediaType, 'docker-content-digest': sha256(Buffer.from('other')) }).end(entry.body);
      }
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    });
    client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
  });

  beforeEach(() => {
    wrongHeaderDigest = false;
    server.seen.length = 0;
  });

  after(async () => {
    await client?.close();
    await server?.close();
  });

  it('resolves a tag to a manifest, its digest, config and layers, sending the Accept list', async () => {
    const r = await client.resolve(`${server.host}/team/app:single`);
    assert.equal(r.digest, single.manifest.digest);
    assert.equal(r.mediaType, MediaTypes.ociManifest);
    assert.equal(r.config.digest, single.config.digest);
    assert.deepEqual(r.layers.map((l) => l.digest), single.layers.map((l) => l.digest));
    assert.equal(r.indexDigest, undefined);
    assert.equal(r.reference.toString(), `${server.host}/team/app:single`);
    const accept = server.seen[0]!.headers.accept ?? '';
    for (const t of [MediaTypes.dockerManifest, MediaTypes.dockerManifestList, MediaTypes.ociManifest, MediaTypes.ociIndex]) assert.ok(accept.includes(t), t);
    const config = await client.fetchConfig(r.reference, r.config);
    assert.deepEqual(config.diffIds, single.layers.map((l) => l.digest));
  });

  it('picks the platform from an index', async () => {
    for (const [i, platform] of PLATFORMS.entries()) {
      const r = await client.resolve(`${server.host}/team/app:multi`, { platform });
      assert.equal(r.digest, images[i]!.manifest.digest, platform.architecture);
      assert.equal(r.indexDigest, list.digest);
      assert.equal(r.platform?.architecture, platform.architecture);
    }
    if (['x64', 'arm64'].includes(process.arch)) {
      const r = await client.resolve(`${server.host}/team/app:multi`);
      assert.equal(r.platform?.architecture, hostPlatform().architecture, 'defaults to this machine');
    }
    await assert.rejects(client.resolve(`${server.host}/team/app:multi`, { platform: { os: 'linux', architecture: 's390x' } }), NoMatchingPlatformError);
  });

  it('resolves by digest and verifies the body', async () => {
    const r = await client.resolve(`${server.host}/team/app@${list.digest}`, { platform: PLATFORMS[1] });
    assert.equal(r.digest, images[1]!.manifest.digest);
    const forged = `sha256:${'f'.repeat(64)}`;
    repo.manifests.set(forged, repo.manifests.get('single')!);
    await assert.rejects(client.resolve(`${server.host}/team/app@${forged}`), (err: Error) => err instanceof DigestMismatchError && err.message.includes(forged));
  });

  it('fetches a manifest named by digest once while it is remembered, per repository, and a tag every time', async () => {
    const fresh = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY });
    try {
      const byDigest = `${server.host}/team/app@${single.manifest.digest}`;
      const results = await Promise.all([fresh.resolve(byDigest), fresh.resolve(byDigest)]);
      await fresh.resolve(byDigest);
      assert.ok(results.every((r) => r.digest === single.manifest.digest));
      const gets = (url: string): number => server.seen.filter((s) => s.method === 'GET' && s.url === url).length;
      assert.equal(gets(`/v2/team/app/manifests/${single.manifest.digest}`), 1);
      await fresh.resolve(`${server.host}/team/other@${single.manifest.digest}`).catch(() => undefined);
      assert.equal(gets(`/v2/team/other/manifests/${single.manifest.digest}`), 1, 'another repository is asked itself');
      await fresh.resolve(`${server.host}/team/app:single`);
      await fresh.resolve(`${server.host}/team/app:single`);
      assert.equal(gets('/v2/team/app/manifests/single'), 2, 'a tag may move: asked every time');
    } finally {
      await fresh.close();
    }
  });

  it('checks Docker-Content-Digest when resolving a tag', async () => {
    wrongHeaderDigest = true;
    await assert.rejects(client.resolve(`${server.host}/team/app:single`), /Docker-Content-Digest.*digest mismatch/);
  });

  it('verifies the config blob', async () => {
    const r = await client.resolve(`${server.host}/team/app:single`);
    const original = repo.blobs.get(r.config.digest)!;
    repo.blobs.set(r.config.digest, Buffer.from(original.toString().replace('amd64', 'arm64')));
    try {
      await assert.rejects(client.fetchConfig(r.reference, r.config), DigestMismatchError);
    } finally {
      repo.blobs.set(r.config.digest, original);
    }
  });

  it('refuses schema 1 with a clear error', async () => {
    await assert.rejects(client.resolve(`${server.host}/team/app:old`), (err: Error) => err instanceof UnsupportedManifestError && /schema 1 .* not supported/.test(err.message));
  });

  it('returns the exact bytes of a manifest and an index written in a non-canonical JSON style', async () => {
    // Four-space indents, a space before each colon, CRLF line ends and a trailing newline: no
    // JSON.stringify of the parsed document gives these bytes back.
    const spaced = (doc: object): Buffer =>
      Buffer.from(`${JSON.stringify(doc, null, 4).replace(/": /g, '" : ').replace(/\n/g, '\r\n')}\r\n`);
    const image = images[1]!;
    const manifestBody = spaced(JSON.parse(image.manifest.data.toString()) as object);
    const manifestDigest = sha256(manifestBody);
    repo.manifests.set(manifestDigest, { body: manifestBody, mediaType: MediaTypes.ociManifest });
    const indexBody = spaced({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [{ mediaType: MediaTypes.ociManifest, digest: manifestDigest, size: manifestBody.length, platform: PLATFORMS[1] }],
    });
    repo.manifests.set('spaced', { body: indexBody, mediaType: MediaTypes.ociIndex });

    const r = await client.resolve(`${server.host}/team/app:spaced`, { platform: PLATFORMS[1] });
    assert.equal(r.digest, manifestDigest);
    assert.deepEqual(r.bytes, manifestBody);
    assert.equal(r.size, manifestBody.length);
    assert.equal(r.indexDigest, sha256(indexBody));
    assert.deepEqual(r.layers.map((l) => l.digest), image.layers.map((l) => l.digest));
    const fetched = await client.fetchManifest(`${server.host}/team/app:spaced`);
    assert.deepEqual(fetched.bytes, indexBody);
    assert.equal(fetched.digest, sha256(indexBody));
    assert.equal(fetched.parsed.kind, 'index');
  });

  it('reports an unknown tag as not found', async () => {
    await assert.rejects(client.resolve(`${server.host}/team/app:missing`), RegistryNotFoundError);
  });

  describe('mirrors from hosts.toml', () => {
    let emptyMirror: TestServer;
    let pullMirror: TestServer;
    let dir: string;
    let mirrored: RegistryClient;

    before(async () => {
      emptyMirror = await TestServer.start((_req, res) => res.writeHead(404).end());
      pullMirror = await TestServer.start((req, res) => {
        if (!req.url?.startsWith('/cache/')) return void res.writeHead(404).end();
        req.url = req.url.slice('/cache'.length);
        if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
      });
      dir = await tempDir('mirror-hosts');
      await fsp.mkdir(path.join(dir, server.host));
      await fsp.writeFile(
        path.join(dir, server.host, 'hosts.toml'),
        [
          `server = "${server.origin}"`,
          `[host."${emptyMirror.origin}"]`,
          '  capabilities = ["pull", "resolve"]',
          `  [host."${emptyMirror.origin}".header]`,
          '    x-mirror = "m1"',
          `[host."${pullMirror.origin}/cache"]`,
          '  capabilities = ["pull"]',
          '',
        ].join('\n'),
      );
      mirrored = new RegistryClient({ hosts: { configDir: dir }, retry: FAST_RETRY });
    });

    after(async () => {
      await mirrored?.close();
      await emptyMirror?.close();
      await pullMirror?.close();
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    });

    it('tries mirrors in order, honours capabilities, and sends ns= and configured headers', async () => {
      const r = await mirrored.resolve(`${server.host}/team/app:multi`, { platform: PLATFORMS[0] });
      assert.equal(r.digest, images[0]!.manifest.digest);
      // The tag: the empty mirror (404), then the server; the pull-only mirror cannot resolve tags.
      assert.equal(emptyMirror.seen[0]!.url, `/v2/team/app/manifests/multi?ns=${encodeURIComponent(server.host)}`);
      assert.equal(emptyMirror.seen[0]!.headers['x-mirror'], 'm1');
      assert.ok(!pullMirror.seen.some((s) => s.url.includes('/manifests/multi')));
      assert.equal(server.requests(/\/manifests\/multi$/).length, 1);
      // The platform manifest by digest: served by the pull-only mirror under its path.
      assert.ok(pullMirror.seen.some((s) => s.url.startsWith(`/cache/v2/team/app/manifests/${images[0]!.manifest.digest}?ns=`)));
      assert.equal(server.requests(/\/manifests\/sha256:/).length, 0);

      const blob = await mirrored.openBlob(r.reference, r.layers[0]!.digest);
      assert.equal((await blob.readRange(0, 5)).toString(), 'layer');
      assert.equal(emptyMirror.requests(/\/blobs\//).length, 1, 'the empty mirror is asked once (HEAD), then skipped');
      assert.equal(pullMirror.requests(/\/blobs\//).length, 2);
      assert.equal(server.requests(/\/blobs\//).length, 0);
    });
  });
});
