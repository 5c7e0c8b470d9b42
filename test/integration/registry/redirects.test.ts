/**
 * Blob redirects to a second server (object storage with pre-signed URLs): registry headers and
 * Authorization never arrive there, the final URL is reused, and an expired URL is resolved again.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { RegistryClient, RegistryRequestError } from '../../../src/registry';
import { tempDir } from '../../helpers/processes';
import { FAST_RETRY, TestRepository, TestServer, recordingLogger, sendBlob, sendError, serveRegistry } from './test-servers';

describe('blob redirects', () => {
  let registry: TestServer;
  let storage: TestServer;
  let repo: TestRepository;
  let blob: ReturnType<TestRepository['addBlob']>;
  let hostsDir: string;
  let client: RegistryClient;
  const logger = recordingLogger();
  let signature = 0;
  const valid = new Set<string>();
  let redirectLoop = false;

  before(async () => {
    repo = new TestRepository();
    blob = repo.addBlob(Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251)));
    storage = await TestServer.start((req, res, seen) => {
      const url = new URL(seen.url, 'http://x');
      const data = repo.blobs.get(url.pathname.slice('/bucket/'.length));
      if (!data || !valid.has(url.searchParams.get('sig') ?? '')) return void res.writeHead(403).end('<Error>AccessDenied: Request has expired</Error>');
      sendBlob(req, res, data);
    });
    registry = await TestServer.start((req, res) => {
      if (req.headers.authorization !== 'Bearer the-token') {
        return sendError(res, 401, 'UNAUTHORIZED', 'auth', { 'www-authenticate': `Bearer realm="${registry.origin}/token",service="r"` });
      }
      const m = /^\/v2\/.+\/blobs\/(sha256:[a-f0-9]+)$/.exec(req.url ?? '');
      if (m && req.method === 'GET') {
        if (redirectLoop) return void res.writeHead(307, { location: req.url }).end();
        const sig = `sig-${++signature}-secret`;
        valid.add(sig);
        return void res.writeHead(307, { location: `${storage.origin}/bucket/${m[1]}?sig=${sig}` }).end();
      }
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    });
    // The token endpoint lives on the registry's own origin here; it hands out a fixed token.
    const serve = registry.handler;
    registry.handler = (req, res, seen) => {
      if (seen.url.startsWith('/token')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"the-token"}');
      return serve(req, res, seen);
    };
    hostsDir = await tempDir('redirect-hosts');
    await fsp.mkdir(path.join(hostsDir, registry.host));
    await fsp.writeFile(
      path.join(hostsDir, registry.host, 'hosts.toml'),
      `server = "${registry.origin}"\n[header]\n  x-registry-secret = "only-for-the-registry"\n`,
    );
    client = new RegistryClient({ hosts: { configDir: hostsDir }, retry: FAST_RETRY, logger });
  });

  beforeEach(() => {
    registry.seen.length = 0;
    storage.seen.length = 0;
    redirectLoop = false;
  });

  after(async () => {
    await client?.close();
    await registry?.close();
    await storage?.close();
    if (hostsDir) await fsp.rm(hostsDir, { recursive: true, force: true });
  });

  it('follows the redirect without forwarding Authorization or registry headers, then reuses the URL', async () => {
    const b = await client.openBlob(`${registry.host}/team/app`, blob.digest);
    assert.equal(b.size, blob.size);
    assert.deepEqual(await b.readRange(1000, 5000), blob.data.subarray(1000, 6000));
    assert.deepEqual(await b.readRange(290_000, 10_000), blob.data.subarray(290_000));

    const toRegistry = registry.requests(/\/blobs\//).filter((s) => s.method === 'GET');
    assert.equal(toRegistry.length, 1, 'the redirect is resolved once');
    assert.equal(toRegistry[0]!.headers.authorization, 'Bearer the-token');
    assert.equal(toRegistry[0]!.headers['x-registry-secret'], 'only-for-the-registry');
    assert.equal(storage.seen.length, 2);
    for (const s of storage.seen) {
      assert.equal(s.headers.authorization, undefined, 'no Authorization to another host');
      assert.equal(s.headers['x-registry-secret'], undefined, 'no configured registry headers to another host');
      assert.equal(s.headers.accept, undefined);
      assert.match(s.headers.range ?? '', /^bytes=\d+-\d+$/, 'Range is end to end');
    }
    assert.ok(!logger.lines.join('\n').includes('-secret'), 'pre-signed query strings stay out of logs');
  });

  it('resolves the blob again when the pre-signed URL expires', async () => {
    const b = await client.openBlob(`${registry.host}/team/app`, blob.digest);
    assert.deepEqual(await b.readRange(0, 100), blob.data.subarray(0, 100));
    valid.clear(); // every URL handed out so far expires
    assert.deepEqual(await b.readRange(100, 100), blob.data.subarray(100, 200));
    const gets = registry.requests(/\/blobs\//).filter((s) => s.method === 'GET');
    assert.equal(gets.length, 2, 'one resolution, one re-resolution');
    assert.deepEqual(storage.seen.map((s) => s.headers.range), ['bytes=0-99', 'bytes=100-199', 'bytes=100-199']);
  });

  it('streams the whole blob through the redirect', async () => {
    const b = await client.openBlob(`${registry.host}/team/app`, blob.digest);
    const chunks: Buffer[] = [];
    for await (const chunk of b.stream()) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), blob.data);
    assert.equal(storage.seen.at(-1)!.headers.authorization, undefined);
  });

  it('gives up after 5 redirects', async () => {
    const b = await client.openBlob(`${registry.host}/team/app`, blob.digest);
    redirectLoop = true;
    valid.clear();
    await assert.rejects(b.readRange(0, 10), (err: Error) => err instanceof RegistryRequestError && /more than 5 redirects/.test(err.message));
    assert.equal(registry.requests(/\/blobs\//).filter((s) => s.method === 'GET').length, 6);
  });
});
