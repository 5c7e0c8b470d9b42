/**
 * ContentLayerLocator against a simple in-process content store (containerd's Content gRPC service over a
 * unix socket, holding blobs and labels in a map): which manifests it reads and in what order, what it
 * skips, what it remembers, and the labels it returns. The real containerd is exercised by
 * test/e2e/nerdctl-pull.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { ContentLayerLocator } from '../../../src/containerd/content-layer-locator';
import { ContentService, type ContentServer } from '../../../src/generated/containerd/services/content/v1/content';
import { chainIds } from '../../../src/snapshotter/chain-id';
import {
  LABEL_CRI_IMAGE_LAYERS,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
  LABEL_TARGET_REF,
} from '../../../src/snapshotter/labels';
import { tempDir } from '../../helpers/processes';
import { recordingLogger } from '../../helpers/recording-logger';

const digestOf = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

interface Blob {
  data: Buffer;
  labels: Record<string, string>;
  updated: number;
}

/** Blobs by namespace and digest; counts the calls it answers. */
class Store {
  blobs = new Map<string, Blob>();
  lists = 0;
  reads: string[] = [];

  put(namespace: string, data: Buffer | string, labels: Record<string, string> = {}, updated = 0): string {
    const bytes = Buffer.from(data);
    const digest = digestOf(bytes);
    this.blobs.set(`${namespace} ${digest}`, { data: bytes, labels, updated });
    return digest;
  }

  /** An image: layers with the given diff IDs, its config and manifest; returns the manifest digest and chain IDs. */
  image(namespace: string, name: string, diffIds: string[], updated: number, labels: Record<string, string> = {}): { manifest: string; chain: string[]; layers: string[] } {
    const config = JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds } });
    const configDigest = this.put(namespace, config);
    const layers = diffIds.map((_, i) => digestOf(`${name} layer ${i}`));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((digest) => ({ mediaType: LAYER, digest, size: 100 })),
    });
    const digest = this.put(namespace, manifest, { 'containerd.io/gc.ref.content.config': configDigest, ...labels }, updated);
    return { manifest: digest, chain: chainIds(diffIds), layers };
  }

  server(): ContentServer {
    const notFound = (what: string): Partial<ServiceError> => ({ code: status.NOT_FOUND, details: `${what}: not found` });
    const ns = (md: { get(k: string): unknown[] }): string => String(md.get('containerd-namespace')[0] ?? '');
    const infoOf = (digest: string, blob: Blob) => ({
      digest,
      size: blob.data.length,
      createdAt: undefined,
      updatedAt: { seconds: blob.updated, nanos: 0 },
      labels: blob.labels,
    });
    const unimplemented = (_call: unknown, cb: (err: Partial<ServiceError>) => void): void => cb({ code: status.UNIMPLEMENTED });
    return {
      info: (call, cb) => {
        const blob = this.blobs.get(`${ns(call.metadata)} ${call.request.digest}`);
        if (!blob) cb(notFound(call.request.digest));
        else cb(null, { info: infoOf(call.request.digest, blob) });
      },
      list: (call) => {
        this.lists++;
        const prefix = `${ns(call.metadata)} `;
        const infos = [...this.blobs]
          .filter(([key, blob]) => key.startsWith(prefix) && blob.labels['containerd.io/gc.ref.content.config'] !== undefined)
          .map(([key, blob]) => infoOf(key.slice(prefix.length), blob));
        call.write({ info: infos });
        call.end();
      },
      read: (call) => {
        const blob = this.blobs.get(`${ns(call.metadata)} ${call.request.digest}`);
        this.reads.push(call.request.digest);
        if (!blob) {
          call.emit('error', notFound(call.request.digest));
          return;
        }
        call.write({ offset: 0, data: blob.data });
        call.end();
      },
      update: unimplemented,
      delete: unimplemented,
      status: unimplemented,
      listStatuses: unimplemented,
      abort: unimplemented,
      write: (call) => call.emit('error', { code: status.UNIMPLEMENTED }),
    } as ContentServer;
  }
}

describe('ContentLayerLocator', () => {
  let dir: string;
  let server: Server;
  const store = new Store();
  let locator: ContentLayerLocator;
  const hosts: string[] = [];

  before(async () => {
    dir = await tempDir('locator');
    server = new Server();
    server.addService(ContentService, store.server());
    const address = path.join(dir, 'containerd.sock');
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${address}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    locator = new ContentLayerLocator({
      address,
      logger: recordingLogger(),
      registriesFor: async (host) => {
        hosts.push(host);
        return host === '127.0.0.1' ? ['127.0.0.1:5000', '127.0.0.1'] : [host];
      },
      limits: { maxManifests: 3 },
    });
  });
  after(async () => {
    locator.close();
    server.forceShutdown();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const source = (host: string, repo: string): Record<string, string> => ({ [`containerd.io/distribution.source.${host}`]: repo });

  it('reads the newest manifests first and returns the labels CRI would send, with the port from the hosts directories', async () => {
    const old = store.image('k8s.io', 'old', [digestOf('o1')], 10, source('registry.test', 'old/app'));
    store.put('k8s.io', '{"not":"a manifest"}', { 'containerd.io/gc.ref.content.config': digestOf('x') }, 50);
    const app = store.image('k8s.io', 'app', [digestOf('a1'), digestOf('a2'), digestOf('a3')], 40, source('127.0.0.1', 'team/app,team/mirror'));
    const labels = await locator.locate(app.chain[1]!, 'k8s.io');
    assert.deepEqual(labels, {
      [LABEL_CRI_IMAGE_REF]: `127.0.0.1:5000/team/app@${app.manifest}`,
      [LABEL_CRI_MANIFEST_DIGEST]: app.manifest,
      [LABEL_CRI_LAYER_DIGEST]: app.layers[1],
      [LABEL_CRI_IMAGE_LAYERS]: `${app.layers[1]},${app.layers[2]}`,
      [LABEL_TARGET_REF]: app.chain[1],
    });
    assert.ok(!store.reads.includes(old.manifest), 'an older manifest is not read once the chain is found');
  });

  it('remembers what it read: the next layer of the image needs no listing', async () => {
    const lists = store.lists;
    const [app] = [...store.blobs].filter(([, b]) => b.labels['containerd.io/distribution.source.127.0.0.1']).map(([k]) => k.split(' ')[1]!);
    const labels = await locator.locate(chainIds([digestOf('a1'), digestOf('a2'), digestOf('a3')])[2]!, 'k8s.io');
    assert.equal(labels?.[LABEL_CRI_MANIFEST_DIGEST], app);
    assert.equal(store.lists, lists);
  });

  it('forgets a remembered manifest once it is removed, and finds another image with the layer', async () => {
    const first = store.image('d', 'first', [digestOf('s1')], 1, source('registry.test', 'd/first'));
    assert.equal((await locator.locate(first.chain[0]!, 'd'))?.[LABEL_CRI_MANIFEST_DIGEST], first.manifest);
    store.blobs.delete(`d ${first.manifest}`);
    const second = store.image('d', 'second', [digestOf('s1')], 2, source('registry.test', 'd/second'));
    assert.equal((await locator.locate(first.chain[0]!, 'd'))?.[LABEL_CRI_MANIFEST_DIGEST], second.manifest);
  });

  it('looks only in the namespace asked for', async () => {
    const other = store.image('other', 'other', [digestOf('n1')], 60, source('registry.test', 'ns/app'));
    assert.equal(await locator.locate(other.chain[0]!, 'k8s.io'), undefined);
    assert.equal((await locator.locate(other.chain[0]!, 'other'))?.[LABEL_CRI_IMAGE_REF], `registry.test/ns/app@${other.manifest}`);
  });

  it('reads at most maxManifests manifests per lookup, skips one whose config is not stored yet, and finds the rest later', async () => {
    const target = store.image('b', 'target', [digestOf('t1')], 1, source('registry.test', 'b/target'));
    for (let i = 0; i < 3; i++) store.image('b', `newer${i}`, [digestOf(`n${i}`)], 100 + i, source('registry.test', 'b/newer'));
    const pending = store.image('b', 'pending', [digestOf('p1')], 200, source('registry.test', 'b/pending'));
    const pendingConfig = [...store.blobs].find(([k, b]) => k.startsWith('b ') && b.data.toString().includes(digestOf('p1')) && !b.labels['containerd.io/gc.ref.content.config']);
    store.blobs.delete(pendingConfig![0]);
    assert.equal(await locator.locate(target.chain[0]!, 'b'), undefined, 'only the 3 newest are read');
    assert.ok(store.reads.includes(pending.manifest), 'the pending manifest was read');
    // The 3 newer ones are remembered; the pending one (no config yet) is not, so it is read again.
    const found = await locator.locate(target.chain[0]!, 'b');
    assert.equal(found?.[LABEL_CRI_LAYER_DIGEST], target.layers[0]);
  });

  it('needs a distribution-source label and a readable namespace', async () => {
    const unlabelled = store.image('c', 'bare', [digestOf('u1')], 1);
    assert.equal(await locator.locate(unlabelled.chain[0]!, 'c'), undefined);
    assert.equal(await locator.locate(unlabelled.chain[0]!, '../c'), undefined);
  });

  it('fails soft when containerd cannot be reached', async () => {
    const unreachable = new ContentLayerLocator({
      address: path.join(dir, 'absent.sock'),
      logger: recordingLogger(),
      registriesFor: async (host) => [host],
      limits: { deadlineMs: 2000 },
    });
    try {
      assert.equal(await unreachable.locate(digestOf('x'), 'k8s.io'), undefined);
    } finally {
      unreachable.close();
    }
  });
});
