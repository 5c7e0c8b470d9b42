/**
 * An https registry whose Bearer challenge names a plain-http token realm: refused with a clear error, and
 * nothing (least of all credentials) reaches the realm.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerCredentials, RegistryAuthError, RegistryClient } from '../../../src/registry';
import { tempDir } from '../../helpers/processes';
import { FAST_RETRY, TestRepository, TestServer, selfSignedTls, serveRegistry } from './test-servers';

describe('token realm over https', () => {
  let dir: string;
  let registry: TestServer;
  let realm: TestServer;
  let client: RegistryClient;

  before(async () => {
    dir = await tempDir('registry-realm');
    const repo = new TestRepository();
    repo.addImage(['realm layer'], 'v1');
    realm = await TestServer.start((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}'));
    registry = await TestServer.start(
      (req, res) => {
        if (req.headers.authorization !== 'Bearer t') {
          return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm.origin}/token",service="reg"` }).end();
        }
        if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
      },
      await selfSignedTls(dir),
    );
    await fsp.mkdir(path.join(dir, 'hosts', registry.host), { recursive: true });
    await fsp.writeFile(path.join(dir, 'hosts', registry.host, 'hosts.toml'), `server = "${registry.origin}"\nskip_verify = true\n`);
    const credentials = DockerCredentials.fromObject({ auths: { [registry.host]: { auth: Buffer.from('alice:s3cret').toString('base64') } } });
    client = new RegistryClient({ hosts: { configDir: path.join(dir, 'hosts') }, credentials, retry: FAST_RETRY });
  });

  after(async () => {
    await client?.close();
    await registry?.close();
    await realm?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('refuses a plain-http realm and sends it nothing', async () => {
    await assert.rejects(client.resolve(`${registry.host}/app:v1`), (err: Error) => {
      assert.ok(err instanceof RegistryAuthError, `${err.name}: ${err.message}`);
      assert.match(err.message, /refusing the token realm http:\/\/127\.0\.0\.1:\d+\/token: the registry uses https/);
      return true;
    });
    assert.ok(registry.seen.length > 0, 'the registry was asked');
    assert.equal(realm.seen.filter((s) => s.headers.authorization !== undefined).length, 0);
    assert.equal(realm.seen.length, 0);
  });
});
