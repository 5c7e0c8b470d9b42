/**
 * hosts.toml `ca` and `client` against real TLS servers whose certificates come from a private CA made
 * with openssl: the CA makes the registry reachable (and it is refused without it); a registry that
 * requires a client certificate accepts the one `client` names, as a [cert, key] pair or one combined
 * file (and refuses a client without one).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnavailableError } from '../../../src/errors';
import { RegistryClient } from '../../../src/registry';
import { runOk, tempDir } from '../../helpers/processes';
import { FAST_RETRY, TestRepository, TestServer, serveRegistry } from './test-servers';

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

describe('hosts.toml ca and client', () => {
  let dir: string;
  let hostsDir: string;
  let plain: TestServer; // private-CA certificate, no client authentication
  let mutual: TestServer; // private-CA certificate, client certificate required
  let image: ReturnType<TestRepository['addImage']>;
  const clients: RegistryClient[] = [];
  const file = (name: string) => path.join(dir, name);

  /** A certificate for `cn` signed by the test CA, with `ext` (an openssl extension line). */
  async function issue(name: string, cn: string, ext: string): Promise<void> {
    await runOk('openssl', ['req', ...EC, '-subj', `/CN=${cn}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`)]);
    await fsp.writeFile(file(`${name}.ext`), `${ext}\n`);
    await runOk('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`)]);
  }

  /** A client using a hosts.toml for `server` with `settings` (TOML lines). */
  async function client(server: TestServer, settings: string): Promise<RegistryClient> {
    await fsp.mkdir(path.join(hostsDir, server.host), { recursive: true });
    await fsp.writeFile(path.join(hostsDir, server.host, 'hosts.toml'), `server = "${server.origin}"\n${settings}\n`);
    const c = new RegistryClient({ hosts: { configDir: hostsDir }, retry: FAST_RETRY });
    clients.push(c);
    return c;
  }

  before(async () => {
    dir = await tempDir('registry-host-certs');
    hostsDir = path.join(dir, 'hosts');
    await runOk('openssl', ['req', '-x509', ...EC, '-days', '1', '-subj', '/CN=clip test CA', '-keyout', file('ca.key'), '-out', file('ca.pem')]);
    await issue('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1');
    await issue('client', 'clip client', 'extendedKeyUsage=clientAuth');
    // The hosts.toml names certificates relative to its own directory, as containerd resolves them.
    await fsp.mkdir(hostsDir, { recursive: true });
    await fsp.copyFile(file('ca.pem'), path.join(hostsDir, 'private-ca.pem'));
    await fsp.writeFile(file('client-combined.pem'), (await fsp.readFile(file('client.pem'), 'utf8')) + (await fsp.readFile(file('client.key'), 'utf8')));

    const repo = new TestRepository();
    image = repo.addImage(['private CA layer'], 'v1');
    const serve = (req: Parameters<typeof serveRegistry>[1], res: Parameters<typeof serveRegistry>[2]) => {
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    };
    const tls = { key: await fsp.readFile(file('server.key')), cert: await fsp.readFile(file('server.pem')) };
    plain = await TestServer.start(serve, tls);
    mutual = await TestServer.start(serve, { ...tls, ca: await fsp.readFile(file('ca.pem')), requestCert: true, rejectUnauthorized: true });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await plain?.close();
    await mutual?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('trusts a private CA named by ca, relative to the hosts.toml', async () => {
    const c = await client(plain, 'ca = "../private-ca.pem"');
    const r = await c.resolve(`${plain.host}/app:v1`);
    assert.equal(r.digest, image.manifest.digest);
    assert.deepEqual((await (await c.openBlob(r.reference, r.layers[0]!.digest)).readRange(0, 7)).toString(), 'private');
  });

  it('refuses the private-CA registry without ca', async () => {
    const c = await client(plain, '');
    plain.seen.length = 0;
    await assert.rejects(c.resolve(`${plain.host}/app:v1`), (err: Error) => {
      assert.ok(err instanceof UnavailableError, `${err.name}: ${err.message}`);
      assert.match(err.message, /certificate/i);
      return true;
    });
    assert.equal(plain.seen.length, 0);
  });

  it('presents the client certificate a [cert, key] pair names', async () => {
    const c = await client(mutual, `ca = "${file('ca.pem')}"\nclient = [["${file('client.pem')}", "${file('client.key')}"]]`);
    assert.equal((await c.resolve(`${mutual.host}/app:v1`)).digest, image.manifest.digest);
  });

  it('presents the client certificate of a combined cert-and-key file', async () => {
    const c = await client(mutual, `ca = "${file('ca.pem')}"\nclient = "${file('client-combined.pem')}"`);
    assert.equal((await c.resolve(`${mutual.host}/app:v1`)).digest, image.manifest.digest);
  });

  it('is refused by the client-certificate registry without client', async () => {
    const c = await client(mutual, `ca = "${file('ca.pem')}"`);
    mutual.seen.length = 0;
    await assert.rejects(c.resolve(`${mutual.host}/app:v1`), (err: Error) => err instanceof UnavailableError && /other side closed|certificate required|ECONNRESET/i.test(err.message));
    assert.equal(mutual.seen.length, 0);
  });
});
