/**
 * The Kubernetes manifest (config/kubernetes/clip.yaml) checked for what clip depends on. No kubelet runs
 * in these tests: this is the manifest's structure and its agreement with clip's and containerd's own
 * configuration, not a deployment.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { parseConfigText, resolveConfig } from '../../../src/daemon/config';
import { REPO_ROOT } from '../../helpers/processes';

type Obj = Record<string, any>;

const file = path.join(REPO_ROOT, 'config', 'kubernetes', 'clip.yaml');
const docs: Obj[] = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
  assert.deepEqual(d.errors, [], `${file} is valid YAML`);
  return d.toJS() as Obj;
});
const only = (kind: string): Obj => {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0]!;
};

const daemonSet = only('DaemonSet');
const configMap = only('ConfigMap');
const runtimeClass = only('RuntimeClass');
const pod = daemonSet.spec.template.spec as Obj;
const clip = (pod.containers as Obj[]).find((c) => c.name === 'clip')!;
const clipConfig = resolveConfig(parseConfigText(configMap.data['clip.toml'], 'clip.toml'));
// smol-toml returns null-prototype objects; plain ones compare with deepEqual.
const containerdDropIn = JSON.parse(JSON.stringify(parseToml(configMap.data['containerd-clip.toml']))) as Obj;

/** The host path behind the clip container's mount at mountPath, and the mount itself. */
function hostMount(mountPath: string): { hostPath: Obj; mount: Obj } {
  const mount = (clip.volumeMounts as Obj[]).find((m) => m.mountPath === mountPath);
  assert.ok(mount, `clip mounts ${mountPath}`);
  const volume = (pod.volumes as Obj[]).find((v) => v.name === mount.name);
  assert.ok(volume?.hostPath, `${mountPath} comes from the host`);
  return { hostPath: volume.hostPath, mount };
}

describe('Kubernetes DaemonSet manifest', () => {
  it('declares every object in one namespace and selects its own pods', () => {
    assert.deepEqual(docs.map((d) => d.kind).sort(), ['ConfigMap', 'DaemonSet', 'Namespace', 'RuntimeClass']);
    const ns = only('Namespace').metadata.name;
    assert.equal(daemonSet.metadata.namespace, ns);
    assert.equal(configMap.metadata.namespace, ns);
    assert.deepEqual(daemonSet.spec.selector.matchLabels, daemonSet.spec.template.metadata.labels);
  });

  it('runs clip privileged, with hostPID, bounded resources and a restart only on delete', () => {
    assert.equal(clip.securityContext.privileged, true);
    assert.equal(pod.hostPID, true);
    for (const kind of ['requests', 'limits']) {
      assert.ok(clip.resources[kind].cpu && clip.resources[kind].memory, `${kind} for cpu and memory`);
    }
    assert.equal(daemonSet.spec.updateStrategy.type, 'OnDelete');
  });

  it('mounts /dev/fuse, the root with bidirectional propagation, the socket directory and containerd', () => {
    assert.deepEqual(hostMount('/dev/fuse').hostPath, { path: '/dev/fuse', type: 'CharDevice' });
    const root = hostMount(clipConfig.root);
    assert.equal(root.hostPath.path, clipConfig.root);
    assert.equal(root.mount.mountPropagation, 'Bidirectional', 'layer mounts must reach the host');
    assert.equal(hostMount(path.dirname(clipConfig.address)).hostPath.path, path.dirname(clipConfig.address));
    assert.equal(path.dirname(clipConfig.criKeychain.imageServicePath), path.dirname(clipConfig.address));
    const containerd = hostMount(clipConfig.criKeychain.containerdImageService);
    assert.deepEqual(containerd.hostPath, { path: clipConfig.criKeychain.containerdImageService, type: 'Socket' });
    for (const dir of clipConfig.registry.hostsDirs) assert.equal(hostMount(dir).mount.readOnly, true);
  });

  it("serves with the ConfigMap's clip.toml, and containerd's drop-in points at clip's socket", () => {
    const config = (clip.volumeMounts as Obj[]).find((m) => m.name === 'clip-config')!;
    const volume = (pod.volumes as Obj[]).find((v) => v.name === 'clip-config')!;
    assert.equal(volume.configMap.name, configMap.metadata.name);
    assert.deepEqual(clip.command.slice(1), ['serve', '--config', path.join(config.mountPath, 'clip.toml')]);
    assert.equal(containerdDropIn.version, 3);
    assert.deepEqual(containerdDropIn.proxy_plugins.clip, {
      type: 'snapshot',
      address: clipConfig.address,
      exports: { enable_remote_snapshot_annotations: 'true' },
    });
    const images = containerdDropIn.plugins['io.containerd.cri.v1.images'];
    assert.equal(images.snapshotter, 'clip');
    assert.equal(images.disable_snapshot_annotations, false);
  });

  it("creates clip's own pod with overlayfs, never with clip", () => {
    assert.equal(pod.runtimeClassName, runtimeClass.metadata.name);
    const runtime = containerdDropIn.plugins['io.containerd.cri.v1.runtime'].containerd.runtimes[runtimeClass.handler];
    assert.ok(runtime, `containerd declares the runtime handler ${runtimeClass.handler}`);
    assert.equal(runtime.snapshotter, 'overlayfs');
    for (const c of [...pod.initContainers, ...pod.containers]) assert.equal(c.imagePullPolicy, 'IfNotPresent', c.name);
  });

  it("checks at start that the node's containerd has exactly the shipped drop-in", () => {
    const check = (pod.initContainers as Obj[]).find((c) => c.name === 'check-containerd-config')!;
    const script = check.command.join(' ');
    assert.match(script, /cmp -s "\$want" "\$have"/);
    assert.match(script, /want=\/etc\/clip\/containerd-clip\.toml/);
    assert.match(script, /have=\/proc\/1\/root\/etc\/containerd\/conf\.d\/clip\.toml/);
  });
});
