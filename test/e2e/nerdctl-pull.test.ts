/**
 * Lazy pulls when containerd sends no layer labels, only `containerd.io/snapshot.ref`: what nerdctl's pull
 * does for a snapshotter whose name it does not know (client.Pull with containerd's unpacker, no label
 * handler). nerdctl is not packaged in Debian; containerd's own clients that unpack the same way stand in:
 * - 1.6 / 1.7: CRI with disable_snapshot_annotations = true (its default), i.e. client.Pull with
 *   WithPullUnpack and nothing else, exactly nerdctl's call;
 * - 2.1: CRI and `ctr images pull` through the transfer service, with the shipped drop-in minus its
 *   enable_remote_snapshot_annotations export (the transfer service uses the same core/unpack unpacker);
 * - 1.7 also: `ctr images pull --local=false` (its transfer service never sends layer labels), from a
 *   second registry over https, since 1.7's transfer service reads no hosts.toml.
 * clip finds each layer through containerd's content store (src/containerd/content-layer-locator.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Kind } from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { LABEL_TARGET_REF } from '../../src/snapshotter/labels';
import { CONTAINERD } from '../helpers/containerd-release';
import { assertCriPullPath, criPull, runIn } from '../helpers/cri-run';
import { assertPulledLazily, chainIds, sameTreeAsOverlayfs, sha256 } from '../helpers/images';
import { REPO_ROOT, runOk } from '../helpers/processes';
import { TestSnapshotsClient } from '../helpers/snapshots-client';
import { useStack, type Stack } from '../helpers/stack';
import { entryAt } from '../helpers/tree';

const TEST_TIMEOUT = 300_000;
const REGISTRY_SH = path.join(REPO_ROOT, 'scripts', 'registry.sh');

/** The labels of every unpack Prepare clip received for `chain` (from its debug log of requests). */
function prepareLabels(stack: Stack, chain: string[]): Array<Record<string, string>> {
  const found: Array<Record<string, string>> = [];
  for (const line of stack.clipLog().split('\n')) {
    const json = /debug Prepare (\{.*\})$/.exec(line)?.[1];
    if (!json) continue;
    const req = JSON.parse(json) as { key: string; labels: Record<string, string> };
    if (/\/extract-/.test(req.key) && chain.includes(req.labels[LABEL_TARGET_REF] ?? '')) found.push(req.labels);
  }
  return found;
}

/**
 * Layer blob GETs containerd made (user agent `containerd/<version>`), from the registry's access log:
 * `"GET /v2/<repo>/blobs/<digest> HTTP/1.1" <status> <bytes> "<referer>" "<user agent>"`.
 */
async function containerdBlobGets(stack: Stack, tag: string, registryLog = path.join(stack.state, 'registry.log')): Promise<string[]> {
  const log = await fsp.readFile(registryLog, 'utf8');
  const layers = stack.images[tag]!.layers.map((l) => l.digest);
  return log.split('\n').filter((l) => /"GET \/v2\/\S+\/blobs\/sha256:/.test(l) && /"containerd\/[^"]*"$/.test(l) && layers.some((d) => l.includes(d)));
}

/** A self-signed certificate (and key) for https://127.0.0.1, in a fresh directory. */
function selfSignedCertificate(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clip-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { timeout: 30_000, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { dir, cert, key };
}

describe(`lazy pulls without layer labels, as nerdctl pulls (containerd ${CONTAINERD.version})`, () => {
  // containerd 1.7's transfer service reaches registries over https only, trusting the system's CAs.
  const tls = CONTAINERD.series === '1.7' ? selfSignedCertificate() : undefined;
  after(() => tls && rmSync(tls.dir, { recursive: true, force: true }));
  const stack = useStack({
    tags: ['lazy', 'demo'],
    criSnapshotter: 'clip',
    layerLabels: false,
    clipConfig: '[lazy]\nbackground_fetch = false\n',
    containerdCaFile: tls?.cert,
  });

  test('an unpack naming only the chain ID is served lazily, found in the content store', { timeout: TEST_TIMEOUT }, async () => {
    await criPull(stack, 'lazy');
    const chain = chainIds(stack.images.lazy!.layers.map((l) => l.diff_id));
    // containerd sent nothing but the target chain ID: nerdctl's pull, not CRI's labelled one.
    const sent = prepareLabels(stack, chain);
    assert.ok(sent.length >= chain.length, `one unpack Prepare per layer, got ${sent.length}`);
    for (const labels of sent) assert.deepEqual(Object.keys(labels), [LABEL_TARGET_REF]);
    if (CONTAINERD.major >= 2) await assertCriPullPath(stack, 'lazy', 'transfer');

    await assertPulledLazily(stack, 'lazy', true, 'k8s.io');
    assert.deepEqual(await containerdBlobGets(stack, 'lazy'), [], 'containerd fetched no layer from the registry');
    for (const layer of stack.images.lazy!.layers) {
      assert.match(stack.clipLog(), new RegExp(`is ${layer.digest} of \\S+/clip/test@${stack.images.lazy!.manifest} \\(found in containerd's content store, namespace k8s.io\\)`));
    }
    // containerd passes its namespace to the proxy snapshotter with the call (not only in the key).
    assert.doesNotMatch(stack.clipLog(), /no containerd-namespace metadata/);
    assert.equal(await runIn(stack, 'lazy', 'nerdctl-hello'), 'hello from clip, layer 3\n');
  });

  test('the rootfs equals the overlayfs one', { timeout: TEST_TIMEOUT }, async () => {
    const lazy = await sameTreeAsOverlayfs(stack, 'lazy');
    assert.equal(entryAt(lazy, '/etc/clip-test/message')?.sha256, sha256('hello from clip, layer 3\n'));
    assert.equal(entryAt(lazy, '/data/devices/loop7')?.type, 'block');
  });

  if (CONTAINERD.lazyCtrPull) {
    test("ctr images pull through the transfer service without the export is lazy too (namespace 'default')", { timeout: TEST_TIMEOUT }, async () => {
      await stack.ctrOk(['images', 'pull', '--snapshotter', 'clip', '--hosts-dir', stack.hostsDir, stack.imageRef('demo')]);
      const chain = chainIds(stack.images.demo!.layers.map((l) => l.diff_id));
      for (const labels of prepareLabels(stack, chain)) assert.deepEqual(Object.keys(labels), [LABEL_TARGET_REF]);
      await assertPulledLazily(stack, 'demo', true);
      assert.deepEqual(await containerdBlobGets(stack, 'demo'), [], 'containerd fetched no layer from the registry');
      const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', stack.imageRef('demo'), 'nerdctl-demo']);
      assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
      assert.equal(r.stdout, 'Hello from a clip container!\n');
    });
  }

  if (tls) {
    test("1.7's transfer service (ctr images pull --local=false) over https is lazy too (namespace 'default')", { timeout: TEST_TIMEOUT }, async () => {
      // A second registry, over https, serving the first one's storage.
      const registry = path.join(stack.state, 'tls-registry');
      const storage = path.join(stack.state, 'registry-data');
      const address = (await runOk(REGISTRY_SH, ['start', registry, '--storage', storage, '--tls', tls.cert, tls.key], { timeoutMs: 60_000 })).trim();
      try {
        // clip reaches it through a hosts.toml naming the certificate (containerd through SSL_CERT_FILE).
        await fsp.mkdir(path.join(stack.hostsDir, address), { recursive: true });
        await fsp.writeFile(
          path.join(stack.hostsDir, address, 'hosts.toml'),
          `server = "https://${address}"\n\n[host."https://${address}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${tls.cert}"\n`,
        );
        const ref = `${address}/${stack.repo}:demo`;
        await stack.ctrOk(['images', 'pull', '--local=false', '--platform', 'linux/amd64', '--snapshotter', 'clip', ref]);
        const chain = chainIds(stack.images.demo!.layers.map((l) => l.diff_id));
        const sent = prepareLabels(stack, chain);
        assert.ok(sent.length >= chain.length, `one unpack Prepare per layer, got ${sent.length}`);
        for (const labels of sent) assert.deepEqual(Object.keys(labels), [LABEL_TARGET_REF]);
        // 1.7's transfer service calls the snapshotter without the namespace metadata: it comes from the key.
        assert.match(stack.clipLog(), new RegExp(`Prepare default/\\d+/extract-\\S+ ${chain[0]}: no containerd-namespace metadata, namespace default taken from the key`));
        await assertPulledLazily(stack, 'demo', true);
        assert.deepEqual(await containerdBlobGets(stack, 'demo', path.join(registry, 'registry.log')), [], 'containerd fetched no layer from the registry');
        const r = await stack.ctr(['run', '--rm', '--snapshotter', 'clip', ref, 'transfer-demo']);
        assert.equal(r.code, 0, `ctr run failed:\n${r.stderr}\n${await stack.diagnostics()}`);
        assert.equal(r.stdout, 'Hello from a clip container!\n');
      } finally {
        await runOk(REGISTRY_SH, ['stop', registry], { timeoutMs: 30_000 });
      }
    });
  }

  test('a chain ID no stored manifest has is prepared normally, for containerd to unpack', { timeout: TEST_TIMEOUT }, async () => {
    const client = new TestSnapshotsClient(stack.clipAddress);
    const target = `sha256:${sha256('a layer no image has')}`;
    const key = `k8s.io/999/extract-1-test ${target}`;
    try {
      const mounts = await client.prepare(key, '', { [LABEL_TARGET_REF]: target });
      assert.equal(mounts.length, 1);
      assert.equal(mounts[0]!.type, 'bind', 'an empty directory for containerd to unpack into');
      assert.equal((await client.stat(key)).kind, Kind.ACTIVE);
      // The namespace the call carried (the test client's 'test') wins over the one in the key.
      assert.match(stack.clipLog(), new RegExp(`layer ${target}: no manifest in containerd's content store \\(namespace test\\) has it`));
    } finally {
      await client.remove(key).catch(() => undefined);
      client.close();
    }
  });
});
