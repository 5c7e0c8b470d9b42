/**
 * Private registries through CRI: clip's CRI image-service proxy ([cri_keychain]) in front of the real
 * containerd 1.6, and a registry (Debian's docker-registry) that requires HTTP Basic authentication
 * (htpasswd). The authenticated registry serves the storage of the stack's open one, so the test images
 * pushed there are private images here. The CRI client sends the credentials as kubelet sends a pull
 * secret: in PullImage's AuthConfig.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE } from '../../src/snapshotter/labels';
import { CriClient } from '../helpers/cri-client';
import { exists, REPO_ROOT, runOk, waitFor } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';
import { useStack } from '../helpers/stack';

const TEST_TIMEOUT = 300_000;
const USER = 'clip-keychain';
const PASSWORD = 'p4ss-only-for-this-test';
const REGISTRY_SH = path.join(REPO_ROOT, 'scripts', 'registry.sh');

describe('private registry through the CRI keychain', () => {
  const stack = useStack({ tags: ['multilayer', 'demo'], criSnapshotter: 'clip', clipConfig: '[lazy]\nbackground_fetch = false\n' });
  let authState = '';
  let authRegistry = '';
  let criSocket = '';

  before(async () => {
    authState = path.join(stack.state, 'auth-registry');
    await fsp.mkdir(authState);
    const htpasswd = path.join(authState, 'htpasswd');
    await fsp.writeFile(htpasswd, await runOk('htpasswd', ['-Bbn', USER, PASSWORD]));
    authRegistry = (
      await runOk(REGISTRY_SH, ['start', authState, '--htpasswd', htpasswd, '--storage', path.join(stack.state, 'registry-data')], {
        timeoutMs: 60_000,
      })
    ).trim();
    // containerd and clip both read the stack's hosts directory: the private registry speaks plain http.
    await fsp.mkdir(path.join(stack.hostsDir, authRegistry));
    await fsp.writeFile(
      path.join(stack.hostsDir, authRegistry, 'hosts.toml'),
      `server = "http://${authRegistry}"\n\n[host."http://${authRegistry}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    criSocket = path.join(stack.state, 'cri.sock');
    await fsp.appendFile(
      stack.clipConfigFile,
      `\n[cri_keychain]\nenable = true\nimage_service_path = "${criSocket}"\ncontainerd_image_service = "${stack.containerdAddress}"\n`,
    );
    await stack.restartClip();
    await waitFor("clip's CRI socket", () => exists(criSocket));
  }, { timeout: 120_000 });

  after(async () => {
    if (authState) await runOk(REGISTRY_SH, ['stop', authState], { timeoutMs: 30_000 });
  });

  const privateRef = (tag: string): string => `${authRegistry}/${stack.repo}:${tag}`;

  async function withCri<T>(socket: string, fn: (cri: CriClient) => Promise<T>): Promise<T> {
    const cri = new CriClient(socket);
    try {
      return await fn(cri);
    } finally {
      cri.close();
    }
  }

  /** Layer digests of the committed snapshots clip serves lazily. */
  async function remoteLayers(): Promise<Set<string>> {
    const client = new TestSnapshotsClient(stack.clipAddress);
    try {
      const infos = (await client.list()).infos.filter((i) => i.kind === Kind.COMMITTED && i.labels[LABEL_REMOTE]);
      return new Set(infos.map((i) => i.labels[LABEL_CRI_LAYER_DIGEST]!));
    } finally {
      client.close();
    }
  }

  test("clip's image socket is private to root", async () => {
    const st = await fsp.stat(criSocket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('without credentials the pull through the proxy is refused by the registry', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(
      withCri(criSocket, (cri) => cri.pullImage(privateRef('multilayer'))),
      (err: Error) => /401|unauthorized|authori[sz]ation/i.test(err.message),
    );
    const remote = await remoteLayers();
    for (const l of stack.images.multilayer!.layers) assert.ok(!remote.has(l.digest), 'nothing was mounted lazily');
  });

  test('credentials given to containerd alone reach containerd but not clip: the layer is unpacked normally', { timeout: TEST_TIMEOUT }, async () => {
    await withCri(stack.containerdAddress, (cri) => cri.pullImage(privateRef('demo'), { auth: { username: USER, password: PASSWORD } }));
    const remote = await remoteLayers();
    for (const l of stack.images.demo!.layers) assert.ok(!remote.has(l.digest), `${l.digest} should not be lazy without the keychain`);
    const content = await stack.ctrOk(['-n', 'k8s.io', 'content', 'ls', '-q']);
    for (const l of stack.images.demo!.layers) assert.ok(content.includes(l.digest), 'containerd downloaded the layer');
  });

  test("a pull through clip's image service with a pull secret is lazy and the container runs", { timeout: TEST_TIMEOUT }, async () => {
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    const imageId = await withCri(criSocket, (cri) => cri.pullImage(privateRef('multilayer'), { auth: { auth } }));
    assert.match(imageId, /^sha256:[0-9a-f]{64}$/);

    const layers = stack.images.multilayer!.layers;
    const remote = await remoteLayers();
    for (const l of layers) {
      assert.ok(remote.has(l.digest), `layer ${l.digest} is served lazily; clip log:\n${stack.clipLog().slice(-3000)}`);
    }
    const content = await stack.ctrOk(['-n', 'k8s.io', 'content', 'ls', '-q']);
    for (const l of layers) assert.ok(!content.includes(l.digest), `${l.digest} was downloaded by containerd`);

    const r = await stack.ctr(['-n', 'k8s.io', 'run', '--rm', '--snapshotter', 'clip', privateRef('multilayer'), 'keychain-hello']);
    assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
    assert.equal(r.stdout, 'hello from clip, layer 3\n');

    const log = stack.clipLog();
    assert.match(log, /PullImage .*multilayer \(with credentials\)/);
    assert.ok(!log.includes(PASSWORD) && !log.includes(auth), 'credentials never reach the log');
  });

  test('RemoveImage through the proxy removes the image from containerd', { timeout: TEST_TIMEOUT }, async () => {
    const ref = privateRef('multilayer');
    assert.ok((await stack.ctrOk(['-n', 'k8s.io', 'images', 'ls', '-q'])).includes(ref));
    await withCri(criSocket, (cri) => cri.removeImage(ref));
    assert.ok(!(await stack.ctrOk(['-n', 'k8s.io', 'images', 'ls', '-q'])).includes(ref));
    // CRI's RemoveImage of an image that is gone succeeds (kubelet relies on it); the proxy forwards that.
    await withCri(criSocket, (cri) => cri.removeImage(ref));
  });
});
