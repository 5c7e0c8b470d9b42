/**
 * HTTPS with a self-signed certificate: refused by default, accepted for a host whose hosts.toml sets
 * skip_verify, and still verified for redirect targets on other origins.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnavailableError } from '../../../src/errors';
import { RegistryClient } from '../../../src/registry';
import { tempDir } from '../../helpers/processes';
import { FAST_RETRY, TestRepository, TestServer, selfSignedTls, sendBlob, serveRegistry } from './test-servers';

describe('TLS and skip_verify', () => {
  let dir: string;
  let registry: TestServer;
  let storage: TestServer;
  let repo: TestRepository;
  let image: ReturnType<TestRepository['addImage']>;
  const clients: RegistryClient[] = [];
  const client = (configDir?: string) => {
    const c = new RegistryClient({ hosts: { configDir }, retry: FAST_RETRY });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = await tempDir('registry-tls');
    const tls = await selfSignedTls(dir);
    repo = new TestRepository();
    image = repo.addImage(['tls layer bytes'], 'v1');
    storage = await TestServer.start((req, res) => sendBlob(req, res, image.layers[0]!.data), tls);
    registry = await TestServer.start((req, res) => {
      if (req.method === 'GET' && req.url?.includes('/blobs/') && !req.url.includes(image.config.digest)) {
        return void res.writeHead(307, { location: `${storage.origin}/blob` }).end();
      }
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    }, tls);
    await fsp.mkdir(path.join(dir, 'hosts', registry.host), { recursive: true });
    await fsp.writeFile(path.join(dir, 'hosts', registry.host, 'hosts.toml'), `server = "${registry.origin}"\nskip_verify = true\n`);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.close();
    await storage?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('refuses an unverifiable certificate by default, without retrying', async () => {
    await assert.rejects(client().resolve(`${registry.host}/app:v1`), (err: Error) => {
      assert.ok(err instanceof UnavailableError, `${err.name}: ${err.message}`);
      assert.match(err.message, /SELF_SIGNED|certificate/i);
      assert.doesNotMatch(err.message, /gave up after/);
      return true;
    });
  });

  it('accepts it with skip_verify, for that host only', async () => {
    const c = client(path.join(dir, 'hosts'));
    const r = await c.resolve(`${registry.host}/app:v1`);
    assert.equal(r.digest, image.manifest.digest);
    assert.deepEqual((await c.fetchConfig(r.reference, r.config)).diffIds, [image.layers[0]!.digest]);
    // The layer redirects to another origin with the same kind of certificate: verified, so refused.
    await assert.rejects(
      (async () => (await c.openBlob(r.reference, r.layers[0]!.digest)).readRange(0, 3))(),
      (err: Error) => err instanceof UnavailableError && /SELF_SIGNED|certificate/i.test(err.message),
    );
    assert.equal(storage.seen.length, 0);
  });
});
