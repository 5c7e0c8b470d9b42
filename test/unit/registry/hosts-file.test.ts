import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { RegistryHosts, endpointUrl, endpointsFor, parseHostsFile } from '../../../src/registry';
import { runOk, tempDir } from '../../helpers/processes';

const summary = (domain: string, text: string | undefined, plainHttp = false) =>
  endpointsFor(domain, text === undefined ? undefined : parseHostsFile(text, 'hosts.toml'), { plainHttp }).map((e) => ({
    root: e.apiRoot.href,
    caps: [...e.capabilities],
    skipVerify: e.skipVerify,
    mirror: e.mirror,
    headers: e.headers,
  }));

describe('hosts.toml', () => {
  it('defaults to the domain over https, and docker.io to registry-1.docker.io', () => {
    assert.deepEqual(summary('ghcr.io', undefined), [{ root: 'https://ghcr.io/v2', caps: ['pull', 'resolve', 'push'], skipVerify: false, mirror: false, headers: {} }]);
    assert.equal(summary('docker.io', undefined)[0]!.root, 'https://registry-1.docker.io/v2');
  });

  it('uses plain http for the default server when asked, never for docker.io', () => {
    assert.equal(summary('127.0.0.1:5000', undefined, true)[0]!.root, 'http://127.0.0.1:5000/v2');
    assert.equal(summary('docker.io', undefined, true)[0]!.root, 'https://registry-1.docker.io/v2');
    assert.equal(summary('127.0.0.1:5000', '# only comments\n', true)[0]!.root, 'http://127.0.0.1:5000/v2');
  });

  it('asks a server listed as a host too only once, unless the entries differ', () => {
    const both = 'server = "http://r:5000"\n[host."http://r:5000"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n';
    assert.deepEqual(summary('r:5000', both).map((e) => e.root), ['http://r:5000/v2']);
    // The host entry may only pull: the server stays for resolve and push.
    const pullOnly = 'server = "http://r:5000"\n[host."http://r:5000"]\n  capabilities = ["pull"]\n';
    assert.deepEqual(summary('r:5000', pullOnly).map((e) => [e.root, e.caps]), [
      ['http://r:5000/v2', ['pull']],
      ['http://r:5000/v2', ['pull', 'resolve', 'push']],
    ]);
    const otherHeaders = 'server = "http://r:5000"\n[host."http://r:5000"]\n  [host."http://r:5000".header]\n    x-a = "1"\n';
    assert.equal(summary('r:5000', otherHeaders).length, 2);
  });

  it('lists mirrors in file order, then the server', () => {
    const text = `
server = "https://registry.example.com"
skip_verify = true
[header]
  x-server = "s"

[host."https://mirror-a.example.com"]
  capabilities = ["pull", "resolve"]
  [host."https://mirror-a.example.com".header]
    X-Custom = ["a", "b"]

[host."http://10.0.0.1:5000/prefix"]
  capabilities = ["pull"]
  skip_verify = true

[host."https://mirror-c.example.com/registry/api"]
  override_path = true
`;
    assert.deepEqual(summary('registry.example.com', text), [
      { root: 'https://mirror-a.example.com/v2', caps: ['pull', 'resolve'], skipVerify: false, mirror: true, headers: { 'x-custom': ['a', 'b'] } },
      { root: 'http://10.0.0.1:5000/prefix/v2', caps: ['pull'], skipVerify: true, mirror: true, headers: {} },
      { root: 'https://mirror-c.example.com/registry/api', caps: ['pull', 'resolve', 'push'], skipVerify: false, mirror: true, headers: {} },
      { root: 'https://registry.example.com/v2', caps: ['pull', 'resolve', 'push'], skipVerify: true, mirror: false, headers: { 'x-server': ['s'] } },
    ]);
  });

  it('keeps an explicit http:// server and a /v2 path as given', () => {
    const eps = summary('127.0.0.1:5000', 'server = "http://127.0.0.1:5000/v2/"\n[host."http://127.0.0.1:5000"]\ncapabilities = ["pull", "resolve", "push"]\n');
    // Both name the same API root (so the server, listed twice, is asked once).
    assert.deepEqual(eps.map((e) => e.root), ['http://127.0.0.1:5000/v2']);
  });

  it('builds request URLs, adding ns= for mirrors', () => {
    const [mirror, server] = endpointsFor('docker.io', parseHostsFile('[host."https://mirror.local/base"]\n', 'h'));
    assert.equal(endpointUrl(mirror!, 'docker.io', 'library/busybox', 'manifests', 'latest').href, 'https://mirror.local/base/v2/library/busybox/manifests/latest?ns=docker.io');
    assert.equal(endpointUrl(server!, 'docker.io', 'library/busybox', 'blobs', 'sha256:x').href, 'https://registry-1.docker.io/v2/library/busybox/blobs/sha256:x');
  });

  for (const [text, why] of [
    ['server = ', /invalid TOML/],
    ['server = "registry.example.com"', /expected http:\/\/ or https:\/\//],
    ['server = "ftp://x"', /expected http/],
    ['server = 5', /must be a string URL/],
    ['[host."https://m"]\ncapabilities = ["pull", "fly"]', /unknown capability "fly"/],
    ['[host."https://m"]\ncapabilities = "pull"', /must be an array/],
    ['[host."https://m"]\nskip_verify = "yes"', /skip_verify must be true or false/],
    ['[header]\nx = 1', /header "x" must be a string/],
    ['[host."https://user:pw@m"]', /must not carry credentials/],
    ['ca = 5', /ca must be a file path or an array of file paths/],
    ['ca = ["a.pem", 5]', /ca must be a file path/],
    ['[host."https://m"]\nclient = [["cert.pem"]]', /host "https:\/\/m": client items must be file paths or \[certificate, key\] pairs/],
    ['client = { cert = "c.pem" }', /client must be a file path or an array/],
  ] as const) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseHostsFile(text, '/etc/hosts.d/x/hosts.toml'), (err: Error) => {
        assert.ok(err instanceof InvalidArgumentError);
        assert.match(err.message, /^\/etc\/hosts\.d\/x\/hosts\.toml: /);
        assert.match(err.message, why);
        return true;
      });
    });
  }

  it('reads ca and client like containerd: one file or lists, [cert, key] pairs, paths relative to the file', () => {
    const text = `
server = "https://registry.example.com"
ca = "server-ca.pem"
client = "combined.pem"

[host."https://mirror-a.example.com"]
  ca = ["/etc/pki/a.pem", "sub/b.pem"]
  client = ["one.pem", ["two.cert", "two.key"], ["/abs/three.pem", ""]]

[host."https://mirror-b.example.com"]
  capabilities = ["pull"]
`;
    const endpoints = endpointsFor('registry.example.com', parseHostsFile(text, '/etc/containerd/certs.d/registry.example.com/hosts.toml'));
    const base = '/etc/containerd/certs.d/registry.example.com';
    assert.deepEqual(
      endpoints.map((e) => e.tlsFiles),
      [
        {
          ca: ['/etc/pki/a.pem', `${base}/sub/b.pem`],
          client: [{ cert: `${base}/one.pem` }, { cert: `${base}/two.cert`, key: `${base}/two.key` }, { cert: '/abs/three.pem' }],
        },
        undefined,
        { ca: [`${base}/server-ca.pem`], client: [{ cert: `${base}/combined.pem` }] },
      ],
    );
    // The top-level settings also apply to the default server when there is no `server`.
    const noServer = endpointsFor('quay.io', parseHostsFile('ca = "ca.pem"\n', '/d/quay.io/hosts.toml'));
    assert.deepEqual(noServer[0]!.tlsFiles, { ca: ['/d/quay.io/ca.pem'], client: [] });
  });

  it('loads the ca and client files a hosts.toml names, and reports bad ones against it', async () => {
    const dir = await tempDir('hosts-tls');
    try {
      const host = path.join(dir, 'reg.example:5000');
      await fsp.mkdir(host);
      await runOk('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=c', '-keyout', path.join(host, 'c.key'), '-out', path.join(host, 'c.pem')]);
      const toml = path.join(host, 'hosts.toml');
      const hosts = new RegistryHosts({ configDir: dir });
      await fsp.writeFile(toml, 'server = "https://reg.example:5000"\nca = "c.pem"\nclient = [["c.pem", "c.key"]]\n');
      const [e] = await hosts.endpoints('reg.example:5000');
      assert.match(e!.tls!.ca[0]!, /^-----BEGIN CERTIFICATE-----/);
      assert.equal(e!.tls!.clientCertificates.length, 1);
      assert.match(e!.tls!.clientCertificates[0]!.key, /PRIVATE KEY/);

      await fsp.writeFile(toml, 'ca = "missing.pem"\n');
      await assert.rejects(hosts.endpoints('reg.example:5000'), (err: Error) => err instanceof InvalidArgumentError && err.message.startsWith(`${toml}: cannot read the CA certificate file ${host}/missing.pem`));
      await fsp.writeFile(toml, 'ca = "c.key"\n');
      await assert.rejects(hosts.endpoints('reg.example:5000'), /holds no PEM certificate/);
      await fsp.writeFile(toml, 'client = "c.pem"\n'); // a certificate without its key
      await assert.rejects(hosts.endpoints('reg.example:5000'), (err: Error) => err instanceof InvalidArgumentError && /client certificate .*c\.pem is not a usable certificate and key/.test(err.message));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('searches several directories like containerd 2.x: host_port_, host, _default in each, first existing wins', async () => {
    const [first, second] = [await tempDir('hosts-a'), await tempDir('hosts-b')];
    const write = async (dir: string, name: string, server?: string): Promise<void> => {
      await fsp.mkdir(path.join(dir, name), { recursive: true });
      if (server) await fsp.writeFile(path.join(dir, name, 'hosts.toml'), `server = "${server}"\n`);
    };
    const roots = async (domain: string): Promise<string[]> =>
      (await new RegistryHosts({ configDir: [first, second] }).endpoints(domain)).map((e) => e.apiRoot.href);
    try {
      await write(second, 'reg.local:5000', 'http://second-host:5000');
      assert.deepEqual(await roots('reg.local:5000'), ['http://second-host:5000/v2'], 'found in the second directory');
      await write(second, 'reg.local_5000_', 'http://second-port:5000');
      assert.deepEqual(await roots('reg.local:5000'), ['http://second-port:5000/v2'], '<host>_<port>_ before <host:port>');
      await write(first, '_default', 'http://first-default:1');
      assert.deepEqual(await roots('reg.local:5000'), ['http://first-default:1/v2'], "the first directory's _default wins over the second's host");
      await write(first, 'reg.local:5000');
      assert.deepEqual(await roots('reg.local:5000'), ['https://reg.local:5000/v2'], 'a host directory without hosts.toml means the default server');
      assert.deepEqual(new RegistryHosts({ configDir: first }).configDirs, [first]);
      const both = new RegistryHosts({ configDir: [first, second] });
      assert.equal(await both.hostDir('reg.local:5000'), path.join(first, 'reg.local:5000'));
      assert.equal(await both.hostsFilePath('reg.local:5000'), undefined, 'that directory has no hosts.toml');
      assert.equal(await both.hostsFilePath('other.host'), path.join(first, '_default', 'hosts.toml'));
      assert.equal(await new RegistryHosts({ configDir: [second] }).hostsFilePath('reg.local:5000'), path.join(second, 'reg.local_5000_', 'hosts.toml'));
      assert.equal(await new RegistryHosts().hostsFilePath('reg.local:5000'), undefined);
      assert.deepEqual(new RegistryHosts({ configDir: [first, second] }).configDirs, [first, second]);
    } finally {
      await fsp.rm(first, { recursive: true, force: true });
      await fsp.rm(second, { recursive: true, force: true });
    }
  });

  it('reads <dir>/<host>/hosts.toml, then _default, then falls back to defaults', async () => {
    const dir = await tempDir('hosts');
    try {
      await fsp.mkdir(path.join(dir, 'localhost:5000'));
      await fsp.writeFile(path.join(dir, 'localhost:5000', 'hosts.toml'), 'server = "http://localhost:5000"\n');
      const hosts = new RegistryHosts({ configDir: dir });
      assert.deepEqual((await hosts.endpoints('localhost:5000')).map((e) => e.apiRoot.href), ['http://localhost:5000/v2']);
      assert.deepEqual((await hosts.endpoints('quay.io')).map((e) => e.apiRoot.href), ['https://quay.io/v2']);
      await fsp.mkdir(path.join(dir, '_default'));
      await fsp.writeFile(path.join(dir, '_default', 'hosts.toml'), '[host."https://mirror.local"]\ncapabilities = ["pull"]\n');
      assert.deepEqual((await hosts.endpoints('quay.io')).map((e) => e.apiRoot.href), ['https://mirror.local/v2', 'https://quay.io/v2']);
      await fsp.writeFile(path.join(dir, 'localhost:5000', 'hosts.toml'), 'server = 1\n');
      await assert.rejects(hosts.endpoints('localhost:5000'), /localhost:5000\/hosts\.toml: server must be a string URL/);
      await assert.rejects(hosts.endpoints('../etc'), InvalidArgumentError);
      assert.deepEqual((await new RegistryHosts().endpoints('quay.io')).map((e) => e.apiRoot.href), ['https://quay.io/v2']);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
